import { describe, expect, it } from 'vitest';
import { DatagramLog, GapTracker, JitterEstimator, MediaPacketizer, RetransmitHistory, Track } from '../protocol/index.ts';

const pk = () => new MediaPacketizer({ producerId: 1, epoch: 7, maxDatagramBytes: 300 });
/** n single-fragment datagrams with seqs 0..n-1. */
const datagrams = (n: number, p = pk()) => Array.from({ length: n }, (_, i) => p.packetize(Track.VIDEO, Buffer.alloc(10, i), i, 1)[0]);

describe('RetransmitHistory', () => {
  const V = Track.VIDEO;
  it('gives back a copy of the datagram received while it is younger than the age asked', () => {
    const h = new RetransmitHistory(8, new DatagramLog(64 * 1024));
    const ds = datagrams(3);
    ds.forEach((d, i) => h.put(V, d, 100 + i));
    const got = h.get(V, 7, 1, 150, 100)!;
    expect(got.equals(ds[1])).toBe(true);
    got[13] |= 0x02;
    expect(ds[1][13]).toBe(1); // a copy: flagging it touches nothing else
    expect(h.get(V, 7, 1, 150, 100)![13]).toBe(1);
    expect(h.get(V, 7, 1, 202, 100)).toBeNull(); // arrived at 101: too old to arrive in time
    expect(h.get(V, 8, 1, 150, 100)).toBeNull(); // another epoch
    expect(h.get(V, 7, 3, 150, 100)).toBeNull(); // never sent
    expect(h.get(Track.AUDIO, 7, 1, 150, 100)).toBeNull(); // another track
  });

  it('holds at most its slots per track and what the log holds, overwriting the oldest', () => {
    const h = new RetransmitHistory(5, new DatagramLog(64 * 1024)); // rounded up to 8 slots
    expect(h.capacity).toBe(8);
    const ds = datagrams(20);
    ds.forEach((d) => h.put(V, d, 0));
    expect(h.get(V, 7, 11, 0, 10)).toBeNull();
    expect(h.get(V, 7, 12, 0, 10)!.equals(ds[12])).toBe(true);
    const few = datagrams(10);
    const small = new RetransmitHistory(64, new DatagramLog(4 * few[0].length)); // room for 4 datagrams
    few.forEach((d) => small.put(V, d, 0));
    expect(few.map((d, i) => small.get(V, 7, i, 0, 10) !== null)).toEqual([false, false, false, false, false, false, true, true, true, true]);
  });

  it('lets its index go when the stream has been idle longer than the budget', () => {
    const h = new RetransmitHistory(64, new DatagramLog(64 * 1024));
    expect(h.bytesHeld).toBe(0); // nothing until the first datagram
    datagrams(10).forEach((d, i) => h.put(V, d, i * 10));
    expect(h.bytesHeld).toBeGreaterThan(0);
    h.release(100, 30); // the latest arrived at 90
    expect(h.bytesHeld).toBeGreaterThan(0);
    h.release(121, 30);
    expect(h.bytesHeld).toBe(0);
    expect(h.get(V, 7, 9, 121, 1000)).toBeNull();
  });

  it('shares one log between producers, and tells a restarted producer\'s datagrams from the old ones', () => {
    const log = new DatagramLog(64 * 1024);
    const h = new RetransmitHistory(8, log);
    const other = new RetransmitHistory(8, log);
    const theirs = datagrams(3, new MediaPacketizer({ producerId: 2, epoch: 7, maxDatagramBytes: 300 }));
    datagrams(6).forEach((d, i) => {
      h.put(V, d, 0);
      if (i < 3) other.put(V, theirs[i], 0);
    });
    expect(other.get(V, 7, 2, 0, 10)!.equals(theirs[2])).toBe(true);
    const [d0] = datagrams(1, new MediaPacketizer({ producerId: 1, epoch: 8, maxDatagramBytes: 300 }));
    h.put(V, d0, 1);
    expect(h.get(V, 8, 0, 1, 10)!.equals(d0)).toBe(true);
    expect(h.get(V, 7, 0, 1, 10)).toBeNull();
  });
});

describe('GapTracker', () => {
  it('asks for a gap at once, again after retryMs, and gives it up after the budget', () => {
    const g = new GapTracker({ budgetMs: 120, retryMs: 30 });
    for (const s of [0, 1, 4]) g.record(1, s, 0);
    expect(g.due(0)).toEqual([{ first: 2, count: 2 }]);
    expect(g.due(29)).toBeNull();
    expect(g.due(30)).toEqual([{ first: 2, count: 2 }]);
    g.record(1, 2, 31); // a retransmission arrives
    expect(g.due(60)).toEqual([{ first: 3, count: 1 }]);
    expect(g.due(120)).toBeNull();
    expect(g.abandoned).toBe(1);
    expect(g.missingCount).toBe(0);
  });

  it('expects the rest of a frame after one of its fragments, and its start when joining mid-frame', () => {
    const g = new GapTracker({ tailGraceMs: 10 });
    g.record(1, 12, 0, 2, 5); // fragment 2 of 5: seqs 10..14 make the frame
    expect(g.due(0)).toEqual([{ first: 10, count: 2 }]);
    g.record(1, 13, 1, 3, 5);
    expect(g.due(9)).toBeNull(); // 14 may still be on its way
    expect(g.due(10)).toEqual([{ first: 14, count: 1 }]);
  });

  it('is not fooled by reordering: a late original fills its gap', () => {
    const g = new GapTracker();
    for (const s of [0, 2, 1, 3]) g.record(1, s, 0);
    expect(g.due(100)).toBeNull();
  });

  it('bounds what it tracks', () => {
    const g = new GapTracker({ maxMissing: 100 });
    g.record(1, 0, 0);
    g.record(1, 1_000_000, 0);
    expect(g.missingCount).toBe(100);
    const ranges = g.due(0)!;
    expect(ranges).toEqual([{ first: 1_000_000 - 100, count: 100 }]);
  });

  it('starts over on a new epoch', () => {
    const g = new GapTracker();
    for (const s of [0, 5]) g.record(1, s, 0);
    g.record(2, 0, 0);
    expect(g.due(0)).toBeNull();
  });
});

describe('JitterEstimator (RFC 3550 §6.4.1)', () => {
  it('is 0 for a steady path and converges to the mean deviation of transit time', () => {
    const steady = new JitterEstimator();
    for (let i = 0; i < 100; i++) steady.record(i * 83, i * 83 + 5);
    expect(steady.jitterMs).toBe(0);
    const j = new JitterEstimator();
    // Transit alternating 5 and 9 ms: every D is 4 ms, so J tends to 4.
    for (let i = 0; i < 200; i++) j.record(i * 83, i * 83 + (i % 2 === 0 ? 5 : 9));
    expect(j.jitterMs).toBeCloseTo(4, 3);
  });
});
