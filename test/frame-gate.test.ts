import { describe, expect, it } from 'vitest';
import { FrameGate } from '../protocol/frame-gate.ts';
import { FrameOpener, FrameSealer } from '../protocol/frame-seal.ts';
import { MediaFlag, MediaPacketizer, Track } from '../protocol/index.ts';
import { MediaOffset } from '../protocol/media-header.ts';

const ID = 0x1aaa99;

/** A producer's run: its packetizer signs each frame with the run's key. */
function run(epoch = 7) {
  const sealer = new FrameSealer({ producerId: ID, passphrase: null });
  const pk = new MediaPacketizer({ producerId: ID, epoch, maxDatagramBytes: 1200, seal: (f, body) => sealer.seal(f, body) });
  return { key: sealer.publicKey, frame: (no: number, bytes = 5000) => pk.packetize(Track.VIDEO, Buffer.alloc(bytes, no & 0xff), no * 83, MediaFlag.KEYFRAME) };
}

/** Datagrams the last gate made told it discarded, through its callback. */
let told = 0;
function gate(key: Buffer, holdMs = 120, maxBytes = 1 << 20): FrameGate {
  const opener = new FrameOpener({ frameKey: key, encrypted: false, passKey: null });
  told = 0;
  return new FrameGate({ holdMs, maxBytes, verify: (f, sealed) => opener.verify(f, sealed), discarded: (n) => { told += n; } });
}

describe('FrameGate (a relay lets through only whole, verified frames)', () => {
  it('releases each frame once whole, all its datagrams byte for byte in fragment order, whatever order they came in', () => {
    const r = run();
    const g = gate(r.key);
    const frames = [0, 1, 2].map((n) => r.frame(n));
    const shuffled = [frames[0][2], frames[1][0], frames[0][0], frames[1][3], frames[0][1], frames[0][3], frames[0][4], frames[1][1], frames[1][2], frames[1][4], ...frames[2]];
    const out: Buffer[][] = [];
    for (const d of shuffled) {
      const released = g.push(d, 0);
      if (released.length > 0) out.push([...released]);
    }
    expect(out).toEqual(frames);
    expect(out[0][0]).toBe(frames[0][0]); // the very datagrams, not copies
    expect(g.counters).toMatchObject({ framesReleased: 3, framesForged: 0 });
    expect(g.heldBytes).toBe(0);
  });

  it('drops a frame signed by another key, one with a datagram altered, and a forged part that contradicts its frame', () => {
    const r = run();
    const g = gate(r.key);
    const forger = run();
    for (const d of forger.frame(1)) expect(g.push(d, 0)).toHaveLength(0);
    const altered = r.frame(2);
    altered[1] = Buffer.from(altered[1]);
    altered[1][MediaOffset.TOKEN + 20] ^= 1; // a payload byte
    for (const d of altered) expect(g.push(d, 0)).toHaveLength(0);
    const honest = r.frame(3);
    const lying = Buffer.from(honest[0]);
    lying.writeUInt32BE(99_999, MediaOffset.FRAME_BYTES);
    expect(g.push(honest[0], 0)).toHaveLength(0);
    expect(g.push(lying, 0)).toHaveLength(0); // a second first part: refused, the real one kept
    const released = honest.slice(1).flatMap((d) => [...g.push(d, 0)]);
    expect(released).toEqual(honest);
    expect(g.counters).toMatchObject({ framesReleased: 1, framesForged: 2, datagramsRefused: 1 });
    // Every datagram taken is released or discarded: 5 + 5 of the dropped frames, and the refused one.
    expect(g.counters.datagramsDiscarded).toBe(11);
    expect(told).toBe(11);
  });

  it('lets an incomplete frame go after the hold time, and the oldest ones when over its bytes', () => {
    const r = run();
    const g = gate(r.key, 100, 8_000);
    const a = r.frame(1);
    g.push(a[0], 0);
    g.expire(100);
    expect(g.counters.framesExpired).toBe(0);
    g.expire(101);
    expect(g.counters.framesExpired).toBe(1);
    expect(g.heldBytes).toBe(0);
    // Three frames of 5 kB missing a part each (about 4 kB held each): the oldest is let go to stay under 8 kB.
    for (let n = 2; n <= 4; n++) for (const d of r.frame(n).slice(1)) g.push(d, 200);
    expect(g.counters.framesExpired).toBe(2);
    expect(g.heldBytes).toBeLessThanOrEqual(8_000);
    // The expired part, the 4 parts of the frame let go for room; then the 8 still held, on clear().
    expect(told).toBe(5);
    g.clear();
    expect(told).toBe(13);
    expect(g.counters.datagramsDiscarded).toBe(13);
  });
});
