import { EventEmitter } from 'node:events';
import { randomInt } from 'node:crypto';
import { BrokerSession, DEFAULT_RETRY_INITIAL_MS, type ConnectedSocket } from '../session/broker-session.ts';
import { announceAuth } from '../protocol/session-crypto.ts';
import { GoodbyeReason, MediaFlag, MessageType, Role, Status, STATUS_TEXT, Track } from '../protocol/constants.ts';
import type { StreamMetadata } from '../protocol/metadata.ts';
import { MediaPacketizer } from '../protocol/packetizer.ts';
import type { NakMessage } from '../protocol/codec.ts';
import { DatagramLog, RetransmitHistory } from '../protocol/history.ts';
import { markRetransmit, mediaTrack } from '../protocol/media-header.ts';
import { FrameSealer } from '../protocol/frame-seal.ts';
import { audioChunk, type MediaSource } from './source.ts';

export interface ProducerOptions {
  readonly producerId: number;
  readonly title: string;
  readonly fps: number;
  readonly loop: boolean;
  /** Frames come from `sendLive` as they arrive (a camera, a pipe), not from the source's list at `fps`. */
  readonly live?: boolean;
  readonly maxDatagramBytes: number;
  readonly heartbeatIntervalMs: number;
  readonly leaseIntervals: number;
  /** Proves this ID's secret in ANNOUNCE, bound to the session (PROTOCOL.md §4.1). */
  readonly secret: string | null;
  /** Encrypts every frame end to end (PROTOCOL.md §3.7); null: frames are signed, not encrypted. */
  readonly passphrase: string | null;
  /** The loss-recovery budget (PROTOCOL.md §3.6): sent datagrams are kept twice this long for the broker's NAKs; 0: none. */
  readonly latencyMs: number;
}

/** What the producer keeps of what it sent, for the broker's NAKs: enough for 2 × 120 ms of a 1080p30 stream. */
const HISTORY_BYTES = 8 * 1024 * 1024;
const HISTORY_DATAGRAMS = 4096;
/** Repairs may add at most this share of the datagrams sent (a token per datagram sent), in bursts of up to REPAIR_BURST. */
const REPAIR_SHARE = 0.5;
const REPAIR_BURST = 500;

export interface ProducerEvents {
  announced: [];
  refused: [status: string];
  brokerUnreachable: [];
  brokerReachable: [];
  /** The sample ran out and looping is off. */
  finished: [frames: number];
}

/**
 * Streams a source to the broker at a fixed frame rate. Frame k is due at start + k/fps:
 * each timer aims at the next deadline, so lateness never accumulates into drift.
 */
export class Producer extends EventEmitter<ProducerEvents> {
  readonly link: BrokerSession;
  readonly #source: MediaSource;
  readonly #opts: ProducerOptions;
  readonly #clock: () => number;
  readonly #packetizer: MediaPacketizer;
  readonly #sealer: FrameSealer;
  readonly #epoch = randomInt(1, 0xffffffff);
  #startMs = 0;
  #streaming = false;
  #next = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  readonly #history = new RetransmitHistory(HISTORY_DATAGRAMS, new DatagramLog(HISTORY_BYTES));
  #repairTokens = REPAIR_BURST;
  framesSent = 0;
  datagramsSent = 0;
  bytesSent = 0;
  /** Uplink loss recovery: NAKs from the broker, datagrams sent again, asked for but no longer held, refused over REPAIR_SHARE. */
  readonly repairs = { naks: 0, sent: 0, unavailable: 0, throttled: 0 };

  constructor(args: { socket: ConnectedSocket; clock: () => number; source: MediaSource; options: ProducerOptions }) {
    super();
    this.#source = args.source;
    this.#opts = args.options;
    this.#clock = args.clock;
    // A signing key of this run alone: frames of another run (or a forger) never verify with it.
    this.#sealer = new FrameSealer({ producerId: this.#opts.producerId, passphrase: this.#opts.passphrase });
    this.#packetizer = new MediaPacketizer({
      producerId: this.#opts.producerId, epoch: this.#epoch, maxDatagramBytes: this.#opts.maxDatagramBytes,
      seal: (f, body) => this.#sealer.seal(f, body),
    });
    this.link = new BrokerSession({
      socket: args.socket, clock: args.clock,
      options: {
        role: Role.PRODUCER, producerId: this.#opts.producerId, heartbeatIntervalMs: this.#opts.heartbeatIntervalMs,
        leaseIntervals: this.#opts.leaseIntervals, retryInitialMs: DEFAULT_RETRY_INITIAL_MS, requestAttempts: 6,
        maxDatagramBytes: 65507,
      },
    });
    // A new session (the first, or after the broker forgot ours) or a lapsed lease: announce again.
    this.link.on('established', () => void this.announce());
    this.link.on('notRegistered', () => void this.announce());
    this.link.on('unreachable', () => this.emit('brokerUnreachable'));
    this.link.on('reachable', () => this.emit('brokerReachable'));
    this.link.on('message', (m) => {
      if (m.type === MessageType.NAK) this.#repair(m);
    });
  }

  /**
   * The broker lost some of our datagrams on the way (PROTOCOL.md §3.6): send them again,
   * flagged RETRANSMIT, while they are held and within the repair share. The NAK came within
   * our session, so only the broker can ask.
   */
  #repair(m: NakMessage): void {
    if (m.producerId !== this.#opts.producerId || m.epoch !== this.#epoch || this.#opts.latencyMs === 0) return;
    this.repairs.naks++;
    const now = this.#clock();
    let lookups = this.#history.capacity;
    for (const r of m.ranges) {
      for (let seq = r.first, end = r.first + r.count; seq < end; seq++) {
        if (this.#repairTokens < 1 || lookups-- <= 0) {
          this.repairs.throttled += end - seq;
          break;
        }
        const copy = this.#history.get(m.track, m.epoch, seq >>> 0, now, 2 * this.#opts.latencyMs);
        if (copy === null) {
          this.repairs.unavailable++;
          continue;
        }
        markRetransmit(copy);
        if (!this.link.sendMedia(copy)) return;
        this.#repairTokens--;
        this.repairs.sent++;
      }
    }
  }

  get metadata(): StreamMetadata {
    const s = this.#source;
    return {
      title: this.#opts.title,
      video: { codec: 'mjpeg', width: s.width, height: s.height, fps: this.#opts.fps },
      audio: s.audio === null ? null : { codec: s.audio.codec, sampleRate: s.audio.sampleRate, channels: s.audio.channels },
      ...(this.#sealer.encrypted ? { encrypted: true } : {}),
    };
  }

  #announcing = false;
  /** Announces (again) until the broker answers; returns whether it accepted. */
  async announce(): Promise<boolean> {
    if (this.#announcing || this.#stopped) return false;
    this.#announcing = true;
    try {
      for (;;) {
        const secret = this.#opts.secret;
        const id = this.#opts.producerId;
        const r = await this.link.request((s) => ({
          type: MessageType.ANNOUNCE, producerId: id, requestId: 0, epoch: this.#epoch, frameKey: this.#sealer.publicKey, metadata: this.metadata,
          auth: secret === null ? Buffer.alloc(0) : announceAuth(secret, s.keys.binding, id),
        }));
        if (this.#stopped) return false;
        if (r?.type === MessageType.ACK) {
          if (r.status === Status.OK) {
            this.emit('announced');
            return true;
          }
          this.emit('refused', r.detail.message ?? STATUS_TEXT[r.status]);
          if (r.status !== Status.ID_TAKEN && r.status !== Status.AUTH_FAILED) return false;
        }
        // No answer, or the ID still leased to an old session: try again after a heartbeat
        // interval, or at once when a new session opens (the broker is back).
        await this.link.waitOrEstablished(this.#opts.heartbeatIntervalMs);
      }
    } finally {
      this.#announcing = false;
    }
  }

  /** Starts heartbeating and announcing, then streaming once announced. */
  start(): void {
    this.link.start();
    // The frame clock starts once the broker has accepted us: before that it would drop every frame.
    void this.announce().then((ok) => {
      if (!ok || this.#stopped) return;
      this.#startMs = this.#clock();
      this.#streaming = true;
      if (this.#opts.live !== true) this.#tick();
    });
  }

  #tick(): void {
    if (this.#stopped) return;
    const periodMs = 1000 / this.#opts.fps;
    const now = this.#clock();
    // Send every frame that is due (after a stall, catch up rather than slow down).
    while (this.#startMs + this.#next * periodMs <= now) {
      if (!this.#opts.loop && this.#next >= this.#source.frames.length) {
        this.emit('finished', this.framesSent);
        return;
      }
      this.#sendFrame(this.#next, Math.round(this.#next * periodMs));
      this.#next++;
    }
    const delay = Math.max(0, this.#startMs + this.#next * periodMs - this.#clock());
    this.#timer = setTimeout(() => this.#tick(), delay);
  }

  /**
   * A live source's frame, sent as it arrives, stamped with its arrival (ms since streaming
   * began). Before the broker has accepted us there is nowhere to send it: false, not sent.
   */
  sendLive(jpeg: Buffer): boolean {
    if (!this.#streaming || this.#stopped) return false;
    this.#sendAll(this.#packetizer.packetize(Track.VIDEO, jpeg, Math.round(this.#clock() - this.#startMs), MediaFlag.KEYFRAME));
    this.framesSent++;
    return true;
  }

  #sendFrame(k: number, timestampMs: number): void {
    const frames = this.#source.frames;
    const index = k % frames.length;
    this.#sendAll(this.#packetizer.packetize(Track.VIDEO, frames[index], timestampMs, MediaFlag.KEYFRAME));
    const audio = this.#source.audio;
    if (audio !== null) {
      const chunk = audioChunk(audio, index, this.#opts.fps);
      if (chunk.length > 0) this.#sendAll(this.#packetizer.packetize(Track.AUDIO, chunk, timestampMs, MediaFlag.KEYFRAME));
    }
    this.framesSent++;
  }

  #sendAll(datagrams: Buffer[]): void {
    const keep = this.#opts.latencyMs > 0;
    const now = keep ? this.#clock() : 0;
    for (let i = 0; i < datagrams.length; i++) {
      const d = datagrams[i];
      if (!this.link.sendMedia(d)) continue; // no session: the broker could not take it
      if (keep) this.#history.put(mediaTrack(d), d, now);
      this.datagramsSent++;
      this.bytesSent += d.length;
      this.#repairTokens = Math.min(REPAIR_BURST, this.#repairTokens + REPAIR_SHARE);
    }
  }

  /** Stops streaming and says goodbye, so subscribers learn at once (PROTOCOL.md §4.6). */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.link.send({ type: MessageType.GOODBYE, producerId: this.#opts.producerId, requestId: 0, reason: GoodbyeReason.NORMAL });
    this.link.close();
  }
}

