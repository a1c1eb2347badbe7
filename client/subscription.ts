import type { NakMessage, MediaMessage, ReceiverReport } from '../protocol/codec.ts';
import { MediaFlag, MessageType, Track } from '../protocol/constants.ts';
import { GapTracker } from '../protocol/gaps.ts';
import { JitterEstimator } from '../protocol/jitter.ts';
import { LossCounter } from '../protocol/loss.ts';
import type { StreamMetadata } from '../protocol/metadata.ts';
import { FrameReassembler, type CompletedFrame } from '../protocol/reassembler.ts';
import type { StreamRecorder } from './recorder.ts';

const RATE_WINDOW_MS = 1000;
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
}

/** Per track: frames, loss counting and the gaps to ask for. */
class TrackState {
  readonly frames: FrameReassembler;
  readonly loss = new LossCounter();
  readonly gaps: GapTracker;
  constructor(rec: RecoveryOptions) {
    this.frames = new FrameReassembler({ holdMs: rec.latencyMs });
    this.gaps = new GapTracker({ budgetMs: rec.latencyMs, retryMs: rec.nakRetryMs });
  }
}

/** One producer a client watches: reassembly, loss recovery and counting, rates and recording. */
export class Subscription {
  readonly id: number;
  metadata: StreamMetadata | null = null;
  online = true;
  /** False once unsubscribed; the figures stay for the summary. */
  active = true;
  lastHeardMs = 0;
  firstFrameMs = 0;
  /** When the latest whole video frame arrived. */
  lastFrameMs = 0;
  recorder: StreamRecorder | null = null;
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

  constructor(id: number, recovery: RecoveryOptions) {
    this.id = id;
    this.#recovery = recovery;
    this.#tracks = [new TrackState(recovery), new TrackState(recovery)];
  }

  /** Takes one MEDIA datagram; returns the video frames it releases, in order. */
  push(m: MediaMessage, nowMs: number): readonly CompletedFrame[] {
    this.lastHeardMs = nowMs;
    const t = this.#tracks[m.track];
    if ((m.flags & MediaFlag.RETRANSMIT) !== 0) {
      this.#retransmits++;
    } else {
      this.#packets++;
      t.loss.record(m.epoch, m.seq);
      if (m.track === Track.VIDEO) {
        if (m.epoch !== this.#jitterEpoch) this.#jitter.reset();
        this.#jitterEpoch = m.epoch;
        this.#jitter.record(m.timestampMs, nowMs);
      }
    }
    if (this.#recovery.latencyMs > 0) t.gaps.record(m.epoch, m.seq, nowMs, m.fragIndex, m.fragCount);
    return this.#deliver(m.track, t.frames.push(m, nowMs), nowMs);
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
    };
  }

  close(): void {
    this.active = false;
    this.recorder?.close();
    this.recorder = null;
  }

  #deliver(track: Track, frames: readonly CompletedFrame[], nowMs: number): readonly CompletedFrame[] {
    for (const frame of frames) {
      if (track === Track.AUDIO) {
        this.#audioChunks++;
        this.#audioBytes += frame.data.length;
        this.recorder?.writeAudio(frame.data, this.metadata?.audio ?? null);
        continue;
      }
      if (this.#frames === 0) this.firstFrameMs = nowMs;
      this.lastFrameMs = nowMs;
      this.#frames++;
      this.#bytes += frame.data.length;
      this.#windowFrames++;
      this.#windowBytes += frame.data.length;
      this.recorder?.writeVideo(frame.data);
    }
    return track === Track.VIDEO ? frames : NO_FRAMES;
  }
}
