import type { NakMessage, MediaMessage, ReceiverReport } from '../protocol/codec.ts';
import { MediaFlag, MessageType, Track } from '../protocol/constants.ts';
import { GapTracker } from '../protocol/gaps.ts';
import { JitterEstimator } from '../protocol/jitter.ts';
import { LossCounter } from '../protocol/loss.ts';
import type { StreamMetadata } from '../protocol/metadata.ts';
import { FrameReassembler, type CompletedFrame } from '../protocol/reassembler.ts';
import { FrameOpener } from '../protocol/frame-seal.ts';

const RATE_WINDOW_MS = 1000;
/**
 * Sequence numbers counted towards loss and gaps: at most this far ahead of the highest so far
 * (and DUPLICATE_WINDOW behind). A datagram outside proves nothing (anyone can send one); a
 * verified frame outside moves the window to it (PROTOCOL.md §3.7).
 */
const SEQ_AHEAD = 1024;
const SEQ_BEHIND = 4096;
const NO_FRAMES: readonly CompletedFrame[] = Object.freeze([]);

/** Loss recovery of one subscription (PROTOCOL.md §3.6). */
export interface RecoveryOptions {
  /** How long a missing datagram may hold back later frames while it is asked for again; 0: no recovery. */
  readonly latencyMs: number;
  /** Wait between two NAKs for the same datagram, unless `naks` is given a measured one. */
  readonly nakRetryMs: number;
}

/** What a subscription has received so far: the figures `stats` and the JSON summary show. */
export interface SubscriptionSummary {
  frames: number;
  bytes: number;
  framesDropped: number;
  /** First transmissions received; retransmissions are counted apart. */
  packetsReceived: number;
  packetsExpected: number;
  /** First transmissions the network lost, recovered or not (RFC 3550 cumulative loss). */
  packetsLost: number;
  retransmitsReceived: number;
  naksSent: number;
  jitterMs: number;
  audioChunks: number;
  audioBytes: number;
  audioDropped: number;
  /** Whole frames whose signature failed (forged or corrupted), thrown away (PROTOCOL.md §3.7). */
  framesForged: number;
  /** Frames that could not be decrypted: no passphrase, or another one. */
  framesUndecryptable: number;
  /** Datagrams of a run the broker has not told us of (another epoch), not looked at further. */
  foreignDatagrams: number;
}

/** Why frames cannot be shown: encrypted and no passphrase, or another passphrase. */
export type SubscriptionProblem = 'encrypted' | 'wrong-passphrase';

/** The producer run whose frames a subscription accepts: told by the broker in authenticated messages only. */
export interface ProducerRun {
  readonly epoch: number;
  readonly frameKey: Buffer;
  readonly encrypted: boolean;
}

/** Per track: frames, loss counting and the gaps to ask for. */
class TrackState {
  readonly frames: FrameReassembler;
  readonly loss = new LossCounter();
  readonly gaps: GapTracker;
  /** Highest seq counted towards loss and gaps; -1: none yet. */
  highestSeq = -1;
  /**
   * A first transmission has arrived. Before it, what comes flagged RETRANSMIT is the join
   * replay (PROTOCOL.md §3.5): older than the live stream, so counted towards neither loss nor gaps.
   */
  live = false;
  constructor(rec: RecoveryOptions, verify: (f: CompletedFrame) => boolean) {
    this.frames = new FrameReassembler({ holdMs: rec.latencyMs, verify });
    this.gaps = new GapTracker({ budgetMs: rec.latencyMs, retryMs: rec.nakRetryMs });
  }

  inWindow(seq: number): boolean {
    return this.highestSeq < 0 || (seq <= this.highestSeq + SEQ_AHEAD && seq + SEQ_BEHIND > this.highestSeq);
  }

  count(m: MediaMessage, nowMs: number, recover: boolean): void {
    if ((m.flags & MediaFlag.RETRANSMIT) === 0) this.loss.record(m.epoch, m.seq);
    if (recover) this.gaps.record(m.epoch, m.seq, nowMs, m.fragIndex, m.fragCount);
    if (m.seq > this.highestSeq) this.highestSeq = m.seq;
  }

  /** A verified frame outside the window: counting starts again from it. */
  jumpTo(f: CompletedFrame, nowMs: number, recover: boolean): void {
    this.loss.restart();
    this.gaps.restart();
    this.highestSeq = -1;
    for (let i = 0; i < f.fragCount; i++) {
      const seq = (f.firstSeq + i) >>> 0;
      this.loss.record(f.epoch, seq);
      if (recover) this.gaps.record(f.epoch, seq, nowMs, i, f.fragCount);
      this.highestSeq = seq;
    }
  }
}

/** One producer a client watches: reassembly, loss recovery and counting, rates and recording. */
export class Subscription {
  readonly id: number;
  metadata: StreamMetadata | null = null;
  online = true;
  /** False once unsubscribed; the figures stay for the summary. */
  active = true;
  /**
   * Wanted, but not accepted by the broker yet: it did not answer ('broker'), or the producer is
   * not live there ('producer'). Asked again until it is accepted or the user unsubscribes.
   */
  waiting: false | 'broker' | 'producer' = false;
  lastHeardMs = 0;
  firstFrameMs = 0;
  /** When the latest whole video frame arrived. */
  lastFrameMs = 0;
  /** When frames stopped, while their return is not yet told (client.ts); 0: none. */
  quietSinceMs = 0;
  /** The run whose frames are accepted; null until the broker has named one. */
  #run: ProducerRun | null = null;
  #opener: FrameOpener | null = null;
  readonly #passKey: (() => Buffer) | null;
  readonly #onProblem: (problem: SubscriptionProblem) => void;
  readonly #onAudio: (chunk: CompletedFrame) => void;
  #problem: SubscriptionProblem | null = null;
  #forged = 0;
  #undecryptable = 0;
  #foreign = 0;
  readonly #recovery: RecoveryOptions;
  readonly #tracks: readonly [TrackState, TrackState];
  readonly #jitter = new JitterEstimator();
  #jitterEpoch: number | null = null;
  #packets = 0;
  #retransmits = 0;
  #naks = 0;
  #frames = 0;
  #bytes = 0;
  #audioChunks = 0;
  #audioBytes = 0;
  #windowStartMs = 0;
  #windowFrames = 0;
  #windowBytes = 0;
  /** Expected and lost at the previous receiver report, for its fraction lost. */
  #reportedExpected = 0;
  #reportedLost = 0;
  fps = 0;
  kbps = 0;

  /**
   * `passKey`: the key of the client's passphrase for this producer ID (computed when first
   * needed), or null. `onProblem`: why frames cannot be shown, once per cause. `onAudio`: each
   * audio chunk, verified and decrypted, in order (video frames are returned by push and tick).
   */
  constructor(id: number, recovery: RecoveryOptions, opts: { passKey?: (() => Buffer) | null; onProblem?: (problem: SubscriptionProblem) => void; onAudio?: (chunk: CompletedFrame) => void } = {}) {
    this.id = id;
    this.#recovery = recovery;
    this.#passKey = opts.passKey ?? null;
    this.#onProblem = opts.onProblem ?? (() => {});
    this.#onAudio = opts.onAudio ?? (() => {});
    this.#tracks = [
      new TrackState(recovery, (f) => this.#verify(f)),
      new TrackState(recovery, (f) => this.#verify(f)),
    ];
  }

  get run(): ProducerRun | null {
    return this.#run;
  }

  /** The run the broker named (SUBSCRIBE ACK, NOTICE PRODUCER_ONLINE); its frames alone are accepted from now on. */
  setRun(run: ProducerRun): void {
    if (this.#run !== null && this.#run.epoch === run.epoch && this.#opener?.isFor(run.frameKey) === true && this.#run.encrypted === run.encrypted) return;
    this.#run = run;
    this.#problem = null;
    this.#opener = new FrameOpener({ frameKey: run.frameKey, encrypted: run.encrypted, passKey: run.encrypted && this.#passKey !== null ? this.#passKey() : null });
  }

  /** Takes one MEDIA datagram; returns the video frames it releases, in order. */
  push(m: MediaMessage, nowMs: number): readonly CompletedFrame[] {
    // PROTOCOL.md §3.7: only the run the broker named in an authenticated message is looked at.
    if (this.#run === null || m.epoch !== this.#run.epoch) {
      this.#foreign++;
      return NO_FRAMES;
    }
    this.lastHeardMs = nowMs;
    const t = this.#tracks[m.track];
    const retransmit = (m.flags & MediaFlag.RETRANSMIT) !== 0;
    // (The join replay is neither: it was sent before we joined.)
    if (retransmit && t.live) this.#retransmits++;
    else if (!retransmit) this.#packets++;
    let skipped: readonly CompletedFrame[] = NO_FRAMES;
    if (!retransmit && !t.live) {
      // The live stream starts here: the frames between the replayed one and this are not awaited.
      t.live = true;
      skipped = this.#deliver(m.track, t.frames.skipBefore(m.frameNo), nowMs);
    }
    if (t.live && t.inWindow(m.seq)) t.count(m, nowMs, this.#recovery.latencyMs > 0);
    const released = this.#deliver(m.track, t.frames.push(m, nowMs), nowMs);
    return skipped.length === 0 ? released : [...skipped, ...released];
  }

  /** The reassemblers' check of a whole frame: the run's signature; a verified frame outside the seq window moves it. */
  #verify(f: CompletedFrame): boolean {
    if (this.#opener === null || !this.#opener.verify({ producerId: this.id, epoch: f.epoch, track: f.track, frameNo: f.frameNo, timestampMs: f.timestampMs }, f.data)) {
      this.#forged++;
      return false;
    }
    const t = this.#tracks[f.track];
    if (!t.inWindow(f.firstSeq)) t.jumpTo(f, f.firstSeenMs, this.#recovery.latencyMs > 0);
    return true;
  }

  /** Gives up what can no longer be recovered, rolls the rate window; returns video frames released. */
  tick(nowMs: number): readonly CompletedFrame[] {
    this.#deliver(Track.AUDIO, this.#tracks[Track.AUDIO].frames.expire(nowMs), nowMs);
    const released = this.#deliver(Track.VIDEO, this.#tracks[Track.VIDEO].frames.expire(nowMs), nowMs);
    if (this.#windowStartMs === 0) this.#windowStartMs = nowMs;
    const span = nowMs - this.#windowStartMs;
    if (span >= RATE_WINDOW_MS || (this.fps === 0 && span >= RATE_WINDOW_MS / 4 && this.#windowFrames > 0)) {
      // The first figures come from a partial window rather than showing 0 for a second.
      this.fps = (this.#windowFrames * 1000) / span;
      this.kbps = (this.#windowBytes * 8) / span;
      if (span >= RATE_WINDOW_MS) {
        this.#windowStartMs = nowMs;
        this.#windowFrames = 0;
        this.#windowBytes = 0;
      }
    }
    return released;
  }

  /** Whether a NAK is due (a gap was just seen, or a retry is due). */
  nakDue(nowMs: number): boolean {
    return this.#recovery.latencyMs > 0 && (this.#tracks[0].gaps.isDue(nowMs) || this.#tracks[1].gaps.isDue(nowMs));
  }

  /** The NAKs to send now (PROTOCOL.md §4.10): one per track with gaps due, at most. */
  naks(nowMs: number, retryMs = this.#recovery.nakRetryMs): NakMessage[] {
    const out: NakMessage[] = [];
    if (this.#recovery.latencyMs === 0) return out;
    for (const track of [Track.VIDEO, Track.AUDIO]) {
      const g = this.#tracks[track].gaps;
      const ranges = g.due(nowMs, retryMs);
      if (ranges === null || g.epoch === null) continue;
      out.push({ type: MessageType.NAK, producerId: this.id, requestId: 0, epoch: g.epoch, track, ranges });
      this.#naks++;
    }
    return out;
  }

  /** The figures of a RECEIVER_REPORT (PROTOCOL.md §4.11); fraction lost is since the previous call. */
  report(): ReceiverReport {
    const f = this.summary;
    const expected = f.packetsExpected - this.#reportedExpected;
    const lost = f.packetsLost - this.#reportedLost;
    this.#reportedExpected = f.packetsExpected;
    this.#reportedLost = f.packetsLost;
    return {
      fractionLost: expected <= 0 || lost <= 0 ? 0 : Math.min(255, Math.floor((lost * 256) / expected)),
      cumulativeLost: f.packetsLost, expected: f.packetsExpected, jitterUs: Math.round(f.jitterMs * 1000),
      framesComplete: f.frames, framesDropped: f.framesDropped, retransmitsReceived: f.retransmitsReceived,
    };
  }

  get summary(): SubscriptionSummary {
    const [video, audio] = this.#tracks;
    return {
      frames: this.#frames,
      bytes: this.#bytes,
      framesDropped: video.frames.counters.framesDropped,
      packetsReceived: this.#packets,
      packetsExpected: video.loss.expected + audio.loss.expected,
      packetsLost: video.loss.lost + audio.loss.lost,
      retransmitsReceived: this.#retransmits,
      naksSent: this.#naks,
      jitterMs: Number(this.#jitter.jitterMs.toFixed(3)),
      audioChunks: this.#audioChunks,
      audioBytes: this.#audioBytes,
      audioDropped: audio.frames.counters.framesDropped,
      framesForged: this.#forged,
      framesUndecryptable: this.#undecryptable,
      foreignDatagrams: this.#foreign,
    };
  }

  close(): void {
    this.active = false;
  }

  /** Frames released in order, verified: decrypted when they are encrypted, and counted. */
  #deliver(track: Track, frames: readonly CompletedFrame[], nowMs: number): readonly CompletedFrame[] {
    if (frames.length === 0) return NO_FRAMES;
    let video: CompletedFrame[] | null = null;
    for (const sealed of frames) {
      const opened = this.#opener!.open({ producerId: this.id, epoch: sealed.epoch, track, frameNo: sealed.frameNo, timestampMs: sealed.timestampMs }, sealed.data);
      if (!opened.ok) {
        this.#undecryptable++;
        this.#report(opened.why === 'encrypted' ? 'encrypted' : 'wrong-passphrase');
        continue;
      }
      const frame: CompletedFrame = { ...sealed, data: opened.data };
      if (track === Track.AUDIO) {
        this.#audioChunks++;
        this.#audioBytes += frame.data.length;
        this.#onAudio(frame);
        continue;
      }
      // Jitter per verified frame (RFC 3550 §6.4.1 transit of its first fragment): forged datagrams cannot move it.
      if (frame.epoch !== this.#jitterEpoch) this.#jitter.reset();
      this.#jitterEpoch = frame.epoch;
      this.#jitter.record(frame.timestampMs, frame.firstSeenMs);
      if (this.#frames === 0) this.firstFrameMs = nowMs;
      this.lastFrameMs = nowMs;
      this.#frames++;
      this.#bytes += frame.data.length;
      this.#windowFrames++;
      this.#windowBytes += frame.data.length;
      (video ??= []).push(frame);
    }
    return video ?? NO_FRAMES;
  }

  #report(problem: SubscriptionProblem): void {
    if (this.#problem === problem) return;
    this.#problem = problem;
    this.#onProblem(problem);
  }
}
