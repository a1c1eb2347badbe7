import type { MediaMessage } from './codec.ts';
import type { Track } from './constants.ts';

export interface ReassemblerOptions {
  /** Frames assembled or held at once; beyond this the oldest gap is given up. */
  readonly maxFramesInFlight: number;
  /** Frames claiming more bytes are refused. */
  readonly maxFrameBytes: number;
  /**
   * The latency budget (PROTOCOL.md §3.4): how long a missing or incomplete frame may hold back
   * the frames after it while a retransmission can still fill it. 0 gives up at once.
   */
  readonly holdMs: number;
  /** Bytes of fragments and frames held at once; beyond this the oldest gap is given up. */
  readonly maxBytesInFlight: number;
  /**
   * Whether a whole frame is the producer's (its signature, PROTOCOL.md §3.7). A frame that fails
   * is thrown away and counted; its number stays open for the real one. Absent: every frame is.
   */
  readonly verify: ((frame: CompletedFrame) => boolean) | null;
}

export const DEFAULT_REASSEMBLER_OPTIONS: ReassemblerOptions = Object.freeze({
  maxFramesInFlight: 32,
  maxFrameBytes: 4 * 1024 * 1024,
  holdMs: 120,
  maxBytesInFlight: 16 * 1024 * 1024,
  verify: null,
});

export interface CompletedFrame {
  readonly track: Track;
  readonly epoch: number;
  readonly frameNo: number;
  readonly timestampMs: number;
  readonly data: Buffer;
  /** Sequence number of its first fragment; its fragments have the fragCount seqs from there. */
  readonly firstSeq: number;
  readonly fragCount: number;
  /** When its first fragment arrived. */
  readonly firstSeenMs: number;
}

export interface ReassemblerCounters {
  /** Frames released: whole, and in order. */
  framesComplete: number;
  /** Frames given up: incomplete, or never seen at all (a gap in frame numbers), when their time ran out. */
  framesDropped: number;
  /** Fragments of frames already delivered or given up. */
  fragmentsLate: number;
  fragmentsDuplicate: number;
  /** Fragments that contradict the frame's earlier fragments, are too large, or were evicted unfinished. */
  fragmentsRejected: number;
  /** Whole frames whose signature failed: forged, or corrupted on the way (PROTOCOL.md §3.7). */
  framesForged: number;
}

interface PendingFrame {
  readonly frameNo: number;
  readonly timestampMs: number;
  readonly frameBytes: number;
  readonly fragCount: number;
  readonly firstSeq: number;
  readonly firstSeenMs: number;
  /** Fragments by index; each keeps its offset, checked when the frame is whole. */
  readonly parts: Map<number, MediaMessage>;
  bytes: number;
}

interface HeldFrame {
  readonly frame: CompletedFrame;
  readonly firstSeenMs: number;
}

const NONE: readonly CompletedFrame[] = Object.freeze([]);

/**
 * Rebuilds frames of one track from MEDIA fragments (PROTOCOL.md §3.4): duplicates and
 * reordering are absorbed, frames are released in frame order only and never incomplete.
 * A frame that is missing (or missing a fragment) holds back the complete frames after it for
 * at most `holdMs` from when its gap was first seen, so a retransmission can still fill it; then
 * it is given up and counted. Memory is bounded by the options. Time is passed in.
 */
export class FrameReassembler {
  readonly counters: ReassemblerCounters = {
    framesComplete: 0, framesDropped: 0, fragmentsLate: 0, fragmentsDuplicate: 0, fragmentsRejected: 0, framesForged: 0,
  };
  readonly #opts: ReassemblerOptions;
  readonly #pending = new Map<number, PendingFrame>();
  readonly #held = new Map<number, HeldFrame>();
  #epoch: number | null = null;
  /** Highest frame number released or given up; nothing at or below it is released. -1: none yet. */
  #floor = -1;
  #bytesInFlight = 0;

  constructor(opts: Partial<ReassemblerOptions> = {}) {
    this.#opts = { ...DEFAULT_REASSEMBLER_OPTIONS, ...opts };
  }

  /** Frames waiting for fragments, or complete and waiting for an earlier one. */
  get framesInFlight(): number {
    return this.#pending.size + this.#held.size;
  }

  /** Takes one fragment; returns the frames it releases, in order (usually none or one). */
  push(m: MediaMessage, nowMs: number): readonly CompletedFrame[] {
    let out: CompletedFrame[] | null = null;
    if (m.epoch !== this.#epoch) out = this.#restart(m.epoch);
    if (m.frameNo <= this.#floor) {
      this.counters.fragmentsLate++;
      return out ?? NONE;
    }
    if (m.frameBytes > this.#opts.maxFrameBytes) {
      this.counters.fragmentsRejected++;
      return out ?? NONE;
    }
    if (this.#held.has(m.frameNo)) {
      this.counters.fragmentsDuplicate++;
      return out ?? NONE;
    }
    let frame = this.#pending.get(m.frameNo);
    const firstSeq = (m.seq - m.fragIndex) >>> 0;
    let done: CompletedFrame;
    if (frame === undefined && m.fragCount === 1) {
      done = { track: m.track, epoch: m.epoch, frameNo: m.frameNo, timestampMs: m.timestampMs, data: m.payload, firstSeq, fragCount: 1, firstSeenMs: nowMs };
    } else {
      if (frame === undefined) {
        out = this.#makeRoom(out, m.payload.length);
        if (m.frameNo <= this.#floor) {
          // Making room gave up this frame's gap, and the frame with it.
          this.counters.fragmentsLate++;
          return out ?? NONE;
        }
        frame = {
          frameNo: m.frameNo, timestampMs: m.timestampMs, frameBytes: m.frameBytes, fragCount: m.fragCount, firstSeq,
          firstSeenMs: nowMs, parts: new Map(), bytes: 0,
        };
        this.#pending.set(m.frameNo, frame);
      } else if (
        frame.frameBytes !== m.frameBytes || frame.fragCount !== m.fragCount || frame.firstSeq !== firstSeq ||
        frame.timestampMs !== m.timestampMs || frame.bytes + m.payload.length > frame.frameBytes
      ) {
        // PROTOCOL.md §3.4: a fragment that contradicts the frame's first one (or would overfill it) is refused.
        this.counters.fragmentsRejected++;
        return out ?? NONE;
      }
      if (frame.parts.has(m.fragIndex)) {
        this.counters.fragmentsDuplicate++;
        return out ?? NONE;
      }
      // The payload is a view of its own datagram: kept, not copied, until the frame is whole.
      frame.parts.set(m.fragIndex, m);
      frame.bytes += m.payload.length;
      this.#bytesInFlight += m.payload.length;
      if (frame.parts.size < frame.fragCount) return out ?? NONE;
      this.#dropPending(frame);
      const data = this.#join(frame);
      if (data === null) {
        // Fragments that overlap or leave holes: refused; the frame number stays open.
        this.counters.fragmentsRejected++;
        return this.#release(out, nowMs);
      }
      done = { track: m.track, epoch: m.epoch, frameNo: m.frameNo, timestampMs: frame.timestampMs, data, firstSeq, fragCount: frame.fragCount, firstSeenMs: frame.firstSeenMs };
    }
    if (this.#opts.verify !== null && !this.#opts.verify(done)) {
      // Not the producer's: it neither moves the floor nor takes the number from the real frame.
      this.counters.framesForged++;
      return this.#release(out, nowMs);
    }
    if (this.#floor < 0) {
      // The first frame of an epoch: nothing before it is awaited.
      this.#giveUpThrough(m.frameNo - 1);
      this.counters.framesComplete++;
      (out ??= []).push(done);
      this.#floor = m.frameNo;
    } else if (m.frameNo === this.#floor + 1) {
      this.counters.framesComplete++;
      (out ??= []).push(done);
      this.#floor = m.frameNo;
    } else {
      out = this.#makeRoom(out, done.data.length);
      // (Making room may have given this frame up with its gap; it is counted dropped then.)
      if (m.frameNo > this.#floor) {
        this.#held.set(m.frameNo, { frame: done, firstSeenMs: done.firstSeenMs });
        this.#bytesInFlight += done.data.length;
      }
    }
    return this.#release(out, nowMs);
  }

  /**
   * Frames before `frameNo` are not awaited: they were sent before a subscriber joined, and what
   * it got of them was the join replay (PROTOCOL.md §3.5). Complete frames held below it are
   * released in order; unfinished ones are let go, uncounted; the floor moves to frameNo - 1
   * (before the first frame it stays: nothing is awaited yet). Returns the frames released.
   */
  skipBefore(frameNo: number): readonly CompletedFrame[] {
    if (frameNo - 1 <= this.#floor) return NONE;
    for (const f of [...this.#pending.values()]) if (f.frameNo < frameNo) this.#dropPending(f);
    // Nothing released yet (the replayed frame lost a fragment on the way): nothing is awaited either.
    if (this.#floor < 0) return NONE;
    let out: CompletedFrame[] | null = null;
    for (const n of [...this.#held.keys()].sort((a, b) => a - b)) {
      if (n >= frameNo) break;
      const h = this.#held.get(n)!;
      this.#held.delete(n);
      this.#bytesInFlight -= h.frame.data.length;
      this.counters.framesComplete++;
      (out ??= []).push(h.frame);
    }
    this.#floor = frameNo - 1;
    return this.#releaseReady(out) ?? NONE;
  }

  /** Gives up gaps whose time ran out; returns the complete frames that were waiting behind them. */
  expire(nowMs: number): readonly CompletedFrame[] {
    return this.#release(null, nowMs) ?? NONE;
  }

  /**
   * The frame's bytes, when its fragments tile [0, frameBytes) exactly by their offsets
   * (PROTOCOL.md §3.4); null when they overlap or leave a hole.
   */
  #join(frame: PendingFrame): Buffer | null {
    const data = Buffer.allocUnsafe(frame.frameBytes);
    let offset = 0;
    for (let i = 0; i < frame.fragCount; i++) {
      const part = frame.parts.get(i)!;
      if (part.fragOffset !== offset) return null;
      offset += part.payload.copy(data, offset);
    }
    return offset === frame.frameBytes ? data : null;
  }

  #dropPending(frame: PendingFrame): void {
    this.#pending.delete(frame.frameNo);
    this.#bytesInFlight -= frame.bytes;
  }

  /** Releases held frames that are next in order, giving up gaps older than holdMs. */
  #release(out: CompletedFrame[] | null, nowMs: number): readonly CompletedFrame[] {
    for (;;) {
      out = this.#releaseReady(out);
      // The gap at floor + 1: since when has it been known, and is its time up?
      const since = this.#gapSinceMs();
      if (since === Infinity || nowMs - since < this.#opts.holdMs) return out ?? NONE;
      if (!this.#giveUpGap()) return out ?? NONE;
    }
  }

  /** Releases the held frames that follow the floor without a gap. */
  #releaseReady(out: CompletedFrame[] | null): CompletedFrame[] | null {
    for (let next = this.#held.get(this.#floor + 1); next !== undefined; next = this.#held.get(this.#floor + 1)) {
      this.#held.delete(this.#floor + 1);
      this.#bytesInFlight -= next.frame.data.length;
      this.counters.framesComplete++;
      (out ??= []).push(next.frame);
      this.#floor++;
    }
    return out;
  }

  /**
   * When the frame after the floor was first missed: its first fragment, or the first verified
   * later frame. An unfinished later frame proves nothing (anyone can send a fragment), so it
   * starts no clock. Before the first frame: the oldest unfinished one, so it is cleared in time.
   */
  #gapSinceMs(): number {
    let since = Infinity;
    if (this.#floor < 0) {
      for (const f of this.#pending.values()) if (f.firstSeenMs < since) since = f.firstSeenMs;
      return since;
    }
    const head = this.#pending.get(this.#floor + 1);
    if (head !== undefined) return head.firstSeenMs;
    for (const f of this.#held.values()) if (f.firstSeenMs < since) since = f.firstSeenMs;
    return since;
  }

  /**
   * Gives up the frame after the floor when something of it arrived; when nothing did, the run
   * of absent frames up to the first verified one. Before the first frame, the oldest unfinished
   * frame. Returns whether the floor moved.
   */
  #giveUpGap(): boolean {
    const head = this.#floor + 1;
    if (this.#floor >= 0 && this.#pending.has(head)) return this.#giveUpThrough(head);
    if (this.#floor < 0) {
      // Nothing verified yet, so no floor to move: the oldest unfinished frame is just let go.
      let oldest: PendingFrame | null = null;
      for (const f of this.#pending.values()) if (oldest === null || f.firstSeenMs < oldest.firstSeenMs) oldest = f;
      if (oldest === null) return false;
      this.#dropPending(oldest);
      this.counters.framesDropped++;
      return true;
    }
    let lowest = Infinity;
    for (const n of this.#held.keys()) if (n < lowest) lowest = n;
    return lowest !== Infinity && this.#giveUpThrough(lowest - 1);
  }

  /** Counts every frame up to `frameNo` not yet released as dropped, and moves the floor there. */
  #giveUpThrough(frameNo: number): boolean {
    if (frameNo <= this.#floor) return false;
    // Before the first frame only the incomplete frames seen count; after it, every frame skipped.
    if (this.#floor >= 0) this.counters.framesDropped += frameNo - this.#floor;
    else for (const n of this.#pending.keys()) if (n <= frameNo) this.counters.framesDropped++;
    for (const f of this.#pending.values()) if (f.frameNo <= frameNo) this.#dropPending(f);
    this.#floor = frameNo;
    return true;
  }

  /**
   * Keeps frames and bytes in flight under their bounds before `bytes` more are taken. Unfinished
   * frames beyond the head go first, the furthest ahead first (forged fragments land there, and
   * an honest one lost that way can still be refilled); then the oldest gap is given up.
   */
  #makeRoom(out: CompletedFrame[] | null, bytes: number): CompletedFrame[] | null {
    const full = (): boolean => this.framesInFlight >= this.#opts.maxFramesInFlight || this.#bytesInFlight + bytes > this.#opts.maxBytesInFlight;
    while (full()) {
      let furthest: PendingFrame | null = null;
      const head = this.#floor < 0 ? -1 : this.#floor + 1;
      for (const f of this.#pending.values()) if (f.frameNo !== head && (furthest === null || f.frameNo > furthest.frameNo)) furthest = f;
      if (furthest !== null) {
        this.#dropPending(furthest);
        this.counters.fragmentsRejected += furthest.parts.size;
        continue;
      }
      if (!this.#giveUpGap()) {
        // Only the head is unfinished and nothing verified waits behind it: give the head up.
        if (this.#floor < 0 || !this.#giveUpThrough(this.#floor + 1)) break;
      }
      out = this.#releaseReady(out);
    }
    return out;
  }

  /** A new epoch (the producer restarted): what was complete is released, the rest given up. */
  #restart(epoch: number): CompletedFrame[] | null {
    let out: CompletedFrame[] | null = null;
    const held = [...this.#held.entries()].sort((a, b) => a[0] - b[0]);
    for (const [, h] of held) (out ??= []).push(h.frame);
    this.counters.framesComplete += held.length;
    this.counters.framesDropped += this.#pending.size;
    this.#pending.clear();
    this.#held.clear();
    this.#bytesInFlight = 0;
    this.#epoch = epoch;
    this.#floor = -1;
    return out;
  }
}
