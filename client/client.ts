import { EventEmitter } from 'node:events';
import { BrokerSession, DEFAULT_RETRY_INITIAL_MS, type ConnectedSocket } from '../session/broker-session.ts';
import { GoodbyeReason, MessageType, NoticeEvent, Role, Status, STATUS_TEXT } from '../protocol/constants.ts';
import type { AckDetail, Message } from '../protocol/codec.ts';
import { passphraseKey } from '../protocol/frame-seal.ts';
import type { ProducerInfo, StreamMetadata } from '../protocol/metadata.ts';
import { Subscription, type SubscriptionProblem } from './subscription.ts';
import type { CompletedFrame } from '../protocol/reassembler.ts';
import { formatProducerId } from '../protocol/ids.ts';

export interface ClientOptions {
  readonly heartbeatIntervalMs: number;
  readonly leaseIntervals: number;
  readonly maxDatagramBytes: number;
  /** Loss recovery budget (PROTOCOL.md §3.6); 0 turns NAKs off. */
  readonly latencyMs: number;
  /** Decrypts streams encrypted with it (PROTOCOL.md §3.7); null: encrypted streams are refused with a line. */
  readonly passphrase?: string | null;
}

/** How often held frames are checked and NAKs retried; a fraction of the latency budget. */
const TICK_MS = 20;
/** Receiver reports, one per subscription (PROTOCOL.md §4.11). */
const REPORT_INTERVAL_MS = 1000;
/** Wait between NAKs of one datagram: at least this, and at least 1.5 round trips. */
const MIN_NAK_RETRY_MS = 20;
/** MEDIA of a run the broker has not named: ask it again (SUBSCRIBE) at most this often per subscription. */
const RUN_REFRESH_MS = 1000;

/**
 * What the client core tells its outputs (client/sinks/): facts with their data, never
 * sentences. The screen, the recorder and the HTTP view are listeners beside each other.
 */
export interface ClientEvents {
  /** A whole video frame, verified (and decrypted), in order: its JPEG in `frame.data`. */
  frame: [sub: Subscription, frame: CompletedFrame];
  /** An audio chunk, verified (and decrypted), in order. */
  audio: [sub: Subscription, chunk: CompletedFrame];
  /** The broker accepted a subscription (at once, late, or again in a new session): its metadata is current. */
  accepted: [sub: Subscription];
  /** A subscription that was waiting was accepted: the producer is live now, or the broker answered at last. */
  subscribedLate: [id: number, waitedFor: 'producer' | 'broker'];
  /** A subscription still wanted was refused for good (not a producer that is merely not live). */
  refused: [id: number, why: string];
  /** The user unsubscribed, or the client closed: nothing more comes for it. */
  closed: [sub: Subscription];
  online: [id: number];
  offline: [id: number, ended: boolean];
  firstFrame: [id: number, bytes: number];
  /** Frames arrive again after a silence, with the broker shown reachable. */
  framesAgain: [id: number, silentMs: number];
  problem: [id: number, problem: SubscriptionProblem];
  unreachable: [];
  reachable: [];
  brokerShutdown: [];
  /** A new session with the broker (it restarted, or forgot ours): subscribing again to everything. */
  resubscribing: [];
  resubscribed: [id: number];
  /** The broker sent us to an edge (`host:port`, PROTOCOL.md §5.5): the entry point moves the socket there. */
  redirected: [to: string];
}

export type RequestResult =
  | { readonly ok: true; readonly metadata?: StreamMetadata; readonly online?: boolean }
  | { readonly ok: false; readonly status: number | null; readonly message: string; readonly waiting?: true };

/**
 * A viewer's session with the broker: subscriptions that survive broker restarts and producer
 * restarts, reassembly and figures per subscription (PROTOCOL.md §5).
 */
export class FramecastClient extends EventEmitter<ClientEvents> {
  readonly link: BrokerSession;
  readonly subscriptions = new Map<number, Subscription>();
  readonly #opts: ClientOptions;
  readonly #clock: () => number;
  #healing = false;
  #sessionsOpened = 0;
  #tickTimer: NodeJS.Timeout;
  #reportTimer: NodeJS.Timeout;
  #nakFlushScheduled = false;
  readonly #passKeys = new Map<number, Buffer>();
  readonly #refreshedMs = new Map<number, number>();
  readonly #asking = new Set<Subscription>();
  #closed = false;
  malformed = 0;
  unsolicited = 0;

  constructor(args: { socket: ConnectedSocket; clock: () => number; options: ClientOptions }) {
    super();
    this.#opts = args.options;
    this.#clock = args.clock;
    this.link = new BrokerSession({
      socket: args.socket, clock: args.clock,
      options: {
        role: Role.CLIENT, producerId: 0, heartbeatIntervalMs: args.options.heartbeatIntervalMs, leaseIntervals: args.options.leaseIntervals,
        retryInitialMs: DEFAULT_RETRY_INITIAL_MS, requestAttempts: 5, maxDatagramBytes: args.options.maxDatagramBytes,
      },
    });
    this.link.on('message', (m) => this.#onMessage(m));
    this.link.on('dropped', () => this.malformed++);
    // A new session after the first (the broker restarted, or forgot ours): subscribe again.
    this.link.on('established', () => {
      if (this.#sessionsOpened++ > 0) void this.#heal();
    });
    this.link.on('unreachable', () => this.emit('unreachable'));
    this.link.on('reachable', () => this.emit('reachable'));
    this.#tickTimer = setInterval(() => {
      const now = this.#clock();
      for (const s of this.subscriptions.values()) {
        if (!s.active) continue;
        const previousFrameMs = s.lastFrameMs;
        this.#released(s, s.tick(now), now, previousFrameMs);
        this.#sendNaks(s, now);
      }
    }, TICK_MS);
    this.#tickTimer.unref();
    this.#reportTimer = setInterval(() => {
      for (const s of this.active()) {
        if (s.lastHeardMs === 0) continue;
        this.link.send({ type: MessageType.RECEIVER_REPORT, producerId: s.id, requestId: 0, ...s.report() });
      }
    }, REPORT_INTERVAL_MS);
    this.#reportTimer.unref();
  }

  start(): void {
    this.link.start();
  }

  static readonly #NO_ANSWER = { ok: false, status: null, message: 'the broker did not answer' } as const;
  static readonly #WAITING = { ok: false, status: null, message: 'the broker does not answer yet; asking again until it does', waiting: true } as const;
  static readonly #NOT_LIVE = { ok: false, status: Status.UNKNOWN_PRODUCER, message: 'no such producer is live yet; staying subscribed and asking again until it is', waiting: true } as const;

  /** Subscribes to a producer; with `heal`, keeps trying until the producer is back. */
  async subscribe(id: number): Promise<RequestResult> {
    let sub = this.subscriptions.get(id);
    const existed = sub?.active === true;
    const previous = sub;
    if (sub === undefined || !sub.active) {
      // In the map before the request, so the cached frame replayed right after the ACK is kept.
      const created: Subscription = new Subscription(id, { latencyMs: this.#opts.latencyMs, nakRetryMs: MIN_NAK_RETRY_MS }, {
        passKey: this.#passKeyFor(id),
        onProblem: (problem) => this.emit('problem', id, problem),
        onAudio: (chunk) => this.emit('audio', created, chunk),
      });
      sub = created;
      this.subscriptions.set(id, sub);
    }
    const r = await this.link.request({ type: MessageType.SUBSCRIBE, producerId: id, requestId: 0 });
    if (r?.type === MessageType.ACK && r.status === Status.OK) {
      this.#accepted(sub, r.detail);
      return { ok: true, metadata: r.detail.metadata, online: r.detail.online };
    }
    if (r?.type === MessageType.ACK && r.status === Status.REDIRECT && r.detail.redirect !== undefined && sub.active) {
      // Spread to an edge: still wanted, subscribed there once the session has moved (#heal).
      sub.waiting = 'broker';
      this.emit('redirected', r.detail.redirect);
      void this.#keepAsking(sub);
      return { ok: false, status: Status.REDIRECT, message: `sent to the edge ${r.detail.redirect}: subscribing there`, waiting: true };
    }
    if (r === null || (r.type === MessageType.ACK && r.status === Status.UNKNOWN_PRODUCER)) {
      // What the user asked for stays wanted until they unsubscribe: asked again, with backoff,
      // until the broker answers however late and the producer is live (PROTOCOL.md §5.1).
      if (!sub.active) return FramecastClient.#NO_ANSWER;
      sub.waiting = r === null ? 'broker' : 'producer';
      void this.#keepAsking(sub);
      return r === null ? FramecastClient.#WAITING : FramecastClient.#NOT_LIVE;
    }
    if (!existed) {
      this.#close(sub);
      if (previous === undefined) this.subscriptions.delete(id);
      else this.subscriptions.set(id, previous);
    }
    const status = r.type === MessageType.ACK ? r.status : null;
    return { ok: false, status, message: r.type === MessageType.ACK ? (r.detail.message ?? STATUS_TEXT[r.status]) : 'unexpected reply' };
  }

  /** Asks again for a subscription the broker has not answered, until it does or the user unsubscribes. */
  async #keepAsking(sub: Subscription): Promise<void> {
    if (this.#asking.has(sub)) return;
    this.#asking.add(sub);
    try {
      let answered = false;
      for (let round = 0; sub.active && sub.waiting && !this.#closed; round++) {
        // Backoff with jitter, up to a heartbeat interval: many clients do not ask in step.
        const delayMs = Math.min(this.#opts.heartbeatIntervalMs, DEFAULT_RETRY_INITIAL_MS * 2 ** round) * (0.5 + Math.random() / 2);
        await this.link.waitOrEstablished(delayMs);
        if (!sub.active || !sub.waiting || this.#closed) return;
        const r = await this.link.request({ type: MessageType.SUBSCRIBE, producerId: sub.id, requestId: 0 });
        if (r === null || !sub.active) continue;
        const waitedFor = sub.waiting;
        sub.waiting = false;
        if (r.type === MessageType.ACK && r.status === Status.OK) {
          this.#accepted(sub, r.detail);
          this.emit('subscribedLate', sub.id, waitedFor);
        } else if (r.type === MessageType.ACK && r.status === Status.REDIRECT && r.detail.redirect !== undefined) {
          // Sent to an edge: still wanted, asked there once the session has moved.
          sub.waiting = 'broker';
          this.emit('redirected', r.detail.redirect);
        } else if (r.type === MessageType.ACK && r.status === Status.UNKNOWN_PRODUCER) {
          // Not live yet: it stays wanted. The broker's first answer came with ours: its producer
          // is likely announcing this very moment, so the backoff starts again, once.
          sub.waiting = 'producer';
          if (!answered) round = -1;
          answered = true;
        } else {
          this.#close(sub);
          this.emit('refused', sub.id, r.type === MessageType.ACK ? (r.detail.message ?? STATUS_TEXT[r.status]) : 'unexpected reply');
        }
      }
    } finally {
      this.#asking.delete(sub);
    }
  }

  /**
   * The broker accepted the subscription (an authenticated SUBSCRIBE ACK OK): its metadata,
   * whether it is live, the run whose frames to accept; no longer waiting.
   */
  #accepted(sub: Subscription, detail: AckDetail): void {
    sub.waiting = false;
    sub.metadata = detail.metadata ?? sub.metadata;
    sub.online = detail.online ?? true;
    if (detail.epoch !== undefined && detail.frameKey !== undefined) {
      sub.setRun({ epoch: detail.epoch, frameKey: detail.frameKey, encrypted: sub.metadata?.encrypted === true });
    }
    this.emit('accepted', sub);
  }

  #close(sub: Subscription): void {
    sub.close();
    this.emit('closed', sub);
  }

  /** The passphrase's key for one producer ID, derived once (scrypt is slow on purpose). */
  #passKeyFor(id: number): (() => Buffer) | null {
    const passphrase = this.#opts.passphrase ?? null;
    if (passphrase === null) return null;
    return () => {
      let key = this.#passKeys.get(id);
      if (key === undefined) this.#passKeys.set(id, (key = passphraseKey(passphrase, id)));
      return key;
    };
  }

  /**
   * MEDIA of a run we were not told of: the producer restarted and its NOTICE was lost, or
   * someone forged it. Either way the broker is asked (SUBSCRIBE is idempotent), at most once a second.
   */
  #refreshRun(sub: Subscription): void {
    const now = this.#clock();
    if (now - (this.#refreshedMs.get(sub.id) ?? -Infinity) < RUN_REFRESH_MS) return;
    this.#refreshedMs.set(sub.id, now);
    void this.link.request({ type: MessageType.SUBSCRIBE, producerId: sub.id, requestId: 0 }).then((r) => {
      if (r?.type === MessageType.ACK && r.status === Status.OK && sub.active) this.#accepted(sub, r.detail);
    });
  }

  async unsubscribe(id: number): Promise<RequestResult> {
    const sub = this.subscriptions.get(id);
    if (sub === undefined || !sub.active) return { ok: false, status: Status.NOT_SUBSCRIBED, message: `not subscribed to ${formatProducerId(id)}` };
    this.#close(sub);
    const r = await this.link.request({ type: MessageType.UNSUBSCRIBE, producerId: id, requestId: 0 });
    if (r === null) return { ok: false, status: null, message: 'the broker did not answer (unsubscribed locally)' };
    return { ok: true };
  }

  async list(): Promise<{ producers: readonly ProducerInfo[]; truncated: boolean } | null> {
    const r = await this.link.request({ type: MessageType.LIST, producerId: 0, requestId: 0 });
    return r?.type === MessageType.LIST_REPLY ? { producers: r.producers, truncated: r.truncated } : null;
  }

  async brokerStats(): Promise<Readonly<Record<string, number>> | null> {
    const r = await this.link.request({ type: MessageType.STATS, producerId: 0, requestId: 0 });
    return r?.type === MessageType.STATS_REPLY ? r.stats : null;
  }

  /** The subscriptions that are active. */
  active(): Subscription[] {
    return [...this.subscriptions.values()].filter((s) => s.active);
  }

  /** Unsubscribes from everything and says goodbye (PROTOCOL.md §4.6). */
  close(): void {
    this.#closed = true;
    for (const s of this.active()) {
      this.link.send({ type: MessageType.UNSUBSCRIBE, producerId: s.id, requestId: 0 });
      this.#close(s);
    }
    this.link.send({ type: MessageType.GOODBYE, producerId: 0, requestId: 0, reason: GoodbyeReason.NORMAL });
    this.link.close();
    clearInterval(this.#tickTimer);
    clearInterval(this.#reportTimer);
  }

  #onMessage(m: Message): void {
    switch (m.type) {
      case MessageType.MEDIA: {
        const sub = this.subscriptions.get(m.producerId);
        if (sub === undefined || !sub.active) {
          this.unsolicited++;
          return;
        }
        if (m.epoch !== sub.run?.epoch) this.#refreshRun(sub);
        const now = this.#clock();
        const previousFrameMs = sub.lastFrameMs;
        const frames = sub.push(m, now);
        if (frames.length > 0) this.#released(sub, frames, now, previousFrameMs);
        // A gap just seen is asked for at once, after the datagrams already queued are read.
        if (!this.#nakFlushScheduled && sub.nakDue(now)) {
          this.#nakFlushScheduled = true;
          setImmediate(() => {
            this.#nakFlushScheduled = false;
            const t = this.#clock();
            for (const s of this.active()) this.#sendNaks(s, t);
          });
        }
        return;
      }
      case MessageType.NOTICE: {
        const sub = this.subscriptions.get(m.producerId);
        if (sub === undefined || !sub.active) return;
        if (m.event === NoticeEvent.PRODUCER_ONLINE) {
          if (!sub.online) this.emit('online', sub.id);
          sub.online = true;
          // A new run of the producer: its frames are accepted from now on (PROTOCOL.md §3.7).
          sub.setRun({ epoch: m.epoch, frameKey: m.frameKey, encrypted: m.encrypted });
        } else {
          if (sub.online) this.emit('offline', sub.id, m.event === NoticeEvent.PRODUCER_ENDED);
          sub.online = false;
        }
        return;
      }
      case MessageType.GOODBYE:
        if (m.producerId === 0 && m.reason === GoodbyeReason.SHUTDOWN) this.emit('brokerShutdown');
        return;
      default:
        return; // heartbeat ACKs and late replies
    }
  }

  /**
   * Tells the person when frames start, or start again after a silence: only once the broker is
   * shown reachable by a datagram that cannot predate a freeze of this process, and the
   * subscription is not waiting for the broker. Frames read from the socket buffer after a
   * freeze are shown, but the silence counts on until then.
   */
  #released(sub: Subscription, frames: readonly CompletedFrame[], now: number, previousFrameMs: number): void {
    if (frames.length === 0) return;
    for (const f of frames) this.emit('frame', sub, f);
    if (previousFrameMs === 0) {
      this.emit('firstFrame', sub.id, frames[0].data.length);
      return;
    }
    if (now - previousFrameMs > this.#opts.heartbeatIntervalMs && sub.quietSinceMs === 0) sub.quietSinceMs = previousFrameMs;
    if (sub.quietSinceMs === 0 || !this.link.confirmed || sub.waiting) return;
    this.emit('framesAgain', sub.id, now - sub.quietSinceMs);
    sub.quietSinceMs = 0;
  }

  #sendNaks(sub: Subscription, now: number): void {
    const rtt = this.link.srttMs;
    const retryMs = Math.max(MIN_NAK_RETRY_MS, rtt === null ? 0 : 1.5 * rtt);
    for (const nak of sub.naks(now, retryMs)) this.link.send(nak);
  }

  /** The broker forgot us (restart, or our lease lapsed): subscribe again to everything. */
  async #heal(): Promise<void> {
    if (this.#healing) return;
    const wanted = this.active();
    if (wanted.length === 0) return;
    this.#healing = true;
    try {
      this.emit('resubscribing');
      let todo = wanted;
      for (let round = 0; todo.length > 0; round++) {
        // Only what is still wanted: the user may have unsubscribed while a round was under way.
        const results = await Promise.all(todo.filter((s) => s.active).map(async (s) => ({ s, r: await this.subscribe(s.id) })));
        for (const { s, r } of results) if (r.ok) this.emit('resubscribed', s.id);
        // A producer not announced yet on a restarted broker: try again shortly, until it is.
        todo = results.filter(({ s, r }) => !r.ok && s.active && (r.status === Status.UNKNOWN_PRODUCER || r.status === null)).map(({ s }) => s);
        const delayMs = Math.min(this.#opts.heartbeatIntervalMs, DEFAULT_RETRY_INITIAL_MS * 2 ** round);
        if (todo.length > 0) await new Promise((res) => setTimeout(res, delayMs));
      }
    } finally {
      this.#healing = false;
    }
  }
}
