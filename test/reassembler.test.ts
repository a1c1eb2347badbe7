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
    const out = shuffled.flatMap((f) => r.push(f, 0));
    expect(out).toHaveLength(1);
    expect(out[0]!.data.equals(frame)).toBe(true);
    expect(r.counters.framesComplete).toBe(1);
  });

  it('absorbs duplicates and delivers each frame once', () => {
    const p = new MediaPacketizer(opts);
    const r = new FrameReassembler();
    const frags = fragments(p, frameOf(0, 900));
    const delivered = [...frags, ...frags, frags[0]].flatMap((f) => r.push(f, 0));
    expect(delivered).toHaveLength(1);
    expect(r.counters.fragmentsDuplicate + r.counters.fragmentsLate).toBe(frags.length + 1);
  });

  it('holds later frames back while a missing fragment can still come, then releases all in order', () => {
    const p = new MediaPacketizer(opts);
    const r = new FrameReassembler({ holdMs: 120 });
    const frames = [0, 1, 2, 3].map((n) => frameOf(n, 1000));
    const all = frames.map((f) => fragments(p, f));
    const got: number[] = [];
    for (const [n, frags] of all.entries()) {
      for (const [i, frag] of frags.entries()) {
        if (n === 1 && i === 2) continue; // lost for now
        for (const f of r.push(frag, n * 10)) got.push(f.frameNo);
      }
    }
    expect(got).toEqual([0]); // 2 and 3 wait for 1
    expect(r.expire(100)).toEqual([]); // 1's gap is 90 ms old: still waiting
    const late = r.push(all[1][2], 100); // the retransmission
    expect(late.map((f) => f.frameNo)).toEqual([1, 2, 3]);
    expect(late[0].data.equals(frames[1])).toBe(true);
    expect(r.counters.framesDropped).toBe(0);
    expect(r.framesInFlight).toBe(0);
  });

  it('gives a missing fragment up after holdMs: never delivers it corrupt, keeps frame order', () => {
    const p = new MediaPacketizer(opts);
    const r = new FrameReassembler({ holdMs: 120 });
    const frames = [0, 1, 2, 3].map((n) => frameOf(n, 1000));
    const got: Buffer[] = [];
    frames.forEach((f, n) => {
      for (const [i, frag] of fragments(p, f).entries()) {
        if (n === 1 && i === 2) continue; // lost for good
        for (const out of r.push(frag, n * 10)) got.push(out.data);
      }
    });
    for (const out of r.expire(10 + 119)) got.push(out.data);
    expect(got).toHaveLength(1);
    for (const out of r.expire(10 + 120)) got.push(out.data);
    expect(got.map((g) => frames.findIndex((f) => f.equals(g)))).toEqual([0, 2, 3]);
    expect(r.counters.framesDropped).toBe(1);
    expect(r.framesInFlight).toBe(0);
  });

  it('counts a frame of which nothing arrived, and waits for it like any other', () => {
    const p = new MediaPacketizer(opts);
    const r = new FrameReassembler({ holdMs: 50 });
    const all = [0, 1, 2, 3, 4].map((n) => fragments(p, frameOf(n, 500)));
    const got: number[] = [];
    for (const n of [0, 3, 4]) for (const f of all[n]) for (const out of r.push(f, n)) got.push(out.frameNo);
    expect(got).toEqual([0]);
    for (const f of all[1]) for (const out of r.push(f, 20)) got.push(out.frameNo); // 1 recovered in time
    expect(got).toEqual([0, 1]);
    for (const out of r.expire(3 + 50)) got.push(out.frameNo); // 2 never comes
    expect(got).toEqual([0, 1, 3, 4]);
    expect(r.counters.framesDropped).toBe(1);
    expect(r.counters.framesComplete).toBe(4);
  });

  it('with holdMs 0, gives gaps up at once (no recovery)', () => {
    const p = new MediaPacketizer(opts);
    const r = new FrameReassembler({ holdMs: 0 });
    const all = [0, 1, 2].map((n) => fragments(p, frameOf(n, 300)));
    expect([...all[0], ...all[2]].flatMap((f) => r.push(f, 0)).map((f) => f.frameNo)).toEqual([0, 2]);
    expect(r.counters.framesDropped).toBe(1);
  });

  it('refuses a late frame once a newer one was delivered', () => {
    const p = new MediaPacketizer(opts);
    const r = new FrameReassembler();
    const a = fragments(p, frameOf(0, 600));
    const b = fragments(p, frameOf(1, 600));
    for (const f of b) r.push(f, 0);
    expect(a.flatMap((f) => r.push(f, 0))).toEqual([]);
    expect(r.counters.fragmentsLate).toBe(a.length);
  });

  it('bounds memory: frames in flight, frame size and age', () => {
    const p = new MediaPacketizer(opts);
    const r = new FrameReassembler({ maxFramesInFlight: 4, maxFrameBytes: 5000, holdMs: 500 });
    for (let n = 0; n < 10; n++) r.push(fragments(p, frameOf(n, 1000))[0], n); // only first fragments
    // Unfinished frames prove nothing: over the bound they are let go (furthest first), not counted as frames.
    expect(r.framesInFlight).toBe(4);
    expect(r.counters.fragmentsRejected).toBe(6);
    expect(r.counters.framesDropped).toBe(0);
    r.expire(10_000);
    expect(r.framesInFlight).toBe(0);
    expect(r.counters.framesDropped).toBe(4);
    const big = fragments(p, frameOf(99, 6000));
    expect(r.push(big[0], 0)).toEqual([]);
    expect(r.counters.fragmentsRejected).toBe(7);
  });

  it('bounds complete frames held behind a gap too, releasing them in order when full', () => {
    const p = new MediaPacketizer(opts);
    const r = new FrameReassembler({ maxFramesInFlight: 4, holdMs: 10_000 });
    const all = Array.from({ length: 8 }, (_, n) => fragments(p, frameOf(n, 200)));
    const got: number[] = [];
    for (const n of [0, 2, 3, 4, 5]) for (const f of all[n]) for (const out of r.push(f, 0)) got.push(out.frameNo);
    expect(got).toEqual([0]);
    expect(r.framesInFlight).toBe(4);
    // A fifth frame behind the gap: the gap is given up, and everything flows in order again.
    for (const n of [6, 7]) for (const f of all[n]) for (const out of r.push(f, 0)) got.push(out.frameNo);
    expect(got).toEqual([0, 2, 3, 4, 5, 6, 7]);
    expect(r.framesInFlight).toBe(0);
    expect(r.counters.framesDropped).toBe(1);
  });

  it('starts over when the epoch changes (a restarted producer)', () => {
    const r = new FrameReassembler();
    const first = new MediaPacketizer(opts);
    for (let n = 0; n < 5; n++) for (const f of fragments(first, frameOf(n, 500))) r.push(f, 0);
    const restarted = new MediaPacketizer({ ...opts, epoch: 8 });
    const out = fragments(restarted, frameOf(0, 500)).flatMap((f) => r.push(f, 0));
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
