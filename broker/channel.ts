import type { ReceiverReport } from '../protocol/codec.ts';
import { markRetransmit, mediaEpoch, mediaFragCount, mediaFragIndex, mediaFrameNo } from '../protocol/media-header.ts';
import { GapTracker } from '../protocol/gaps.ts';
import { LossCounter } from '../protocol/loss.ts';
import { RetransmitHistory, type DatagramLog } from '../protocol/history.ts';
import type { StreamMetadata } from '../protocol/metadata.ts';
import { ReplayWindow } from '../protocol/session-crypto.ts';
import type { FrameGate } from '../protocol/frame-gate.ts';
import type { PeerSession } from './sessions.ts';
import type { CacheBudget, CacheHolder } from './memory.ts';

/** A socket of the broker's own port connected to one peer: sends name no address (optional, PeerSockets). */
export interface PeerSender {
  send(msg: Buffer): void;
}

/** A subscribed client's address, as the fan-out loop reads it, and what it told us of its reception. */
export interface Subscriber {
  readonly key: string;
  /** Its session's proven address; changes only when the session moves (PROTOCOL.md §4.12). */
  address: string;
  port: number;
  /** Its client's connected socket, when the broker runs with them; null: the shared socket. */
  out: PeerSender | null;
  /** Retransmissions it may still be sent now (a token bucket, PROTOCOL.md §5.4). */
  retransmitTokens: number;
  retransmitRefillMs: number;
  retransmits: number;
  /** Its latest RECEIVER_REPORT, and when it came. */
  report: ReceiverReport | null;
  reportMs: number;
}

export function newSubscriber(key: string, address: string, port: number, out: PeerSender | null, retransmitBurst: number, nowMs: number): Subscriber {
  return { key, address, port, out, retransmitTokens: retransmitBurst, retransmitRefillMs: nowMs, retransmits: 0, report: null, reportMs: 0 };
}

/** The producer currently publishing a channel, and how recently it was heard. */
export interface ProducerPresence {
  /**
   * Where its stream comes from: the session that announced it (MEDIA must carry its token,
   * control its tag, PROTOCOL.md §5.3), or null for an edge's subscription to its upstream
   * broker, whose MEDIA arrives on the upstream link and passes the channel's `gate` (§5.5).
   */
  session: PeerSession | null;
  metadata: StreamMetadata;
  epoch: number;
  /** The run's Ed25519 public key (PROTOCOL.md §3.7), handed to subscribers; the broker checks no signature. */
  frameKey: Buffer;
  lastHeardMs: number;
  /**
   * MEDIA arrived since the last sweep, which then renews the lease (lastHeardMs = its time):
   * the hot path reads no clock. A lease so ends at most one sweep interval late, never early.
   */
  mediaSinceSweep: boolean;
  online: boolean;
  /** When it went offline or said goodbye; 0 while online. */
  offlineSinceMs: number;
}

/** The frame being received, fragment by fragment, for the instant-join cache. */
const NO_DATAGRAMS: readonly Buffer[] = Object.freeze([]);

interface FrameInProgress {
  epoch: number;
  frameNo: number;
  parts: (Buffer | undefined)[];
  received: number;
  /** Charged to the cache budget: its datagrams and its parts array. */
  bytes: number;
}

/**
 * One producer ID: who publishes it, who watches it, and its latest complete video frame.
 * Subscriptions belong to the ID, not to the producer's address, so they outlive a producer's
 * restart (PROTOCOL.md §5.3).
 */
export class Channel implements CacheHolder {
  readonly id: number;
  producer: ProducerPresence | null = null;
  /**
   * The fan-out list. Changed in place: the fan-out loop runs to completion within one
   * datagram's handling, so no change can land in the middle of it (and copying the array on
   * every subscribe was O(n) garbage per join: 4 MB for a thousand viewers).
   */
  readonly subscribers: Subscriber[] = [];
  #cached: readonly Buffer[] = NO_DATAGRAMS;
  readonly #single: Buffer[] = [];
  #building: FrameInProgress | null = null;
  /** Bytes of #cached charged to the budget. */
  #cachedBytes = 0;
  readonly #maxCachedFragments: number;
  readonly #budget: CacheBudget;
  /** Recent datagrams of both tracks, for NAKs (PROTOCOL.md §3.6). */
  readonly history: RetransmitHistory;
  /** Per track, the frame being shed because the send queue was full at its start; -1: none. */
  readonly shedFrame = [-1, -1];
  /** Per track, the seqs of MEDIA seen in this epoch: a copy is forwarded once at most (PROTOCOL.md §3.5). */
  readonly seqSeen = [new ReplayWindow(1024), new ReplayWindow(1024)];
  /** Per track, the gaps in the producer's seqs, asked of the producer again (PROTOCOL.md §3.6). */
  readonly uplink: readonly [GapTracker, GapTracker];
  /** Smoothed time from a NAK to the producer to its repair (RFC 6298 gain 1/8); -1 until measured. */
  uplinkRttMs = -1;
  /** MEDIA datagrams and bytes taken since `#rateSinceMs`, and the rates they made over the last second or so. */
  mediaCount = 0;
  mediaBytes = 0;
  #rateSinceMs = -1;
  datagramsPerSecond = 0;
  bitsPerSecond = 0;
  /**
   * Fed by an upstream broker (an edge, PROTOCOL.md §5.5): what lets its MEDIA through, whole
   * verified frames only; null for a producer's channel.
   */
  gate: FrameGate | null = null;
  /** Per track, upstream: a first transmission has come since this run began (before it, RETRANSMIT is the join replay). */
  readonly upstreamLive = [false, false];
  /** Upstream: since when nobody here watches it (the linger before the upstream subscription goes); 0: watched. */
  unwatchedSinceMs = 0;
  /** Upstream: first transmissions from the upstream broker expected and lost, per track, for the edge's own receiver reports. */
  readonly upstreamLoss = [new LossCounter(), new LossCounter()];
  /** Upstream: expected and lost at the previous receiver report, for its fraction lost. */
  upstreamReported = { expected: 0, lost: 0 };

  /**
   * The viewers this channel serves, as receiver reports tell them (PROTOCOL.md §4.11): an
   * edge's subscription counts for the audience it reported in the last `freshMs` (at most
   * `cap`), anyone else for one. What a peer reports is not proven: a count to show, never a
   * limit or a resource.
   */
  audience(nowMs: number, freshMs: number, cap: number): number {
    let n = 0;
    for (const s of this.subscribers) n += s.report !== null && nowMs - s.reportMs <= freshMs ? Math.min(cap, Math.max(1, s.report.audience ?? 1)) : 1;
    return n;
  }
  /** The frame of #cached: a late repair of an older frame never replaces a newer picture. */
  #cachedEpoch = -1;
  #cachedFrameNo = -1;

  constructor(
    id: number,
    cache: { readonly maxFragments: number; readonly budget: CacheBudget },
    history: { readonly slots: number; readonly log: DatagramLog; readonly uplinkBudgetMs: number },
  ) {
    this.id = id;
    this.#maxCachedFragments = cache.maxFragments;
    this.#budget = cache.budget;
    this.history = new RetransmitHistory(history.slots, history.log);
    const gaps = { budgetMs: history.uplinkBudgetMs, maxMissing: history.slots };
    this.uplink = [new GapTracker(gaps), new GapTracker(gaps)];
  }

  /** Called by the sweep: the stream's datagram rate, which the repair budgets follow (PROTOCOL.md §3.6). */
  updateRate(nowMs: number): void {
    if (this.#rateSinceMs < 0) this.#rateSinceMs = nowMs;
    const span = nowMs - this.#rateSinceMs;
    if (span < 1000) return;
    this.datagramsPerSecond = (this.mediaCount * 1000) / span;
    this.bitsPerSecond = (this.mediaBytes * 8000) / span;
    this.mediaCount = 0;
    this.mediaBytes = 0;
    this.#rateSinceMs = nowMs;
  }

  /** Folds in a NAK-to-repair time measured on the uplink. */
  sampleUplinkRtt(ms: number): void {
    this.uplinkRttMs = this.uplinkRttMs < 0 ? ms : this.uplinkRttMs + (ms - this.uplinkRttMs) / 8;
  }

  /** Adds a subscriber (the caller knows it is not one yet). */
  addSubscriber(s: Subscriber): void {
    this.subscribers.push(s);
  }

  removeSubscriber(key: string): boolean {
    const subs = this.subscribers;
    const i = subs.findIndex((x) => x.key === key);
    if (i < 0) return false;
    subs[i] = subs[subs.length - 1];
    subs.pop();
    return true;
  }

  /**
   * Keeps the datagrams of the latest complete video frame (and of the one arriving), so a
   * new subscriber gets a picture at once. Holds references to received datagrams: no copy.
   * Every byte held is charged to the cache budget first (PROTOCOL.md §5.3): a frame that
   * does not fit is not cached, and the producer's viewers wait for the next frame instead.
   * `msg` is a checked MEDIA datagram of the video track; `repair`: a producer's repair, which
   * may belong to a frame older than the one cached or arriving, and is then not taken.
   */
  cacheVideo(msg: Buffer, repair = false): void {
    if (repair && this.#older(msg)) return;
    const fragCount = mediaFragCount(msg);
    if (fragCount === 1) {
      // A whole frame in one datagram, in place of the last: only the difference in size is
      // charged, and nothing is allocated (this runs for every such datagram).
      if (this.#building !== null) this.#dropBuilding();
      const grow = msg.length - this.#cachedBytes;
      if (grow > 0 && !this.#budget.charge(this, grow)) {
        this.#dropCached();
        return;
      }
      if (grow < 0) this.#budget.release(this, -grow);
      this.#single[0] = msg;
      this.#cached = this.#single;
      this.#cachedBytes = msg.length;
      this.#cachedEpoch = mediaEpoch(msg);
      this.#cachedFrameNo = mediaFrameNo(msg);
      return;
    }
    const epoch = mediaEpoch(msg);
    const frameNo = mediaFrameNo(msg);
    const fragIndex = mediaFragIndex(msg);
    let b = this.#building;
    if (b === null || b.frameNo !== frameNo || b.epoch !== epoch || b.parts.length !== fragCount) {
      this.#dropBuilding();
      if (fragCount > this.#maxCachedFragments || !this.#charge(fragCount * 8)) return;
      b = { epoch, frameNo, parts: new Array(fragCount), received: 0, bytes: fragCount * 8 };
      this.#building = b;
    }
    if (b.parts[fragIndex] !== undefined) return;
    if (!this.#charge(msg.length)) {
      this.#dropBuilding();
      return;
    }
    b.bytes += msg.length;
    b.parts[fragIndex] = msg;
    if (++b.received === fragCount) {
      this.#dropCached();
      this.#cached = b.parts as Buffer[];
      this.#cachedBytes = b.bytes;
      this.#cachedEpoch = b.epoch;
      this.#cachedFrameNo = b.frameNo;
      this.#building = null;
    }
  }

  /** Whether `msg` belongs to a frame before the one arriving, or not after the one cached, of the same run. */
  #older(msg: Buffer): boolean {
    const epoch = mediaEpoch(msg);
    const frameNo = mediaFrameNo(msg);
    const b = this.#building;
    if (b !== null && b.epoch === epoch && frameNo < b.frameNo) return true;
    return this.#cachedBytes > 0 && this.#cachedEpoch === epoch && frameNo <= this.#cachedFrameNo;
  }

  /** Bytes its cached and arriving frames hold (CacheHolder). */
  get cacheBytes(): number {
    return this.#cachedBytes + (this.#building?.bytes ?? 0);
  }

  /** Lets the cache go for the budget (CacheHolder): a new subscriber waits for the next frame. */
  evictCache(): number {
    const n = this.cacheBytes;
    this.#dropBuilding();
    this.#dropCached();
    return n;
  }

  /** Charges `bytes`; a frame being built that would pass the producer's share lets the older whole frame go first. */
  #charge(bytes: number): boolean {
    if (this.#budget.charge(this, bytes)) return true;
    if (this.#cachedBytes === 0) return false;
    this.#dropCached();
    return this.#budget.charge(this, bytes);
  }

  #dropCached(): void {
    if (this.#cachedBytes === 0 && this.#cached.length === 0) return;
    const n = this.#cachedBytes;
    this.#cached = NO_DATAGRAMS;
    this.#cachedBytes = 0;
    this.#budget.release(this, n);
  }

  #dropBuilding(): void {
    const b = this.#building;
    if (b === null) return;
    this.#building = null;
    this.#budget.release(this, b.bytes);
  }

  /**
   * The datagrams to replay to a new subscriber: the last whole frame, then the one arriving.
   * Copies flagged RETRANSMIT (PROTOCOL.md §3.5): they were sent before the subscriber joined,
   * so its loss count and gap tracking start with the live datagrams after them.
   */
  replayDatagrams(): Buffer[] {
    const out: Buffer[] = [];
    const add = (d: Buffer): void => {
      const copy = Buffer.from(d);
      markRetransmit(copy);
      out.push(copy);
    };
    for (const d of this.#cached) add(d);
    if (this.#building !== null) for (const p of this.#building.parts) if (p !== undefined) add(p);
    return out;
  }

  clearCache(): void {
    this.seqSeen[0] = new ReplayWindow(1024);
    this.seqSeen[1] = new ReplayWindow(1024);
    this.uplink[0].restart();
    this.uplink[1].restart();
    this.uplinkRttMs = -1;
    this.upstreamLive[0] = this.upstreamLive[1] = false;
    this.upstreamLoss[0].restart();
    this.upstreamLoss[1].restart();
    this.upstreamReported = { expected: 0, lost: 0 };
    this.gate?.clear();
    this.evictCache();
    this.history.clear();
  }
}
