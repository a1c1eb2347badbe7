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
}

export const DEFAULT_REASSEMBLER_OPTIONS: ReassemblerOptions = Object.freeze({
  maxFramesInFlight: 32,
  maxFrameBytes: 4 * 1024 * 1024,
  holdMs: 120,
});

export interface CompletedFrame {
  readonly track: Track;
  readonly epoch: number;
  readonly frameNo: number;
  readonly timestampMs: number;
  readonly data: Buffer;
}

export interface ReassemblerCounters {
  /** Frames released: whole, and in order. */
  framesComplete: number;
  /** Frames given up: incomplete, or never seen at all (a gap in frame numbers), when their time ran out. */
  framesDropped: number;
  /** Fragments of frames already delivered or given up. */
  fragmentsLate: number;
  fragmentsDuplicate: number;
  /** Fragments that contradict the frame's earlier fragments, or are too large. */
  fragmentsRejected: number;
}

interface PendingFrame {
  readonly frameNo: number;
  readonly timestampMs: number;
  readonly frameBytes: number;
  readonly fragCount: number;
  readonly firstSeenMs: number;
  readonly parts: Map<number, Buffer>;
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
    framesComplete: 0, framesDropped: 0, fragmentsLate: 0, fragmentsDuplicate: 0, fragmentsRejected: 0,
  };
  readonly #opts: ReassemblerOptions;
  readonly #pending = new Map<number, PendingFrame>();
  readonly #held = new Map<number, HeldFrame>();
  #epoch: number | null = null;
  /** Highest frame number released or given up; nothing at or below it is released. -1: none yet. */
  #floor = -1;

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
    let data: Buffer;
    let firstSeenMs = nowMs;
    if (frame === undefined && m.fragCount === 1) {
      data = m.payload;
    } else {
      if (frame === undefined) {
        out = this.#makeRoom(out);
        if (m.frameNo <= this.#floor) {
          // Making room gave up this frame's gap, and the frame with it.
          this.counters.fragmentsLate++;
          return out ?? NONE;
        }
        frame = {
          frameNo: m.frameNo, timestampMs: m.timestampMs, frameBytes: m.frameBytes, fragCount: m.fragCount,
          firstSeenMs: nowMs, parts: new Map(), bytes: 0,
        };
        this.#pending.set(m.frameNo, frame);
      } else if (frame.frameBytes !== m.frameBytes || frame.fragCount !== m.fragCount) {
        this.counters.fragmentsRejected++;
        return out ?? NONE;
      }
      if (frame.parts.has(m.fragIndex)) {
        this.counters.fragmentsDuplicate++;
        return out ?? NONE;
      }
      // The payload is a view of its own datagram: kept, not copied, until the frame is whole.
      frame.parts.set(m.fragIndex, m.payload);
      frame.bytes += m.payload.length;
      if (frame.parts.size < frame.fragCount) return out ?? NONE;
      this.#pending.delete(m.frameNo);
      if (frame.bytes !== frame.frameBytes) {
        // Fragments that overlap or leave holes: the frame counts as missing (given up with its gap).
        this.counters.fragmentsRejected++;
        return this.#release(out, nowMs);
      }
      const ordered: Buffer[] = new Array(frame.fragCount);
      for (let i = 0; i < frame.fragCount; i++) ordered[i] = frame.parts.get(i)!;
      data = Buffer.concat(ordered, frame.frameBytes);
      firstSeenMs = frame.firstSeenMs;
    }
    const done: CompletedFrame = { track: m.track, epoch: this.#epoch!, frameNo: m.frameNo, timestampMs: frame?.timestampMs ?? m.timestampMs, data };
    if (this.#floor < 0) {
      // The first frame of an epoch: nothing before it is awaited.
      this.#giveUpThrough(m.frameNo - 1);
      this.counters.framesComplete++;
      (out ??= []).push(done);
      this.#floor = m.frameNo;
    } else {
      if (m.frameNo !== this.#floor + 1) out = this.#makeRoom(out);
      // (Making room may have given this frame up with its gap; it is counted dropped then.)
      if (m.frameNo > this.#floor) this.#held.set(m.frameNo, { frame: done, firstSeenMs });
    }
    return this.#release(out, nowMs);
  }

  /** Gives up gaps whose time ran out; returns the complete frames that were waiting behind them. */
  expire(nowMs: number): readonly CompletedFrame[] {
    return this.#release(null, nowMs) ?? NONE;
  }

  /** Releases held frames that are next in order, giving up gaps older than holdMs. */
  #release(out: CompletedFrame[] | null, nowMs: number): readonly CompletedFrame[] {
    for (;;) {
      out = this.#releaseReady(out);
      // The gap at floor + 1: since when has it been known, and is its time up?
      const since = this.#gapSinceMs();
      if (since === Infinity || nowMs - since < this.#opts.holdMs) return out ?? NONE;
      this.#giveUpGap();
    }
  }

  /** Releases the held frames that follow the floor without a gap. */
  #releaseReady(out: CompletedFrame[] | null): CompletedFrame[] | null {
    for (let next = this.#held.get(this.#floor + 1); next !== undefined; next = this.#held.get(this.#floor + 1)) {
      this.#held.delete(this.#floor + 1);
      this.counters.framesComplete++;
      (out ??= []).push(next.frame);
      this.#floor++;
    }
    return out;
  }

  /** When the frame after the floor was first missed: its first fragment, or the first later frame seen. */
  #gapSinceMs(): number {
    const head = this.#pending.get(this.#floor + 1);
    if (head !== undefined) return head.firstSeenMs;
    let since = Infinity;
    for (const f of this.#pending.values()) if (f.firstSeenMs < since) since = f.firstSeenMs;
    for (const f of this.#held.values()) if (f.firstSeenMs < since) since = f.firstSeenMs;
    return since;
  }

  /**
   * Gives up the frame after the floor; when nothing of it arrived, the whole run of absent
   * frames up to the first one seen. Before the first frame, the oldest incomplete frame.
   */
  #giveUpGap(): void {
    const head = this.#floor + 1;
    if (this.#floor >= 0 && this.#pending.has(head)) return this.#giveUpThrough(head);
    let lowest = Infinity;
    for (const n of this.#pending.keys()) if (n < lowest) lowest = n;
    for (const n of this.#held.keys()) if (n < lowest) lowest = n;
    if (lowest === Infinity) return;
    this.#giveUpThrough(this.#floor < 0 ? lowest : lowest - 1);
  }

  /** Counts every frame up to `frameNo` not yet released as dropped, and moves the floor there. */
  #giveUpThrough(frameNo: number): void {
    if (frameNo <= this.#floor) return;
    // Before the first frame only the incomplete frames seen count; after it, every frame skipped.
    if (this.#floor >= 0) this.counters.framesDropped += frameNo - this.#floor;
    else for (const n of this.#pending.keys()) if (n <= frameNo) this.counters.framesDropped++;
    for (const n of this.#pending.keys()) if (n <= frameNo) this.#pending.delete(n);
    this.#floor = frameNo;
  }

  /** Keeps frames in flight under the bound: gives up the oldest gap, releasing what it held. */
  #makeRoom(out: CompletedFrame[] | null): CompletedFrame[] | null {
    while (this.framesInFlight >= this.#opts.maxFramesInFlight) {
      this.#giveUpGap();
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
    this.#epoch = epoch;
    this.#floor = -1;
    return out;
  }
}
