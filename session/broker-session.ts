import { EventEmitter } from 'node:events';
import {
  CONTROL_HEADER_BYTES, MAGIC, MEDIA_TOKEN_OFFSET, MessageType, Role, SESSION_ID_OFFSET, Status, VERSION,
} from '../protocol/constants.ts';
import { decode, encodeControl, type AckMessage, type ControlMessage, type Message } from '../protocol/codec.ts';
import { isProtocolError } from '../protocol/errors.ts';
import type { SessionKeys } from '../protocol/session-crypto.ts';
import { openFromBroker, PeerHandshake, sealForBroker, type PeerSessionState } from './peer-state.ts';

/** What a session needs of a socket: dgram.Socket connected to the broker satisfies it. */
export interface ConnectedSocket {
  send(msg: Buffer): void;
}

export interface SessionOptions {
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

/** The session a request is built for: a producer binds its secret to it (PROTOCOL.md §4.1). */
export interface SessionView {
  readonly id: number;
  readonly keys: SessionKeys;
}

export interface SessionEvents {
  /** An authenticated datagram from the broker that is not a reply to a request, or any MEDIA (checked by the frame's signature, not here). */
  message: [m: Message, raw: Buffer];
  /** A session was opened (first, or anew after the broker forgot the last one): register again. */
  established: [session: SessionView];
  /** The broker answered within the session that it holds no lease for what we asked about: announce again. */
  notRegistered: [];
  unreachable: [];
  reachable: [];
  /** A heartbeat went unanswered: the entry point may look the broker's name up again (it may have moved). */
  quiet: [];
  /** Datagrams dropped, by reason (a decode error code or an FC_DROP_ code). */
  dropped: [code: string];
}

interface Pending {
  readonly build: (s: SessionView | null) => ControlMessage | null;
  sentMs: number;
  readonly resolve: (r: Reply | null) => void;
  attempts: number;
  timer: NodeJS.Timeout;
}

interface Handshake {
  readonly steps: PeerHandshake;
  /** The request ID of the HELLO that echoes the token; its answer opens the session. */
  echoRequestId: number;
}

type Current = PeerSessionState;

/**
 * A producer's or client's session with the broker (PROTOCOL.md §2.2, §4.9, §5.1), the one
 * session layer of every peer: the handshake (address validation and an ephemeral X25519
 * exchange), then every control datagram sealed with a tag and a packet number and every one
 * received checked before it is decoded; requests matched to replies by request ID and retried
 * with backoff and jitter; heartbeats; and a new session, opened beside the old one, when the
 * broker says it does not know ours (it restarted).
 */
export class BrokerSession extends EventEmitter<SessionEvents> {
  #socket: ConnectedSocket;
  readonly #opts: SessionOptions;
  readonly #clock: () => number;
  readonly #pending = new Map<number, Pending>();
  #nextRequestId = 1;
  #lastHeardMs: number;
  #reachable = true;
  #heartbeatTimer: NodeJS.Timeout | undefined;
  #missed = 0;
  #closed = false;
  #started = false;
  #current: Current | null = null;
  #handshake: Handshake | null = null;
  #handshakeStartedMs = -Infinity;
  #heartbeatId = 0;
  #heartbeatSentMs = 0;
  /** Smoothed round trip to the broker (RFC 6298 gain 1/8); null until measured. */
  #srttMs: number | null = null;
  /** When the next heartbeat is due: a timer far later than that means this process was frozen. */
  #heartbeatDueMs = Infinity;
  /**
   * After a freeze (SIGSTOP, a suspended VM, a blocked event loop), what waits in the socket
   * buffer is of unknown age: only an answer to a request sent from this ID on, or a new
   * session, shows the broker reachable (PROTOCOL.md §5.1). null: not frozen.
   */
  #freshFromId: number | null = null;

  constructor(args: { socket: ConnectedSocket; clock: () => number; options: SessionOptions }) {
    super();
    this.#socket = args.socket;
    this.#opts = args.options;
    this.#clock = args.clock;
    this.#lastHeardMs = this.#clock();
  }

  get reachable(): boolean {
    return this.#reachable;
  }
  /** Reachable, and shown so by a datagram that cannot predate a freeze of this process. */
  get confirmed(): boolean {
    return this.#reachable && this.#freshFromId === null;
  }
  get lastHeardMs(): number {
    return this.#lastHeardMs;
  }
  get srttMs(): number | null {
    return this.#srttMs;
  }
  /** The open session, or null while none is. */
  get session(): SessionView | null {
    return this.#current;
  }

  /** Waits `ms`, or less when a session opens meanwhile (the broker is back: ask again now). */
  waitOrEstablished(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.off('established', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.on('established', done);
    });
  }

  /** Sends from another socket from now on, keeping the session (a NAT rebinding; PROTOCOL.md §4.12). */
  rebind(socket: ConnectedSocket): void {
    this.#socket = socket;
  }

  /**
   * The socket now reaches the broker at another address (its name resolves elsewhere: a
   * recreated container, a rescheduled pod): a broker there knows no session of ours, so a
   * handshake starts at once, beside the current session, rather than at the next retry.
   */
  brokerMoved(): void {
    if (this.#closed || !this.#started) return;
    this.#handshake = null; // a handshake under way was talking to the old address
    this.#openSession();
  }

  /** Feeds one datagram received on the socket. Never throws. */
  handleDatagram(raw: Buffer): void {
    this.#checkFrozen();
    if (raw.length < 8 || raw.readUInt16BE(0) !== MAGIC || raw[2] !== VERSION) return this.#drop('FC_ERR_BAD_MAGIC');
    if (raw[3] === MessageType.MEDIA) {
      // MEDIA is not tagged per subscriber (no per-subscriber crypto on the fan-out): the
      // receiver checks each frame's signature instead (PROTOCOL.md §3.7).
      return this.#emitDecoded(raw);
    }
    if (raw.length < CONTROL_HEADER_BYTES) return this.#drop('FC_ERR_TOO_SHORT');
    const sid = raw.readUInt32BE(SESSION_ID_OFFSET);
    if (sid === 0) return this.#handleUntagged(raw);
    const cur = this.#current;
    if (cur !== null && sid === cur.id) {
      const m = openFromBroker(cur, raw);
      if (typeof m === 'string') return this.#drop(m);
      this.#heard(m);
      return this.#dispatch(m, raw);
    }
    if (this.#handshake !== null) return this.#maybeWelcome(raw, this.#handshake);
    this.#drop('FC_DROP_UNKNOWN_SESSION');
  }

  /**
   * Sends a request within the session and resolves with its reply, or null when every attempt
   * went unanswered. `build` makes the message for the session open at each attempt (a signed
   * ANNOUNCE is bound to it); an attempt while no session is open is not sent.
   */
  request(m: ControlMessage | ((s: SessionView) => ControlMessage)): Promise<Reply | null> {
    const build = typeof m === 'function' ? m : () => m;
    return this.#request((s) => (s === null ? null : build(s)));
  }

  /** Sends within the session without waiting for an answer (GOODBYE, NAK, reports); dropped while none is open. */
  send(m: ControlMessage): void {
    const cur = this.#current;
    if (cur === null) return;
    this.#sendRaw(this.#seal(m, cur));
  }

  /** Sends a MEDIA datagram built by the packetizer, with this session's media token written in (PROTOCOL.md §3.1). */
  sendMedia(datagram: Buffer): boolean {
    const cur = this.#current;
    if (cur === null) return false;
    cur.keys.mediaToken.copy(datagram, MEDIA_TOKEN_OFFSET);
    this.#sendRaw(datagram);
    return true;
  }

  /** Opens the session and starts heartbeats. */
  start(): void {
    this.#started = true;
    this.#openSession();
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

  /** Resolves once a session is open (true), or false when the link closed first. */
  async ready(): Promise<boolean> {
    if (this.#current !== null) return true;
    if (this.#closed) return false;
    return new Promise((resolve) => {
      const done = (): void => {
        clearInterval(poll);
        this.off('established', done);
        resolve(this.#current !== null);
      };
      // The close() of a link does not emit: look now and then.
      const poll = setInterval(() => this.#closed && done(), 200);
      poll.unref();
      this.on('established', done);
    });
  }

  // ---- handshake (PROTOCOL.md §4.9) ----

  /** Starts a handshake unless one runs; the current session stays usable until the new one is open. */
  #openSession(): void {
    if (this.#closed || this.#handshake !== null) return;
    const hs: Handshake = { steps: new PeerHandshake(), echoRequestId: 0 };
    this.#handshake = hs;
    this.#handshakeStartedMs = this.#clock();
    void this.#runHandshake(hs);
  }

  async #runHandshake(hs: Handshake): Promise<void> {
    while (!this.#closed && this.#handshake === hs) {
      const challenge = await this.#request(() => hs.steps.hello(0), { untagged: true });
      if (this.#handshake !== hs) return;
      if (challenge?.type !== MessageType.ACK || challenge.status !== Status.VALIDATE || challenge.detail.token === undefined) {
        if (challenge?.type === MessageType.ACK) await this.#sleep(this.#opts.heartbeatIntervalMs); // refused: LIMIT_REACHED
        continue;
      }
      const token = challenge.detail.token;
      const welcome = await this.#request(() => hs.steps.hello(0, token), { untagged: true, onId: (id) => { hs.echoRequestId = id; } });
      if (this.#handshake !== hs) return;
      if (welcome?.type === MessageType.ACK && welcome.status === Status.LIMIT_REACHED) await this.#sleep(this.#opts.heartbeatIntervalMs);
      // Unanswered, a refused or expired token: start over with a fresh token.
    }
  }

  /** The broker's answer to the echoed token, in the new session: derive the keys, then check its tag. */
  #maybeWelcome(raw: Buffer, hs: Handshake): void {
    const cur = hs.steps.open(raw, hs.echoRequestId);
    if (cur === null) return this.#drop('FC_DROP_UNKNOWN_SESSION');
    this.#current = cur;
    this.#handshake = null;
    this.#heard();
    const p = this.#pending.get(hs.echoRequestId);
    if (p !== undefined) {
      clearTimeout(p.timer);
      this.#pending.delete(hs.echoRequestId);
      p.resolve(null);
    }
    this.emit('established', cur);
    this.#kickPending();
  }

  #handleUntagged(raw: Buffer): void {
    const m = this.#decode(raw);
    if (m === null || m.type === MessageType.MEDIA) return;
    if (m.type === MessageType.SESSION_UNKNOWN) {
      // Forgeable, so it never ends the session we have: at most it makes us open another beside
      // it, no more than once a heartbeat interval (PROTOCOL.md §4.13).
      const ours = this.#current !== null && m.unknownSessionId === this.#current.id;
      const ourMedia = this.#opts.role === Role.PRODUCER && m.unknownSessionId === 0 && m.producerId === this.#opts.producerId;
      if ((ours || ourMedia) && this.#clock() - this.#handshakeStartedMs >= this.#opts.heartbeatIntervalMs) this.#openSession();
      return;
    }
    // Untagged answers only ever answer a HELLO: a token to echo, or a refusal.
    if (m.type !== MessageType.ACK || m.ackedType !== MessageType.HELLO || this.#handshake === null) return this.#drop('FC_DROP_UNTAGGED');
    this.#settle(m);
  }

  // ---- inside a session ----

  #dispatch(m: ControlMessage, raw: Buffer): void {
    if (m.type === MessageType.GOODBYE && m.producerId === 0) {
      // The broker is stopping (PROTOCOL.md §4.6): this session is over; open the next one as
      // soon as a broker answers, and register again then.
      this.#current = null;
      this.#openSession();
      this.emit('message', m, raw);
      return;
    }
    if (m.type === MessageType.PATH_CHALLENGE) {
      // Our address changed (a NAT rebinding): prove the new one receives (PROTOCOL.md §4.12).
      this.send({ type: MessageType.PATH_RESPONSE, producerId: 0, requestId: 0, nonce: m.nonce });
      return;
    }
    if (m.type === MessageType.ACK || m.type === MessageType.LIST_REPLY || m.type === MessageType.STATS_REPLY) {
      if (m.type === MessageType.ACK && m.ackedType === MessageType.HEARTBEAT && m.requestId === this.#heartbeatId && this.#heartbeatSentMs > 0) {
        this.#rttSample(this.#clock() - this.#heartbeatSentMs);
        this.#heartbeatSentMs = 0;
      }
      const settled = this.#settle(m);
      if (m.type === MessageType.ACK && m.status === Status.NOT_REGISTERED) this.emit('notRegistered');
      if (settled) return;
    }
    this.emit('message', m, raw);
  }

  /** Resolves the request a reply answers; false when none waits for it. */
  #settle(m: Reply): boolean {
    const p = m.requestId === 0 ? undefined : this.#pending.get(m.requestId);
    if (p === undefined) return false;
    // Karn's rule: only an answer to a request sent once times the round trip.
    if (p.attempts === 1) this.#rttSample(this.#clock() - p.sentMs);
    clearTimeout(p.timer);
    this.#pending.delete(m.requestId);
    p.resolve(m);
    return true;
  }

  #request(build: (s: SessionView | null) => ControlMessage | null, how: { untagged?: boolean; onId?: (id: number) => void } = {}): Promise<Reply | null> {
    if (this.#closed) return Promise.resolve(null);
    const requestId = this.#nextId();
    how.onId?.(requestId);
    const b = how.untagged === true ? () => ({ ...build(null)!, requestId }) : (s: SessionView | null) => {
      const m = build(s);
      return m === null ? null : { ...m, requestId };
    };
    return new Promise((resolve) => {
      const p: Pending = { build: b as Pending['build'], resolve, attempts: 0, sentMs: 0, timer: undefined as unknown as NodeJS.Timeout };
      this.#pending.set(requestId, p);
      this.#attempt(requestId, p);
    });
  }

  #attempt(requestId: number, p: Pending): void {
    if (this.#closed || this.#pending.get(requestId) !== p) return;
    p.attempts++;
    p.sentMs = this.#clock();
    const m = p.build(this.#current);
    if (m !== null) {
      const cur = this.#current;
      if (m.type === MessageType.HELLO) this.#sendRaw(encodeControl(m));
      else if (cur !== null) this.#sendRaw(this.#seal(m, cur));
    }
    // Answered already (a socket that delivers the reply within send): no retry to schedule.
    if (this.#pending.get(requestId) !== p) return;
    if (p.attempts >= this.#opts.requestAttempts) {
      p.timer = setTimeout(() => {
        this.#pending.delete(requestId);
        p.resolve(null);
      }, this.#backoff(p.attempts));
    } else {
      p.timer = setTimeout(() => this.#attempt(requestId, p), this.#backoff(p.attempts));
    }
  }

  /** A session just opened: send what waited for one now rather than at its next retry. */
  #kickPending(): void {
    for (const [id, p] of this.#pending) {
      const m = p.build(this.#current);
      if (m === null || m.type === MessageType.HELLO) continue;
      clearTimeout(p.timer);
      // A request that spent its attempts while no session was open (none of them was sent)
      // still gets this one, with the usual wait for its answer.
      if (p.attempts >= this.#opts.requestAttempts) p.attempts = this.#opts.requestAttempts - 1;
      this.#attempt(id, p);
    }
  }

  #seal(m: ControlMessage, cur: Current): Buffer {
    return sealForBroker(cur, m, Math.max(this.#opts.maxDatagramBytes, 1200));
  }

  /** min(interval, initial * 2^(n-1)), with ±25% jitter so restarted peers do not march in step. */
  #backoff(attempt: number): number {
    const base = Math.min(this.#opts.heartbeatIntervalMs, this.#opts.retryInitialMs * 2 ** (attempt - 1));
    return Math.round(base * (0.75 + Math.random() * 0.5));
  }

  #scheduleHeartbeat(delayMs: number): void {
    if (this.#closed) return;
    this.#heartbeatDueMs = this.#clock() + delayMs;
    this.#heartbeatTimer = setTimeout(() => this.#heartbeat(), delayMs);
    this.#heartbeatTimer.unref?.();
  }

  /**
   * A heartbeat overdue by more than an interval: this process did not run for a while. What
   * it reads now may have waited in the socket buffer all along, so it no longer proves the
   * broker reachable; a silence longer than the lease is said as it was.
   */
  #checkFrozen(): void {
    const now = this.#clock();
    if (this.#freshFromId !== null || now - this.#heartbeatDueMs <= this.#opts.heartbeatIntervalMs) return;
    this.#freshFromId = this.#nextRequestId;
    this.#heartbeatDueMs = Infinity;
    if (this.#reachable && now - this.#lastHeardMs > this.#opts.heartbeatIntervalMs * this.#opts.leaseIntervals) {
      this.#reachable = false;
      this.emit('unreachable');
    }
  }

  #heartbeat(): void {
    this.#checkFrozen();
    const silentMs = this.#clock() - this.#lastHeardMs;
    if (silentMs > this.#opts.heartbeatIntervalMs) this.emit('quiet');
    if (this.#reachable && silentMs > this.#opts.heartbeatIntervalMs * this.#opts.leaseIntervals) {
      this.#reachable = false;
      this.emit('unreachable');
    }
    if (this.#current !== null) {
      this.#heartbeatId = this.#nextId();
      this.#heartbeatSentMs = this.#clock();
      this.send({ type: MessageType.HEARTBEAT, producerId: this.#opts.producerId, requestId: this.#heartbeatId, role: this.#opts.role });
    } else if (this.#started) {
      this.#openSession(); // no-op while a handshake runs
    }
    this.#missed = this.#reachable ? 0 : this.#missed + 1;
    // While unreachable: retry sooner at first, then every interval, with jitter. A heartbeat gone
    // unanswered is followed by another a quarter interval later, so that one lost answer is told
    // from a broker gone within a few quarters (PROTOCOL.md §5.1).
    const quiet = silentMs > this.#opts.heartbeatIntervalMs;
    // (The quarter has the backoff's jitter: peers of a broker that died do not ask in step.)
    this.#scheduleHeartbeat(!this.#reachable ? this.#backoff(this.#missed) : quiet ? Math.round((this.#opts.heartbeatIntervalMs / 4) * (0.75 + Math.random() * 0.5)) : this.#opts.heartbeatIntervalMs);
  }

  #decode(raw: Buffer): Message | null {
    try {
      return decode(raw);
    } catch (err) {
      if (!isProtocolError(err)) throw err;
      this.#drop(err.code);
      return null;
    }
  }

  #emitDecoded(raw: Buffer): void {
    const m = this.#decode(raw);
    if (m !== null) this.emit('message', m, raw);
  }

  #drop(code: string): void {
    this.emit('dropped', code);
  }

  #nextId(): number {
    const id = this.#nextRequestId;
    this.#nextRequestId = (this.#nextRequestId % 0xffffffff) + 1;
    return id;
  }

  #rttSample(ms: number): void {
    this.#srttMs = this.#srttMs === null ? ms : this.#srttMs + (ms - this.#srttMs) / 8;
  }

  /** An authenticated datagram from the broker: `m` when it is a message within the session, none for a new session's answer. */
  #heard(m?: ControlMessage): void {
    const fresh = this.#freshFromId;
    if (fresh !== null) {
      // After a freeze only an answer to what was asked since counts (request IDs wrap at 2^32).
      const answer = m !== undefined && (m.type === MessageType.ACK || m.type === MessageType.LIST_REPLY || m.type === MessageType.STATS_REPLY);
      if (m !== undefined && !(answer && ((m.requestId - fresh) >>> 0) < 0x80000000)) return;
      this.#freshFromId = null;
    }
    this.#lastHeardMs = this.#clock();
    if (!this.#reachable) {
      this.#reachable = true;
      this.emit('reachable');
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms).unref());
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

export const DEFAULT_RETRY_INITIAL_MS = 250;
