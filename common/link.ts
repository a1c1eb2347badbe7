import { EventEmitter } from 'node:events';
import type { Socket } from 'node:dgram';
import { MessageType, Role, Status } from '../protocol/constants.ts';
import { decode, encodeControl, type AckMessage, type ControlMessage, type Message } from '../protocol/codec.ts';
import { isProtocolError } from '../protocol/errors.ts';

export interface LinkOptions {
  readonly role: Role;
  /** The producer's own ID; 0 for a client. */
  readonly producerId: number;
  readonly heartbeatIntervalMs: number;
  /** Missed heartbeat answers after which the broker counts as unreachable. */
  readonly leaseIntervals: number;
  /** First retry of an unanswered request; doubles up to heartbeatIntervalMs (PROTOCOL.md §5.1). */
  readonly retryInitialMs: number;
  readonly requestAttempts: number;
  readonly maxDatagramBytes: number;
}

export type Reply = AckMessage | Extract<ControlMessage, { type: typeof MessageType.LIST_REPLY | typeof MessageType.STATS_REPLY }>;

export interface LinkEvents {
  /** Any datagram from the broker that is not a reply to a request. */
  message: [m: Message, raw: Buffer];
  /** The broker does not know us (it restarted, or dropped us): re-announce or resubscribe. */
  notRegistered: [];
  unreachable: [];
  reachable: [];
  /** Datagrams from the broker that did not decode, by error code. */
  malformed: [code: string];
}

interface Pending {
  readonly msg: Buffer;
  sentMs: number;
  readonly resolve: (r: Reply | null) => void;
  attempts: number;
  timer: NodeJS.Timeout;
}

/**
 * A producer's or client's conversation with the broker over a connected UDP socket:
 * requests matched to replies by request ID and retried with backoff and jitter,
 * heartbeats, and detection of an unreachable or restarted broker (PROTOCOL.md §5.1).
 */
export class BrokerLink extends EventEmitter<LinkEvents> {
  readonly #socket: Socket;
  readonly #opts: LinkOptions;
  readonly #clock: () => number;
  readonly #pending = new Map<number, Pending>();
  #nextRequestId = 1;
  #lastHeardMs: number;
  #reachable = true;
  #heartbeatTimer: NodeJS.Timeout | undefined;
  #missed = 0;
  #closed = false;
  #validated = false;
  #validating: Promise<boolean> | null = null;
  /** The latest heartbeat, to time its answer. */
  #heartbeatId = 0;
  #heartbeatSentMs = 0;
  /** Smoothed round trip to the broker (RFC 6298 gain 1/8); null until measured. */
  #srttMs: number | null = null;

  constructor(args: { socket: Socket; clock: () => number; options: LinkOptions }) {
    super();
    this.#socket = args.socket;
    this.#opts = args.options;
    this.#clock = args.clock;
    this.#lastHeardMs = this.#clock();
  }

  get reachable(): boolean {
    return this.#reachable;
  }
  get lastHeardMs(): number {
    return this.#lastHeardMs;
  }
  /** Smoothed round-trip time to the broker, from heartbeats and first-attempt requests; null until measured. */
  get srttMs(): number | null {
    return this.#srttMs;
  }

  /** Feeds one datagram received on the socket. */
  handleDatagram(raw: Buffer): void {
    let m: Message;
    try {
      m = decode(raw);
    } catch (err) {
      if (!isProtocolError(err)) throw err;
      this.emit('malformed', err.code);
      return;
    }
    this.#heard();
    if (m.type === MessageType.ACK || m.type === MessageType.LIST_REPLY || m.type === MessageType.STATS_REPLY) {
      const p = this.#pending.get(m.requestId);
      if (m.type === MessageType.ACK && m.ackedType === MessageType.HEARTBEAT && m.requestId === this.#heartbeatId && this.#heartbeatSentMs > 0) {
        this.#rttSample(this.#clock() - this.#heartbeatSentMs);
        this.#heartbeatSentMs = 0;
      }
      if (p !== undefined && m.requestId !== 0) {
        // Karn's rule: only an answer to a request sent once times the round trip.
        if (p.attempts === 1) this.#rttSample(this.#clock() - p.sentMs);
        clearTimeout(p.timer);
        this.#pending.delete(m.requestId);
        p.resolve(m);
      }
      if (m.type === MessageType.ACK && m.status === Status.NOT_REGISTERED) {
        this.#validated = false;
        this.emit('notRegistered');
      }
      if (p !== undefined) return;
    }
    this.emit('message', m, raw);
  }

  /**
   * Sends a request and resolves with its reply, or null when every attempt went unanswered.
   * `sign` may finish the encoded datagram in place (a signed ANNOUNCE) before it is sent.
   */
  request(m: ControlMessage, sign?: (datagram: Buffer) => void): Promise<Reply | null> {
    if (this.#closed) return Promise.resolve(null);
    const requestId = this.#nextId();
    const msg = encodeControl({ ...m, requestId } as ControlMessage, this.#opts.maxDatagramBytes);
    sign?.(msg);
    return new Promise((resolve) => {
      const p: Pending = { msg, resolve, attempts: 0, sentMs: 0, timer: undefined as unknown as NodeJS.Timeout };
      this.#pending.set(requestId, p);
      this.#attempt(requestId, p);
    });
  }

  /**
   * Proves this address to the broker before client requests (PROTOCOL.md §4.9): HELLO,
   * then HELLO echoing the broker's token. Concurrent callers share one handshake.
   */
  ensureValidated(): Promise<boolean> {
    if (this.#validated) return Promise.resolve(true);
    this.#validating ??= this.#validate().finally(() => {
      this.#validating = null;
    });
    return this.#validating;
  }

  async #validate(): Promise<boolean> {
    const hello = { type: MessageType.HELLO, producerId: 0, requestId: 0 } as const;
    let r = await this.request({ ...hello, token: Buffer.alloc(0) });
    if (r?.type === MessageType.ACK && r.status === Status.VALIDATE && r.detail.token !== undefined) {
      r = await this.request({ ...hello, token: r.detail.token });
    }
    this.#validated = r?.type === MessageType.ACK && r.status === Status.OK;
    return this.#validated;
  }

  /** Sends without waiting for an answer (GOODBYE). */
  send(m: ControlMessage): void {
    this.#sendRaw(encodeControl(m, this.#opts.maxDatagramBytes));
  }

  sendRaw(buf: Buffer): void {
    this.#sendRaw(buf);
  }

  /** Starts heartbeats: every interval while the broker answers, with backoff while it does not. */
  start(): void {
    this.#scheduleHeartbeat(this.#opts.heartbeatIntervalMs);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#heartbeatTimer);
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.resolve(null);
    }
    this.#pending.clear();
  }

  #attempt(requestId: number, p: Pending): void {
    if (this.#closed) return;
    p.attempts++;
    p.sentMs = this.#clock();
    this.#sendRaw(p.msg);
    if (p.attempts >= this.#opts.requestAttempts) {
      p.timer = setTimeout(() => {
        this.#pending.delete(requestId);
        p.resolve(null);
      }, this.#backoff(p.attempts));
    } else {
      p.timer = setTimeout(() => this.#attempt(requestId, p), this.#backoff(p.attempts));
    }
  }

  /** min(interval, initial * 2^(n-1)), with ±25% jitter so restarted peers do not march in step. */
  #backoff(attempt: number): number {
    const base = Math.min(this.#opts.heartbeatIntervalMs, this.#opts.retryInitialMs * 2 ** (attempt - 1));
    return Math.round(base * (0.75 + Math.random() * 0.5));
  }

  #scheduleHeartbeat(delayMs: number): void {
    if (this.#closed) return;
    this.#heartbeatTimer = setTimeout(() => void this.#heartbeat(), delayMs);
    this.#heartbeatTimer.unref?.();
  }

  async #heartbeat(): Promise<void> {
    const silentMs = this.#clock() - this.#lastHeardMs;
    if (this.#reachable && silentMs > this.#opts.heartbeatIntervalMs * this.#opts.leaseIntervals) {
      this.#reachable = false;
      this.emit('unreachable');
    }
    this.#heartbeatId = this.#nextId();
    this.#heartbeatSentMs = this.#clock();
    this.#sendRaw(encodeControl({ type: MessageType.HEARTBEAT, producerId: this.#opts.producerId, requestId: this.#heartbeatId, role: this.#opts.role }));
    this.#missed = this.#reachable ? 0 : this.#missed + 1;
    // While unreachable: retry sooner at first, then every interval, with jitter (PROTOCOL.md §5.1).
    this.#scheduleHeartbeat(this.#reachable ? this.#opts.heartbeatIntervalMs : this.#backoff(this.#missed));
  }

  #nextId(): number {
    const id = this.#nextRequestId;
    this.#nextRequestId = (this.#nextRequestId % 0xffffffff) + 1;
    return id;
  }

  #rttSample(ms: number): void {
    this.#srttMs = this.#srttMs === null ? ms : this.#srttMs + (ms - this.#srttMs) / 8;
  }

  #heard(): void {
    this.#lastHeardMs = this.#clock();
    if (!this.#reachable) {
      this.#reachable = true;
      this.emit('reachable');
    }
  }

  #sendRaw(buf: Buffer): void {
    if (this.#closed) return;
    try {
      this.#socket.send(buf);
    } catch {
      // The socket is closing; the caller learns through timeouts.
    }
  }
}

export const DEFAULT_LINK_RETRY_INITIAL_MS = 250;
