import type { MediaMessage } from '../protocol/codec.ts';
import { Track } from '../protocol/constants.ts';
import { LossCounter } from '../protocol/loss.ts';
import type { StreamMetadata } from '../protocol/metadata.ts';
import { FrameReassembler, type CompletedFrame } from '../protocol/reassembler.ts';
import type { StreamRecorder } from './recorder.ts';

const RATE_WINDOW_MS = 1000;

/** What a subscription has received so far: the figures `stats` and the JSON summary show. */
export interface SubscriptionSummary {
  frames: number;
  bytes: number;
  framesDropped: number;
  packetsReceived: number;
  packetsExpected: number;
  packetsLost: number;
  audioChunks: number;
  audioBytes: number;
  audioDropped: number;
}

/** One producer a client watches: reassembly, loss counting, rates and recording. */
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
  readonly #video = new FrameReassembler();
  readonly #audio = new FrameReassembler();
  readonly #videoLoss = new LossCounter();
  readonly #audioLoss = new LossCounter();
  #packets = 0;
  #frames = 0;
  #bytes = 0;
  #audioChunks = 0;
  #audioBytes = 0;
  #windowStartMs = 0;
  #windowFrames = 0;
  #windowBytes = 0;
  fps = 0;
  kbps = 0;

  constructor(id: number) {
    this.id = id;
  }

  /** Takes one MEDIA datagram; returns the video frame it completes, if any. */
  push(m: MediaMessage, nowMs: number): CompletedFrame | null {
    this.lastHeardMs = nowMs;
    this.#packets++;
    const isVideo = m.track === Track.VIDEO;
    (isVideo ? this.#videoLoss : this.#audioLoss).record(m.epoch, m.seq);
    const frame = (isVideo ? this.#video : this.#audio).push(m, nowMs);
    if (frame === null) return null;
    if (!isVideo) {
      this.#audioChunks++;
      this.#audioBytes += frame.data.length;
      this.recorder?.writeAudio(frame.data, this.metadata?.audio ?? null);
      return null;
    }
    if (this.#frames === 0) this.firstFrameMs = nowMs;
    this.lastFrameMs = nowMs;
    this.#frames++;
    this.#bytes += frame.data.length;
    this.#windowFrames++;
    this.#windowBytes += frame.data.length;
    this.recorder?.writeVideo(frame.data);
    return frame;
  }

  /** Drops stale incomplete frames and rolls the rate window. */
  tick(nowMs: number): void {
    this.#video.expire(nowMs);
    this.#audio.expire(nowMs);
    if (this.#windowStartMs === 0) this.#windowStartMs = nowMs;
    const span = nowMs - this.#windowStartMs;
    if (span >= RATE_WINDOW_MS || (this.fps === 0 && span >= RATE_WINDOW_MS / 4 && this.#windowFrames > 0)) {
      // The first figures come from a partial window rather than showing 0 for a second.
      this.fps = (this.#windowFrames * 1000) / span;
      this.kbps = (this.#windowBytes * 8) / span;
      if (span < RATE_WINDOW_MS) return;
      this.#windowStartMs = nowMs;
      this.#windowFrames = 0;
      this.#windowBytes = 0;
    }
  }

  get summary(): SubscriptionSummary {
    const expected = this.#videoLoss.expected + this.#audioLoss.expected;
    return {
      frames: this.#frames,
      bytes: this.#bytes,
      framesDropped: this.#video.counters.framesDropped,
      packetsReceived: this.#packets,
      packetsExpected: expected,
      packetsLost: this.#videoLoss.lost + this.#audioLoss.lost,
      audioChunks: this.#audioChunks,
      audioBytes: this.#audioBytes,
      audioDropped: this.#audio.counters.framesDropped,
    };
  }

  close(): void {
    this.active = false;
    this.recorder?.close();
    this.recorder = null;
  }
}
