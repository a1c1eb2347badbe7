import { describe, expect, it } from 'vitest';
import { decode, FrameReassembler, LossCounter, MediaPacketizer, Track, type MediaMessage } from '../protocol/index.ts';

function frameOf(n: number, bytes: number): Buffer {
  return Buffer.alloc(bytes, n & 0xff).fill(Buffer.from(`frame-${n}-`), 0, Math.min(bytes, 10));
}

function fragments(p: MediaPacketizer, frame: Buffer, ts = 0): MediaMessage[] {
  return p.packetize(Track.VIDEO, frame, ts, 1).map((d) => decode(d) as MediaMessage);
}

const opts = { producerId: 1, epoch: 7, maxDatagramBytes: 300 };

describe('FrameReassembler', () => {
  it('rebuilds fragmented frames byte for byte, whatever the fragment order', () => {
    const p = new MediaPacketizer(opts);
    const r = new FrameReassembler();
    const frame = frameOf(0, 2000);
    const frags = fragments(p, frame);
    expect(frags.length).toBe(8); // 2000 / (300 - 40) rounded up
    const shuffled = [frags[3], frags[0], frags[7], frags[5], frags[1], frags[6], frags[2], frags[4]];
    const out = shuffled.map((f) => r.push(f, 0)).filter((x) => x !== null);
    expect(out).toHaveLength(1);
    expect(out[0]!.data.equals(frame)).toBe(true);
    expect(r.counters.framesComplete).toBe(1);
  });

  it('absorbs duplicates and delivers each frame once', () => {
    const p = new MediaPacketizer(opts);
    const r = new FrameReassembler();
    const frags = fragments(p, frameOf(0, 900));
    const delivered = [...frags, ...frags, frags[0]].map((f) => r.push(f, 0)).filter((x) => x !== null);
    expect(delivered).toHaveLength(1);
    expect(r.counters.fragmentsDuplicate + r.counters.fragmentsLate).toBe(frags.length + 1);
  });

  it('drops a frame with a missing fragment, never delivers it corrupt, and keeps frame order', () => {
    const p = new MediaPacketizer(opts);
    const r = new FrameReassembler();
    const frames = [0, 1, 2, 3].map((n) => frameOf(n, 1000));
    const got: Buffer[] = [];
    frames.forEach((f, n) => {
      const frags = fragments(p, f);
      for (const [i, frag] of frags.entries()) {
        if (n === 1 && i === 2) continue; // lost
        const out = r.push(frag, n * 83);
        if (out) got.push(out.data);
      }
    });
    expect(got.map((g) => frames.findIndex((f) => f.equals(g)))).toEqual([0, 2, 3]);
    expect(r.counters.framesDropped).toBe(1);
    expect(r.framesInFlight).toBe(0);
  });

  it('refuses a late frame once a newer one was delivered', () => {
    const p = new MediaPacketizer(opts);
    const r = new FrameReassembler();
    const a = fragments(p, frameOf(0, 600));
    const b = fragments(p, frameOf(1, 600));
    for (const f of b) r.push(f, 0);
    expect(a.map((f) => r.push(f, 0)).every((x) => x === null)).toBe(true);
    expect(r.counters.fragmentsLate).toBe(a.length);
  });

  it('bounds memory: frames in flight, frame size and age', () => {
    const p = new MediaPacketizer(opts);
    const r = new FrameReassembler({ maxFramesInFlight: 4, maxFrameBytes: 5000, maxFrameAgeMs: 500 });
    for (let n = 0; n < 10; n++) r.push(fragments(p, frameOf(n, 1000))[0], n); // only first fragments
    expect(r.framesInFlight).toBe(4);
    expect(r.counters.framesDropped).toBe(6);
    r.expire(10_000);
    expect(r.framesInFlight).toBe(0);
    const big = fragments(p, frameOf(99, 6000));
    expect(r.push(big[0], 0)).toBeNull();
    expect(r.counters.fragmentsRejected).toBe(1);
  });

  it('starts over when the epoch changes (a restarted producer)', () => {
    const r = new FrameReassembler();
    const first = new MediaPacketizer(opts);
    for (let n = 0; n < 5; n++) for (const f of fragments(first, frameOf(n, 500))) r.push(f, 0);
    const restarted = new MediaPacketizer({ ...opts, epoch: 8 });
    const out = fragments(restarted, frameOf(0, 500)).map((f) => r.push(f, 0)).filter((x) => x !== null);
    expect(out).toHaveLength(1);
    expect(out[0]!.frameNo).toBe(0);
  });
});

describe('LossCounter', () => {
  it('counts gaps as RFC 3550 does, and is not fooled by reordering', () => {
    const c = new LossCounter();
    for (const s of [10, 11, 13, 12, 16, 15]) c.record(1, s);
    expect(c.expected).toBe(7);
    expect(c.lost).toBe(1); // 14
  });
  it('does not let duplicates hide losses', () => {
    const c = new LossCounter();
    for (const s of [0, 1, 1, 1, 3, 3, 5]) c.record(1, s);
    expect(c.expected).toBe(6);
    expect(c.lost).toBe(2); // 2 and 4; plain RFC 3550 would say -1
    expect(c.duplicates).toBe(3);
  });
  it('keeps totals across a new epoch', () => {
    const c = new LossCounter();
    for (const s of [0, 2]) c.record(1, s);
    for (const s of [100, 101, 103]) c.record(2, s);
    expect(c.lost).toBe(2);
    expect(c.expected).toBe(7);
  });
});
