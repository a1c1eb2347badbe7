import { MAX_NAK_RANGE_LENGTH, MAX_NAK_RANGES } from './constants.ts';
import type { SeqRange } from './codec.ts';

export interface GapTrackerOptions {
  /** A missing datagram is asked for again until this long after its gap was seen (the latency budget). */
  readonly budgetMs: number;
  /** Wait between two NAKs for the same datagram (at least a round trip). */
  readonly retryMs: number;
  /** Missing datagrams tracked at once; a larger gap is asked for from its newest end. */
  readonly maxMissing: number;
  /**
   * The rest of a frame's fragments are expected this soon after one of them: a frame is sent
   * in one burst, so a lost last fragment is asked for now rather than when the next frame comes.
   */
  readonly tailGraceMs: number;
}

export const DEFAULT_GAP_TRACKER_OPTIONS: GapTrackerOptions = Object.freeze({ budgetMs: 120, retryMs: 30, maxMissing: 1024, tailGraceMs: 10 });

interface Missing {
  readonly sinceMs: number;
  dueMs: number;
  /** When it was first asked for (-1: not yet), and how often. */
  nakMs: number;
  naks: number;
}

/**
 * A receiver's list of missing sequence numbers on one track, and when to ask for each
 * (PROTOCOL.md §3.6): a gap is NAKed as soon as it is seen, again every `retryMs` while it is
 * missing, and given up `budgetMs` after it was seen, when a retransmission could no longer
 * arrive in time. Retransmissions and late originals both fill a gap. Pure: time is passed in.
 */
export class GapTracker {
  readonly #opts: GapTrackerOptions;
  readonly #missing = new Map<number, Missing>();
  #epoch: number | null = null;
  #highest = -1;
  /** Datagrams asked for, and gaps given up unfilled. */
  nakked = 0;
  abandoned = 0;
  /** Whether the last `record` found a gap due at once (not only fragments expected soon). */
  gapOpened = false;

  constructor(opts: Partial<GapTrackerOptions> = {}) {
    this.#opts = { ...DEFAULT_GAP_TRACKER_OPTIONS, ...opts };
  }

  get epoch(): number | null {
    return this.#epoch;
  }

  /** Forgets what is missing; the next datagram starts the count again (a verified jump). */
  restart(): void {
    this.#epoch = null;
    this.#missing.clear();
  }

  get missingCount(): number {
    return this.#missing.size;
  }

  /**
   * Records a datagram that arrived (first transmission or retransmission), fragment
   * `fragIndex` of `fragCount`: the frame's fragments have consecutive sequence numbers, so
   * the ones before it (at the start of a stream) and after it are known to be coming.
   * Returns a round-trip sample when it fills a datagram asked for exactly once (Karn's rule:
   * the time from that NAK to now), else -1.
   */
  record(epoch: number, seq: number, nowMs: number, fragIndex = 0, fragCount = 1): number {
    this.gapOpened = false;
    let rtt = -1;
    if (epoch !== this.#epoch) {
      this.#epoch = epoch;
      this.#missing.clear();
      // Joined mid-frame: the frame's earlier fragments are missing too.
      this.#highest = Math.max(-1, seq - fragIndex - 1);
    }
    if (seq <= this.#highest) {
      const m = this.#missing.get(seq);
      if (m !== undefined) {
        if (m.naks === 1) rtt = nowMs - m.nakMs;
        this.#missing.delete(seq);
      }
    } else {
      if (seq > this.#highest + 1) this.gapOpened = true;
      this.#addMissing(this.#highest + 1, seq, nowMs, nowMs);
      this.#highest = seq;
    }
    const last = seq + (fragCount - 1 - fragIndex);
    if (last > this.#highest) {
      this.#addMissing(this.#highest + 1, last + 1, nowMs, nowMs + this.#opts.tailGraceMs);
      this.#highest = last;
    }
    return rtt;
  }

  /** Seqs in [from, to) are missing as of `nowMs`, to be asked for at `dueMs`. */
  #addMissing(from: number, to: number, nowMs: number, dueMs: number): void {
    for (let s = Math.max(from, to - this.#opts.maxMissing); s < to; s++) this.#missing.set(s, { sinceMs: nowMs, dueMs, nakMs: -1, naks: 0 });
    // Over the bound: the oldest go first (Map keeps insertion order, which is ascending).
    for (const s of this.#missing.keys()) {
      if (this.#missing.size <= this.#opts.maxMissing) break;
      this.#missing.delete(s);
      this.abandoned++;
    }
  }

  /** Whether a NAK is due now: something missing and its wait is over. */
  isDue(nowMs: number): boolean {
    for (const m of this.#missing.values()) if (m.dueMs <= nowMs) return true;
    return false;
  }

  /**
   * The ranges to ask for now (at most MAX_NAK_RANGES; the rest on the next call), or null.
   * Gives up gaps older than the budget. Each datagram asked for is due again after `retryMs`
   * (the option's, unless a measured round trip suggests another).
   */
  due(nowMs: number, retryMs = this.#opts.retryMs): SeqRange[] | null {
    let ranges: SeqRange[] | null = null;
    let first = -1;
    let count = 0;
    const { budgetMs } = this.#opts;
    for (const [seq, m] of this.#missing) {
      if (nowMs - m.sinceMs >= budgetMs) {
        this.#missing.delete(seq);
        this.abandoned++;
        continue;
      }
      if (m.dueMs > nowMs) continue;
      if (count > 0 && seq === first + count && count < MAX_NAK_RANGE_LENGTH) {
        count++;
      } else {
        if (count > 0) {
          (ranges ??= []).push({ first, count });
          if (ranges.length === MAX_NAK_RANGES) {
            count = 0;
            break;
          }
        }
        first = seq;
        count = 1;
      }
      m.dueMs = nowMs + retryMs;
      if (m.naks++ === 0) m.nakMs = nowMs;
      this.nakked++;
    }
    if (count > 0) (ranges ??= []).push({ first, count });
    return ranges;
  }
}
