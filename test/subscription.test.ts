import { describe, expect, it } from 'vitest';
import { Subscription } from '../client/subscription.ts';
import { decode, encodeMedia, MediaPacketizer, Track, type MediaMessage } from '../protocol/index.ts';
import { FrameSealer } from '../protocol/frame-seal.ts';

/**
 * What a fellow viewer can do to another viewer's stream (PROTOCOL.md §7): it knows the epoch,
 * frame numbers and seqs, and can forge the broker's source address, but holds no producer key.
 * At worst a forged datagram costs a counted frame: no forged or corrupt frame is delivered, no
 * stall past the latency budget, no poisoned counter.
 */
const ID = 0x1aaa99;
const EPOCH = 77;
const LATENCY = 120;

function frameOf(n: number, bytes: number): Buffer {
  return Buffer.alloc(bytes, n & 0xff).fill(Buffer.from(`frame-${n}-`), 0, Math.min(bytes, 10));
}

function setup() {
  const sealer = new FrameSealer({ producerId: ID, passphrase: null });
  const p = new MediaPacketizer({ producerId: ID, epoch: EPOCH, maxDatagramBytes: 600, seal: (f, b) => sealer.seal(f, b) });
  const sub = new Subscription(ID, { latencyMs: LATENCY, nakRetryMs: 20 });
  sub.setRun({ epoch: EPOCH, frameKey: sealer.publicKey, encrypted: false });
  const frames: Buffer[] = [];
  /** The next real frame's datagrams, decoded. */
  const next = (bytes = 1500): MediaMessage[] => {
    const f = frameOf(frames.length, bytes);
    frames.push(f);
    return p.packetize(Track.VIDEO, f, frames.length * 40, 1).map((d) => decode(d) as MediaMessage);
  };
  const delivered: Buffer[] = [];
  const push = (ms: MediaMessage[], now: number): void => {
    for (const m of ms) for (const f of sub.push(m, now)) delivered.push(f.data);
  };
  const tick = (now: number): void => {
    for (const f of sub.tick(now)) delivered.push(f.data);
  };
  return { sealer, sub, next, push, tick, frames, delivered };
}

/** A datagram as a forger writes it: any header, any payload. */
function forged(m: Partial<MediaMessage> & { frameNo: number; seq: number }): MediaMessage {
  const payload = m.payload ?? Buffer.alloc(200, 0x66);
  const fields = {
    producerId: ID, epoch: EPOCH, track: Track.VIDEO, flags: 1, fragIndex: 0, fragCount: 1, timestampMs: 0,
    frameBytes: payload.length, fragOffset: 0, payload, ...m,
  };
  return decode(encodeMedia(fields)) as MediaMessage;
}

describe('Subscription against a fellow viewer', () => {
  it('never delivers a forged whole frame, and still takes the real one of that number', () => {
    const t = setup();
    t.push(t.next(), 0);
    // The forger's frame 1, a whole JPEG signed with its own key, arrives first.
    const impostor = new FrameSealer({ producerId: ID, passphrase: null }).seal({ producerId: ID, epoch: EPOCH, track: 0, frameNo: 1, timestampMs: 80 }, Buffer.alloc(300, 0x99));
    t.push([forged({ frameNo: 1, seq: 3, payload: impostor, timestampMs: 80 })], 5);
    t.push(t.next(), 40);
    expect(t.delivered).toEqual(t.frames);
    expect(t.sub.summary).toMatchObject({ frames: 2, framesForged: 1, framesDropped: 0 });
  });

  it('is not frozen by a frame number 100000 ahead, and its counters stay true', () => {
    const t = setup();
    t.push(t.next(), 0);
    t.push([forged({ frameNo: 100_001, seq: 50_000 })], 1);
    t.push([forged({ frameNo: 100_002, seq: 50_001, fragCount: 2, frameBytes: 400 })], 1);
    for (let n = 1; n < 20; n++) {
      t.push(t.next(), n * 40);
      t.tick(n * 40 + 20);
    }
    t.tick(10_000);
    expect(t.delivered).toEqual(t.frames);
    const s = t.sub.summary;
    expect(s).toMatchObject({ frames: 20, framesDropped: 0, framesForged: 1, packetsLost: 0 });
    expect(s.packetsExpected).toBe(20 * 3);
    expect(t.sub.naks(10_000)).toEqual([]); // nothing asked for that was never sent
  });

  it('costs at most the frame a forged fragment lands in, counted, never corrupt', () => {
    // Frame 1's real fragments (the packetizer numbers every run alike) and three forgeries of
    // them that arrive first: zeroed bytes at a real index, a lying fragment count, a lying size.
    const real = (() => {
      const t = setup();
      t.next();
      return t.next();
    })();
    const attacks = [
      forged({ ...real[1], payload: Buffer.alloc(real[1].payload.length) }),
      forged({ ...real[0], fragCount: 9, frameBytes: 9 * real[0].payload.length }),
      forged({ ...real[0], frameBytes: real[0].frameBytes + 1000 }),
    ];
    expect.hasAssertions();
    for (const attack of attacks) {
      const t = setup();
      t.push(t.next(), 0);
      const victim = t.next();
      t.push([attack], 1);
      t.push(victim, 2);
      for (let n = 2; n < 6; n++) t.push(t.next(), n * 40);
      t.tick(1000);
      // Every frame delivered is one the producer sent, byte for byte; at most the attacked one is missing.
      for (const d of t.delivered) expect(t.frames.some((f) => f.equals(d))).toBe(true);
      const s = t.sub.summary;
      expect(s.framesDropped).toBeLessThanOrEqual(1);
      expect(s.framesDropped + s.frames).toBe(6);
      expect(s.packetsLost).toBe(0);
    }
  });

  it('looks at nothing of another run than the one the broker named', () => {
    const t = setup();
    t.push(t.next(), 0);
    t.push([forged({ epoch: EPOCH + 1, frameNo: 0, seq: 0 }), forged({ epoch: EPOCH + 1, frameNo: 5, seq: 9_999_999 })], 1);
    t.push(t.next(), 40);
    expect(t.delivered).toEqual(t.frames);
    expect(t.sub.summary).toMatchObject({ foreignDatagrams: 2, packetsExpected: 6, packetsLost: 0 });
  });

  it('follows a real jump past its seq window (a client that was frozen), counting what it missed', () => {
    const t = setup();
    t.push(t.next(), 0);
    for (let n = 0; n < 700; n++) t.next(); // 700 frames x 3 datagrams never arrive
    for (let n = 0; n < 5; n++) t.push(t.next(), 30_000 + n * 40);
    t.tick(31_000);
    const s = t.sub.summary;
    expect(s.frames).toBe(6);
    expect(s.framesDropped).toBe(700);
    expect(t.delivered.slice(1)).toEqual(t.frames.slice(-5));
    expect(s.framesForged).toBe(0);
  });
});

describe('Subscription joining a live stream (PROTOCOL.md §3.5)', () => {
  it('counts loss and awaits frames only from the first live datagram: the join replay is older and flagged RETRANSMIT', () => {
    const t = setup();
    const all = [0, 1, 2, 3, 4].map(() => t.next());
    // The replay: frame 1, whole (the broker's cached picture), flagged; frames 2-3 passed before the join.
    t.push(all[1].map((m) => ({ ...m, flags: m.flags | 2 })), 0);
    expect(t.delivered).toEqual([t.frames[1]]);
    t.push(all[4], 5);
    // Frame 4 shows at once: frames 2 and 3 were never the subscriber's to wait for.
    expect(t.delivered).toEqual([t.frames[1], t.frames[4]]);
    const s = t.sub.summary;
    expect(s).toMatchObject({ packetsLost: 0, framesDropped: 0, retransmitsReceived: 0, packetsReceived: all[4].length });
    expect(t.sub.nakDue(10)).toBe(false);
  });
});

describe('Subscription joining through a lossy link', () => {
  it('a replayed frame that lost a fragment on the way is let go uncounted when the live stream starts', () => {
    const t = setup();
    const all = [0, 1, 2].map(() => t.next());
    t.push(all[0].slice(1).map((m) => ({ ...m, flags: m.flags | 2 })), 0); // the replay, its first fragment lost
    t.push(all[2], 5);
    expect(t.delivered).toEqual([t.frames[2]]);
    expect(t.sub.summary).toMatchObject({ framesDropped: 0, packetsLost: 0 });
  });
});
