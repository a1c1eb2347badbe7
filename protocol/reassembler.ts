import type { MediaMessage } from './codec.ts';
import type { Track } from './constants.ts';

export interface ReassemblerOptions {
  /** Frames assembled at once; a new frame beyond this drops the oldest incomplete one. */
  readonly maxFramesInFlight: number;
  /** Frames claiming more bytes are refused. */
  readonly maxFrameBytes: number;
  /** An incomplete frame older than this is dropped. */
  readonly maxFrameAgeMs: number;
}

export const DEFAULT_REASSEMBLER_OPTIONS: ReassemblerOptions = Object.freeze({
  maxFramesInFlight: 16,
  maxFrameBytes: 4 * 1024 * 1024,
  maxFrameAgeMs: 1000,
});

export interface CompletedFrame {
  readonly track: Track;
  readonly epoch: number;
  readonly frameNo: number;
  readonly timestampMs: number;
  readonly data: Buffer;
}

export interface ReassemblerCounters {
  framesComplete: number;
  /** Frames given up incomplete: a fragment never came in time. */
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

/**
 * Rebuilds frames of one track from MEDIA fragments (PROTOCOL.md §3.4): duplicates and
 * reordering are absorbed, a frame with a missing fragment is dropped and counted, frames are
 * released in frame order only, and memory is bounded by the options. Time is passed in.
 */
export class FrameReassembler {
  readonly counters: ReassemblerCounters = {
    framesComplete: 0, framesDropped: 0, fragmentsLate: 0, fragmentsDuplicate: 0, fragmentsRejected: 0,
  };
  readonly #opts: ReassemblerOptions;
  readonly #pending = new Map<number, PendingFrame>();
  #epoch: number | null = null;
  /** Highest frame number delivered or given up; nothing at or below it is delivered. */
  #floor = -1;

  constructor(opts: Partial<ReassemblerOptions> = {}) {
    this.#opts = { ...DEFAULT_REASSEMBLER_OPTIONS, ...opts };
  }

  /** Frames waiting for fragments. */
  get framesInFlight(): number {
    return this.#pending.size;
  }

  /** Takes one fragment; returns the frame it completes, or null. */
  push(m: MediaMessage, nowMs: number): CompletedFrame | null {
    if (m.epoch !== this.#epoch) this.#restart(m.epoch);
    if (m.frameNo <= this.#floor) {
      this.counters.fragmentsLate++;
      return null;
    }
    if (m.frameBytes > this.#opts.maxFrameBytes) {
      this.counters.fragmentsRejected++;
      return null;
    }
    let frame = this.#pending.get(m.frameNo);
    if (frame === undefined) {
      if (m.fragCount === 1) return this.#complete(m.track, m.frameNo, m.timestampMs, m.payload);
      if (this.#pending.size >= this.#opts.maxFramesInFlight) this.#dropOldest();
      frame = {
        frameNo: m.frameNo, timestampMs: m.timestampMs, frameBytes: m.frameBytes, fragCount: m.fragCount,
        firstSeenMs: nowMs, parts: new Map(), bytes: 0,
      };
      this.#pending.set(m.frameNo, frame);
    } else if (frame.frameBytes !== m.frameBytes || frame.fragCount !== m.fragCount) {
      this.counters.fragmentsRejected++;
      return null;
    }
    if (frame.parts.has(m.fragIndex)) {
      this.counters.fragmentsDuplicate++;
      return null;
    }
    // The payload is a view of its own datagram: kept, not copied, until the frame is whole.
    frame.parts.set(m.fragIndex, m.payload);
    frame.bytes += m.payload.length;
    if (frame.parts.size < frame.fragCount) return null;
    this.#pending.delete(m.frameNo);
    if (frame.bytes !== frame.frameBytes) {
      this.counters.framesDropped++;
      return null;
    }
    const ordered: Buffer[] = new Array(frame.fragCount);
    for (let i = 0; i < frame.fragCount; i++) ordered[i] = frame.parts.get(i)!;
    return this.#complete(m.track, frame.frameNo, frame.timestampMs, Buffer.concat(ordered, frame.frameBytes));
  }

  /** Drops incomplete frames older than maxFrameAgeMs. */
  expire(nowMs: number): void {
    for (const [frameNo, frame] of this.#pending) {
      if (nowMs - frame.firstSeenMs > this.#opts.maxFrameAgeMs) {
        this.#pending.delete(frameNo);
        this.counters.framesDropped++;
      }
    }
  }

  #complete(track: Track, frameNo: number, timestampMs: number, data: Buffer): CompletedFrame {
    // Frames before this one can no longer be delivered in order: give them up.
    for (const [n] of this.#pending) {
      if (n < frameNo) {
        this.#pending.delete(n);
        this.counters.framesDropped++;
      }
    }
    this.#floor = frameNo;
    this.counters.framesComplete++;
    return { track, epoch: this.#epoch!, frameNo, timestampMs, data };
  }

  #dropOldest(): void {
    let oldest = Infinity;
    for (const n of this.#pending.keys()) if (n < oldest) oldest = n;
    this.#pending.delete(oldest);
    this.counters.framesDropped++;
  }

  #restart(epoch: number): void {
    this.counters.framesDropped += this.#pending.size;
    this.#pending.clear();
    this.#epoch = epoch;
    this.#floor = -1;
  }
}
