import { describe, expect, it } from 'vitest';
import { allocateRing, RingEntryKind, RingReader, RingWriter } from '../broker/fanout-ring.ts';
import { CopyArena } from '../broker/fanout-worker.ts';

const bytes = (n: number, fill: number): Buffer => Buffer.alloc(n, fill);

/** Reads every entry a reader has, as [kind, channel, peer, target, payload]. */
function readAll(r: RingReader): [number, number, number, number, Buffer][] {
  const out: [number, number, number, number, Buffer][] = [];
  for (let e = r.next(); e !== null; e = r.next()) {
    out.push([e.kind, e.channel, e.peer, e.target, Buffer.from(r.data.subarray(e.offset, e.offset + e.length))]);
    r.done();
  }
  return out;
}

// The ring between the broker's main thread and its fan-out threads (broker/fanout-ring.ts).
describe('fan-out ring', () => {
  it('gives every reader every entry, in order, with its payload intact across the end of the data', () => {
    const memory = allocateRing({ readers: 2, slots: 8, bytes: 1000 });
    const w = new RingWriter(memory);
    const a = new RingReader(memory, 0);
    const b = new RingReader(memory, 1);
    const sent: [number, number, number, number, Buffer][] = [];
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 3; i++) {
        const payload = bytes(150 + 10 * i, round * 16 + i);
        expect(w.write(RingEntryKind.MEDIA, 0xfffffff0 + i, 0, -1, payload)).toBe(true);
        sent.push([RingEntryKind.MEDIA, 0xfffffff0 + i, 0, -1, payload]);
      }
      expect(w.write(RingEntryKind.SUBSCRIBE, 7, 42, 1, new Uint8Array(0))).toBe(true);
      sent.push([RingEntryKind.SUBSCRIBE, 7, 42, 1, Buffer.alloc(0)]);
      expect(readAll(a)).toEqual(sent.slice(-4));
      expect(readAll(b)).toEqual(sent.slice(-4));
    }
  });

  it('refuses a write while the slowest reader has not passed the entries it would overwrite, by count and by bytes', () => {
    const memory = allocateRing({ readers: 2, slots: 4, bytes: 1000 });
    const w = new RingWriter(memory);
    const fast = new RingReader(memory, 0);
    const slow = new RingReader(memory, 1);
    for (let i = 0; i < 4; i++) expect(w.write(RingEntryKind.MEDIA, 1, 0, -1, bytes(10, i))).toBe(true);
    readAll(fast);
    expect(w.write(RingEntryKind.MEDIA, 1, 0, -1, bytes(10, 9))).toBe(false); // 4 slots, all unread by `slow`
    expect(w.unreadBytes()).toBe(40);
    expect(slow.next()?.length).toBe(10);
    slow.done();
    expect(w.write(RingEntryKind.MEDIA, 1, 0, -1, bytes(10, 9))).toBe(true);
    readAll(slow);
    readAll(fast);
    expect(w.unreadBytes()).toBe(0);
  });

  it('refuses a write that would reach into unread bytes after the wrap, and takes it once they are read', () => {
    const memory = allocateRing({ readers: 1, slots: 16, bytes: 1000 });
    const w = new RingWriter(memory);
    const r = new RingReader(memory, 0);
    for (let i = 0; i < 4; i++) expect(w.write(RingEntryKind.MEDIA, 1, 0, -1, bytes(240, i))).toBe(true);
    // 960 bytes unread; 240 more do not fit the last 40, and from 0 would overwrite the first entry.
    expect(w.write(RingEntryKind.MEDIA, 1, 0, -1, bytes(240, 9))).toBe(false);
    expect(w.unreadBytes()).toBe(960);
    expect(r.next()?.length).toBe(240);
    r.done();
    expect(w.write(RingEntryKind.MEDIA, 1, 0, -1, bytes(240, 9))).toBe(true);
    expect(w.unreadBytes()).toBe(720 + 40 + 240); // the skipped tail counts until it is passed
    expect(readAll(r).map((e) => e[4])).toEqual([bytes(240, 1), bytes(240, 2), bytes(240, 3), bytes(240, 9)]);
    expect(w.unreadBytes()).toBe(0);
  });

  it('tells the slowest reader\'s unread bytes, and what readers report: queued bytes, send errors', () => {
    const memory = allocateRing({ readers: 2, slots: 4, bytes: 1000 });
    const w = new RingWriter(memory);
    const a = new RingReader(memory, 0);
    const b = new RingReader(memory, 1);
    w.write(RingEntryKind.MEDIA, 1, 0, -1, bytes(100, 1));
    readAll(a);
    a.report(500, 3);
    b.report(0, 4);
    expect(w.unreadBytes()).toBe(100); // b has not read it
    expect(w.queuedBytes()).toBe(500); // a's sockets
    expect(w.sendErrors()).toBe(7);
  });

  it('keeps counting across the int32 wrap of its entry counts', () => {
    const memory = allocateRing({ readers: 1, slots: 4, bytes: 256 });
    const w = new RingWriter(memory, 0x7fffffff - 5);
    const r = new RingReader(memory, 0);
    for (let i = 0; i < 20; i++) {
      expect(w.write(RingEntryKind.MEDIA, i, 0, -1, bytes(30, i))).toBe(true);
      expect(w.write(RingEntryKind.MEDIA, i, 0, -1, bytes(30, i + 100))).toBe(true);
      expect(readAll(r).map((e) => [e[1], e[4][0]])).toEqual([[i, i], [i, i + 100]]);
    }
    for (let i = 0; i < 4; i++) w.write(RingEntryKind.MEDIA, 1, 0, -1, bytes(30, 0));
    expect(w.write(RingEntryKind.MEDIA, 1, 0, -1, bytes(30, 0))).toBe(false);
  });

  it('refuses a payload larger than a quarter of its bytes, and slot counts that are not powers of two', () => {
    const memory = allocateRing({ readers: 1, slots: 4, bytes: 1000 });
    expect(() => new RingWriter(memory).write(RingEntryKind.MEDIA, 1, 0, -1, bytes(251, 0))).toThrow(/at most 250 bytes/);
    expect(() => allocateRing({ readers: 1, slots: 6, bytes: 1000 })).toThrow(/power of two/);
  });
});

// The copies a fan-out thread sends (broker/fanout-worker.ts): never overlapping, never reused.
describe('copy arena', () => {
  it('hands out separate 8-byte aligned room from one chunk, a new chunk when it is full, and large copies on their own', () => {
    const arena = new CopyArena(1024);
    const a = arena.take(100);
    const b = arena.take(200);
    expect(a.buffer).toBe(b.buffer);
    expect(b.byteOffset - a.byteOffset).toBe(104);
    a.fill(1);
    b.fill(2);
    expect(a.every((x) => x === 1) && b.length === 200).toBe(true);
    const c = arena.take(250);
    const d = arena.take(250);
    const e = arena.take(250); // 104 + 200 + 2 × 256 = 816 used: 250 more do not fit
    expect(c.buffer).toBe(a.buffer);
    expect(d.buffer).toBe(a.buffer);
    expect(e.buffer).not.toBe(a.buffer);
    expect(e.byteOffset).toBe(0);
    const big = arena.take(300); // over a quarter of a chunk: an allocation of its own
    expect(big.buffer).not.toBe(e.buffer);
    expect(big.length).toBe(300);
    expect(arena.take(8).buffer).toBe(e.buffer);
  });
});
