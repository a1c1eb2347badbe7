import { EventEmitter } from 'node:events';
import {
  CONTROL_HEADER_BYTES, GoodbyeReason, MAGIC, MEDIA_HEADER_BYTES, MediaFlag, MessageType, NoticeEvent, Role, Status, STATUS_TEXT,
  Track, VERSION,
} from '../protocol/constants.ts';
import {
  checkMedia, decode, encodeControl, type AckDetail, type AnnounceMessage, type ControlMessage, type GoodbyeMessage,
  type HeartbeatMessage, type HelloMessage, type NakMessage, type ReceiverReportMessage, type SubscribeMessage,
  type UnsubscribeMessage,
} from '../protocol/codec.ts';
import { isProtocolError } from '../protocol/errors.ts';
import { DatagramLog } from '../protocol/history.ts';
import { verifyAnnounce } from '../common/announce-auth.ts';
import type { ProducerInfo } from '../protocol/metadata.ts';
import { AddressValidator } from './address-validator.ts';
import { Channel, newSubscriber, type PeerSender, type Subscriber } from './channel.ts';
import { RateLimiter } from './rate-limiter.ts';
import { addressKey, type ClientEntry } from './clients.ts';
import { createCounters, type BrokerCounters } from './counters.ts';
import { DEFAULT_BROKER_OPTIONS, type BrokerOptions } from './options.ts';

/** What the broker uses of dgram.Socket; tests may pass a recorder. */
export interface DatagramSocket {
  send(msg: Buffer, port: number, address: string): void;
  /** Bytes waiting in user space because the kernel's send buffer was full (dgram.Socket has it). */
  getSendQueueSize?(): number;
}
export interface RemoteInfo { readonly address: string; readonly port: number }

/**
 * Optional: a socket per validated client, bound to the broker's port and connected to the
 * client, so a send names no address (Node's per-send address handling is a fifth of its cost,
 * docs/BENCHMARKS.md). Replies still come from the same port, so NAT and validation see one peer.
 */
export interface PeerSockets {
  open(address: string, port: number): PeerSender;
  close(sender: PeerSender): void;
}
export type Clock = () => number;

/**
 * Optional: threads that send media for the broker (fanout-threads.ts, `--fanout-threads`). The
 * broker keeps every decision and tells them, in order, which validated client watches which
 * producer; they send from sockets of the broker's own port.
 */
export interface Fanout {
  /** A validated client; the number names it in later calls. */
  open(address: string, port: number): number;
  close(peer: number): void;
  subscribe(channel: number, peer: number): void;
  unsubscribe(channel: number, peer: number): void;
  /** Sends `msg` to every subscriber of `channel`; false when it could not be taken (dropped, counted as shed). */
  publish(channel: number, msg: Buffer): boolean;
  /** Bytes taken and not yet sent: part of the send queue that shedding watches (PROTOCOL.md §3.5). */
  queuedBytes(): number;
}

/** One subscriber's reception, as its receiver reports tell it. */
export interface SubscriberQuality {
  readonly producer: number;
  readonly client: string;
  readonly lossPct: number;
  readonly totalLossPct: number;
  readonly jitterMs: number;
  readonly framesComplete: number;
  readonly framesDropped: number;
  readonly retransmits: number;
}

/** Requests only a validated client may make (PROTOCOL.md §4.9). */
const CLIENT_REQUESTS: ReadonlySet<number> = new Set([
  MessageType.SUBSCRIBE, MessageType.UNSUBSCRIBE, MessageType.LIST, MessageType.STATS, MessageType.NAK, MessageType.RECEIVER_REPORT,
]);
/** Control types a peer may send to the broker. */
const TO_BROKER: ReadonlySet<number> = new Set([
  ...CLIENT_REQUESTS, MessageType.HELLO, MessageType.ANNOUNCE, MessageType.HEARTBEAT, MessageType.GOODBYE,
]);

export interface BrokerEvents {
  producerOnline: [id: number, address: string, port: number, title: string];
  producerOffline: [id: number, reason: 'lease' | 'goodbye'];
  producerRefused: [id: number, address: string, port: number];
  clientJoined: [address: string, port: number];
  clientLeft: [address: string, port: number, reason: 'lease' | 'goodbye'];
  subscribed: [id: number, address: string, port: number];
  unsubscribed: [id: number, address: string, port: number];
}

/**
 * The broker's state machine: producers, subscriptions, leases and fan-out over one socket.
 * It owns no socket or timer: the entry point feeds it datagrams and calls `sweep(now)`.
 */
export class Broker extends EventEmitter<BrokerEvents> {
  readonly counters: BrokerCounters = createCounters();
  readonly options: BrokerOptions;
  readonly #socket: DatagramSocket;
  readonly #clock: Clock;
  /** Wall-clock time, only to check the time in a signed ANNOUNCE. */
  readonly #wallClock: Clock;
  readonly #channels = new Map<number, Channel>();
  readonly #clients = new Map<string, ClientEntry>();
  readonly #validator: AddressValidator;
  readonly #controlRate: RateLimiter;
  readonly #nakRate: RateLimiter;
  /** Recent datagrams of every producer, for NAKs (PROTOCOL.md §3.6). */
  readonly #log: DatagramLog;
  #lastHintMs = -Infinity;
  #queueFull = false;
  #queueCheckedMs = -Infinity;
  /**
   * How long a datagram is kept for NAKs: two budgets, since a receiver learns of a loss only
   * when a later datagram arrives (up to a frame interval later) and then has a whole budget to
   * repair it (PROTOCOL.md §3.6).
   */
  get #historyMs(): number {
    return 2 * this.options.latencyMs;
  }

  readonly #peers: PeerSockets | null;
  readonly #fanout: Fanout | null;

  constructor(args: {
    socket: DatagramSocket; clock: Clock; wallClock?: Clock; options?: Partial<BrokerOptions>; secret?: Buffer; peers?: PeerSockets; fanout?: Fanout;
  }) {
    super();
    this.#socket = args.socket;
    this.#peers = args.peers ?? null;
    this.#fanout = args.fanout ?? null;
    this.#clock = args.clock;
    this.#wallClock = args.wallClock ?? Date.now;
    this.options = Object.freeze({ ...DEFAULT_BROKER_OPTIONS, ...args.options });
    this.#validator = new AddressValidator({ lifetimeMs: this.options.tokenLifetimeMs, secret: args.secret });
    this.#controlRate = new RateLimiter({ ratePerSecond: this.options.maxControlPerSecondPerAddress, maxTracked: this.options.maxRateTrackedAddresses });
    this.#log = new DatagramLog(this.options.historyBytes);
    this.#nakRate = new RateLimiter({ ratePerSecond: this.options.maxNaksPerSecondPerAddress, maxTracked: this.options.maxRateTrackedAddresses });
  }

  get producerCount(): number {
    let n = 0;
    for (const ch of this.#channels.values()) if (ch.producer?.online) n++;
    return n;
  }
  get clientCount(): number {
    return this.#clients.size;
  }
  get subscriptionCount(): number {
    let n = 0;
    for (const ch of this.#channels.values()) n += ch.subscribers.length;
    return n;
  }

  /** Handles one received datagram. Never throws: bad input is counted and dropped. */
  handleDatagram(msg: Buffer, rinfo: RemoteInfo): void {
    const c = this.counters;
    c.datagramsIn++;
    c.bytesIn += msg.length;
    // Hot path (PROTOCOL.md §3): a MEDIA datagram is forwarded as received, without decoding.
    if (msg.length >= MEDIA_HEADER_BYTES && msg[3] === MessageType.MEDIA && msg[2] === VERSION && msg.readUInt16BE(0) === MAGIC) {
      this.#forwardMedia(msg, rinfo);
      return;
    }
    // Everything else is control: limited per address before any work is spent on it (PROTOCOL.md §5.4).
    // NAKs have a budget of their own, so recovery does not starve heartbeats and requests.
    const limiter = msg.length >= 4 && msg[3] === MessageType.NAK ? this.#nakRate : this.#controlRate;
    if (!limiter.allow(addressKey(rinfo.address, rinfo.port), this.#clock())) {
      c.countDrop('FC_DROP_RATE_LIMITED');
      return;
    }
    let m;
    try {
      m = decode(msg);
    } catch (err) {
      if (!isProtocolError(err)) throw err;
      c.countDrop(err.code);
      return;
    }
    if (m.type === MessageType.MEDIA) return; // a short MEDIA already failed checkMedia in decode
    this.#handleControl(m, rinfo, msg);
  }

  #forwardMedia(msg: Buffer, rinfo: RemoteInfo): void {
    const c = this.counters;
    const ch = this.#channels.get(msg.readUInt32BE(4));
    const p = ch?.producer;
    if (ch === undefined || p == null || p.port !== rinfo.port || p.address !== rinfo.address) {
      // Not announced (a restarted broker): nudge the sender to announce, at most 10 times a second.
      c.countDrop(p == null ? 'FC_DROP_UNKNOWN_PRODUCER' : 'FC_DROP_NOT_OWNER');
      if (p == null) this.#hintUnregistered(msg.readUInt32BE(4), rinfo);
      return;
    }
    const err = checkMedia(msg);
    if (err !== null) {
      c.countDrop(err);
      return;
    }
    p.mediaSinceSweep = true; // the lease, renewed by the next sweep
    if (!p.online) this.#setOnline(ch, p.address, p.port);
    const track = msg[12];
    if (track === Track.VIDEO) ch.cacheVideo(msg);
    c.mediaIn++;
    const subs = ch.subscribers;
    const n = subs.length;
    if (n === 0) return; // nobody watches: nothing to send, nothing anyone could NAK
    const now = this.#clock();
    if (this.options.latencyMs > 0) ch.history.put(track, msg, now);
    // Slow path out (PROTOCOL.md §3.5): when the send queue is over its bound at a frame's first
    // fragment, that whole frame is shed rather than queued; a part of a frame is worth nothing.
    const frameStart = msg[14] === 0 && msg[15] === 0;
    if (frameStart) ch.shedFrame[track] = this.#sendQueueFull(now) ? msg.readUInt32BE(24) : -1;
    if (ch.shedFrame[track] >= 0 && ch.shedFrame[track] === msg.readUInt32BE(24)) {
      if (frameStart) c.framesShed++;
      c.datagramsShed += n;
      return;
    }
    // Fan-out threads pay a hand-over per datagram; they win only where a datagram has many
    // copies to send (docs/SCALING.md). A channel switching sides may reorder a few datagrams.
    if (this.#fanout !== null && n >= this.options.fanoutMinSubscribers) {
      if (this.#fanout.publish(ch.id, msg)) {
        c.datagramsOut += n;
        c.bytesOut += n * msg.length;
      } else {
        c.datagramsShed += n;
      }
      return;
    }
    const socket = this.#socket;
    for (let i = 0; i < n; i++) {
      const s = subs[i];
      if (s.out !== null) s.out.send(msg);
      else socket.send(msg, s.port, s.address);
    }
    c.datagramsOut += n;
    c.bytesOut += n * msg.length;
  }

  #handleControl(m: ControlMessage, rinfo: RemoteInfo, raw: Buffer): void {
    const key = addressKey(rinfo.address, rinfo.port);
    const client = this.#clients.get(key);
    if (client !== undefined) client.lastHeardMs = this.#clock();
    if (!TO_BROKER.has(m.type)) {
      // ACK, NOTICE and replies only travel from the broker.
      this.counters.countDrop('FC_DROP_UNEXPECTED_TYPE');
      return;
    }
    // PROTOCOL.md §4.9: a client request from an address that has not proved it receives gets
    // no answer (the only answer would be larger than the request: an amplification).
    if (client === undefined && CLIENT_REQUESTS.has(m.type)) {
      this.counters.countDrop('FC_DROP_UNVALIDATED');
      return;
    }
    // Every datagram is counted once: datagramsIn = mediaIn + controlIn + dropped.
    this.counters.controlIn++;
    switch (m.type) {
      case MessageType.HELLO: return this.#handleHello(m, rinfo, key, raw.length);
      case MessageType.ANNOUNCE: return this.#handleAnnounce(m, rinfo, key, raw);
      case MessageType.SUBSCRIBE: return this.#handleSubscribe(m, rinfo, key);
      case MessageType.UNSUBSCRIBE: return this.#handleUnsubscribe(m, rinfo, key);
      case MessageType.LIST: return this.#reply(rinfo, this.#listReply(m.requestId), this.options.maxReplyBytes);
      case MessageType.STATS: return this.#reply(rinfo, { type: MessageType.STATS_REPLY, producerId: 0, requestId: m.requestId, stats: this.statsSnapshot() }, this.options.maxReplyBytes);
      case MessageType.HEARTBEAT: return this.#handleHeartbeat(m, rinfo, key);
      case MessageType.GOODBYE: return this.#handleGoodbye(m, rinfo, key);
      case MessageType.NAK: return this.#handleNak(m, rinfo, key);
      case MessageType.RECEIVER_REPORT: return this.#handleReport(m, key);
    }
  }

  #handleAnnounce(m: AnnounceMessage, rinfo: RemoteInfo, key: string, raw: Buffer): void {
    let ch = this.#channels.get(m.producerId);
    if (ch === undefined) {
      if (this.#channels.size >= this.options.maxProducers) return this.#ack(rinfo, m, Status.LIMIT_REACHED, { message: `the broker carries at most ${this.options.maxProducers} producers` });
      ch = new Channel(m.producerId, this.options.maxCachedFragments, { slots: this.options.historyDatagrams, log: this.#log });
      this.#channels.set(m.producerId, ch);
    }
    const now = this.#clock();
    const p = ch.producer;
    // PROTOCOL.md §4.1: an ID with a secret takes only signed, fresh ANNOUNCEs. A copy of one
    // carries the epoch of the original: from another address, it is a replay.
    const secret = this.options.producerSecrets.get(m.producerId);
    let proved = false;
    if (secret !== undefined) {
      const replay = p !== null && p.epoch === m.epoch && p.key !== key;
      if (replay || !verifyAnnounce(raw, secret, this.#wallClock(), this.options.announceWindowMs)) {
        this.counters.announcesRefused++;
        this.emit('producerRefused', m.producerId, rinfo.address, rinfo.port);
        return this.#ack(rinfo, m, Status.AUTH_FAILED);
      }
      proved = true;
    }
    // PROTOCOL.md §5.3: an ID belongs to the address that announced it while its lease lives,
    // unless the new announcer proves it holds the ID's secret (a restarted producer).
    if (p !== null && p.online && p.key !== key && !proved) {
      this.counters.announcesRefused++;
      this.emit('producerRefused', m.producerId, rinfo.address, rinfo.port);
      return this.#ack(rinfo, m, Status.ID_TAKEN);
    }
    const resumed = p === null || !p.online || p.epoch !== m.epoch || p.key !== key;
    if (p !== null && p.key === key) {
      p.metadata = m.metadata;
      p.lastHeardMs = now;
      if (p.epoch !== m.epoch) ch.clearCache();
      p.epoch = m.epoch;
    } else {
      ch.clearCache();
      ch.producer = { address: rinfo.address, port: rinfo.port, key, metadata: m.metadata, epoch: m.epoch, lastHeardMs: now, mediaSinceSweep: false, online: false, offlineSinceMs: now };
    }
    this.#ack(rinfo, m, Status.OK, this.#leaseDetail());
    if (resumed || !ch.producer!.online) this.#setOnline(ch, rinfo.address, rinfo.port);
  }

  #setOnline(ch: Channel, address: string, port: number): void {
    const p = ch.producer!;
    p.online = true;
    p.offlineSinceMs = 0;
    this.#notify(ch, NoticeEvent.PRODUCER_ONLINE);
    this.emit('producerOnline', ch.id, address, port, p.metadata.title);
  }

  /** Address validation (PROTOCOL.md §4.9): a token first, a client lease once it is echoed. */
  #handleHello(m: HelloMessage, rinfo: RemoteInfo, key: string, requestBytes: number): void {
    const now = this.#clock();
    if (this.#clients.has(key)) return this.#ack(rinfo, m, Status.OK, this.#leaseDetail());
    if (m.token.length === 0 || !this.#validator.verify(m.token, rinfo.address, rinfo.port, now)) {
      if (m.token.length > 0) this.counters.tokensRefused++;
      const challenge = encodeControl({
        type: MessageType.ACK, producerId: 0, requestId: m.requestId, status: Status.VALIDATE, ackedType: MessageType.HELLO,
        detail: { token: this.#validator.mint(rinfo.address, rinfo.port, now) },
      });
      // Never more bytes to an unvalidated address than it sent (HELLO is padded to make room).
      if (challenge.length <= requestBytes) this.#sendCounted(challenge, rinfo.port, rinfo.address);
      else this.#dropControl('FC_DROP_AMPLIFICATION');
      return;
    }
    if (this.#clients.size >= this.options.maxClients) return this.#ack(rinfo, m, Status.LIMIT_REACHED, { message: `the broker serves at most ${this.options.maxClients} clients` });
    const out = this.#peers?.open(rinfo.address, rinfo.port) ?? null;
    const peer = this.#fanout?.open(rinfo.address, rinfo.port) ?? 0;
    this.#clients.set(key, { key, address: rinfo.address, port: rinfo.port, lastHeardMs: now, subscriptions: new Map(), out, peer });
    this.emit('clientJoined', rinfo.address, rinfo.port);
    this.#ack(rinfo, m, Status.OK, this.#leaseDetail());
  }

  #handleSubscribe(m: SubscribeMessage, rinfo: RemoteInfo, key: string): void {
    const ch = this.#channels.get(m.producerId);
    if (ch === undefined || ch.producer === null) return this.#ack(rinfo, m, Status.UNKNOWN_PRODUCER);
    const client = this.#clients.get(key)!; // validated in #handleControl
    const detail: AckDetail = { metadata: ch.producer.metadata, online: ch.producer.online, ...this.#leaseDetail() };
    if (client.subscriptions.has(m.producerId)) return this.#ack(rinfo, m, Status.OK, detail); // a retry
    if (client.subscriptions.size >= this.options.maxSubscriptionsPerClient) {
      return this.#ack(rinfo, m, Status.LIMIT_REACHED, { message: `at most ${this.options.maxSubscriptionsPerClient} subscriptions per client` });
    }
    if (ch.subscribers.length >= this.options.maxSubscribersPerProducer) {
      return this.#ack(rinfo, m, Status.LIMIT_REACHED, { message: `at most ${this.options.maxSubscribersPerProducer} viewers per producer` });
    }
    const sub: Subscriber = newSubscriber(key, rinfo.address, rinfo.port, client.out, this.options.maxRetransmitsPerSecondPerSubscriber, this.#clock());
    ch.addSubscriber(sub);
    client.subscriptions.set(m.producerId, sub);
    this.#fanout?.subscribe(ch.id, client.peer);
    this.#ack(rinfo, m, Status.OK, detail);
    this.emit('subscribed', m.producerId, rinfo.address, rinfo.port);
    // Instant join (PROTOCOL.md §3.5): the latest whole frame now, not at the next frame.
    if (ch.producer.online) {
      for (const d of ch.replayDatagrams()) this.#sendCounted(d, rinfo.port, rinfo.address);
    }
  }

  #handleUnsubscribe(m: UnsubscribeMessage, rinfo: RemoteInfo, key: string): void {
    const client = this.#clients.get(key);
    const had = client?.subscriptions.delete(m.producerId) ?? false;
    this.#channels.get(m.producerId)?.removeSubscriber(key);
    if (had) this.#fanout?.unsubscribe(m.producerId, client!.peer);
    // Idempotent: a retried UNSUBSCRIBE is answered OK as well (PROTOCOL.md §4.2).
    this.#ack(rinfo, m, had || client !== undefined ? Status.OK : Status.NOT_SUBSCRIBED);
    if (had) this.emit('unsubscribed', m.producerId, rinfo.address, rinfo.port);
  }

  #handleHeartbeat(m: HeartbeatMessage, rinfo: RemoteInfo, key: string): void {
    const now = this.#clock();
    if (m.role === Role.CLIENT) {
      // Unknown client: a restarted broker, or one that dropped it. NOT_REGISTERED makes it resubscribe.
      const known = this.#clients.has(key);
      return this.#ack(rinfo, m, known ? Status.OK : Status.NOT_REGISTERED, known ? this.#leaseDetail() : {});
    }
    const p = this.#channels.get(m.producerId)?.producer;
    if (p == null || p.key !== key) return this.#ack(rinfo, m, Status.NOT_REGISTERED);
    p.lastHeardMs = now;
    this.#ack(rinfo, m, Status.OK, this.#leaseDetail());
  }

  #handleGoodbye(m: GoodbyeMessage, rinfo: RemoteInfo, key: string): void {
    if (m.producerId === 0) {
      const client = this.#clients.get(key);
      if (client !== undefined) this.#dropClient(client, 'goodbye');
      return;
    }
    const ch = this.#channels.get(m.producerId);
    const p = ch?.producer;
    if (ch === undefined || p == null || p.key !== key || !p.online) return;
    this.#setOffline(ch, NoticeEvent.PRODUCER_ENDED, 'goodbye');
  }

  /**
   * Loss recovery (PROTOCOL.md §3.6): sends the datagrams asked for again, to this subscriber
   * only, flagged RETRANSMIT, while they are younger than the latency budget and within its
   * retransmission budget. Nothing is answered for datagrams no longer held.
   */
  #handleNak(m: NakMessage, rinfo: RemoteInfo, key: string): void {
    const c = this.counters;
    c.naksIn++;
    const sub = this.#clients.get(key)!.subscriptions.get(m.producerId);
    const ch = this.#channels.get(m.producerId);
    if (sub === undefined || ch === undefined) return this.#dropControl('FC_DROP_NOT_SUBSCRIBED');
    const now = this.#clock();
    if (this.#sendQueueFull()) {
      // Repairs would only lengthen the queue that is shedding frames.
      for (const r of m.ranges) c.retransmitsThrottled += r.count;
      return;
    }
    const rate = this.options.maxRetransmitsPerSecondPerSubscriber;
    sub.retransmitTokens = Math.min(rate, sub.retransmitTokens + ((now - sub.retransmitRefillMs) * rate) / 1000);
    sub.retransmitRefillMs = now;
    const history = ch.history;
    // No more lookups than the history holds: a NAK cannot make the broker loop for long.
    let lookups = history.capacity;
    for (const r of m.ranges) {
      for (let seq = r.first, end = r.first + r.count; seq < end; seq++) {
        if (sub.retransmitTokens < 1 || lookups-- <= 0) {
          c.retransmitsThrottled += end - seq;
          break;
        }
        const copy = history.get(m.track, m.epoch, seq >>> 0, now, this.#historyMs);
        if (copy === null) {
          c.retransmitsUnavailable++;
          continue;
        }
        sub.retransmitTokens--;
        sub.retransmits++;
        c.retransmitsOut++;
        copy[13] |= MediaFlag.RETRANSMIT; // a copy of its own: the flag marks only this one
        this.#sendCounted(copy, rinfo.port, rinfo.address);
      }
    }
  }

  /** A subscriber's view of its reception (PROTOCOL.md §4.11), kept for stats. */
  #handleReport(m: ReceiverReportMessage, key: string): void {
    const sub = this.#clients.get(key)!.subscriptions.get(m.producerId);
    if (sub === undefined) return this.#dropControl('FC_DROP_NOT_SUBSCRIBED');
    this.counters.reportsIn++;
    const { type: _t, producerId: _p, requestId: _r, ...report } = m;
    sub.report = report;
    sub.reportMs = this.#clock();
  }

  #setOffline(ch: Channel, event: NoticeEvent, reason: 'lease' | 'goodbye'): void {
    const p = ch.producer!;
    p.online = false;
    p.offlineSinceMs = this.#clock();
    ch.clearCache();
    this.#notify(ch, event);
    this.emit('producerOffline', ch.id, reason);
  }

  #dropClient(client: ClientEntry, reason: 'lease' | 'goodbye'): void {
    for (const id of client.subscriptions.keys()) this.#channels.get(id)?.removeSubscriber(client.key);
    this.#clients.delete(client.key);
    if (client.out !== null) this.#peers?.close(client.out);
    this.#fanout?.close(client.peer); // and with it every subscription it had there
    this.emit('clientLeft', client.address, client.port, reason);
  }

  /** Expires leases (PROTOCOL.md §5.2): drops silent clients, marks silent producers offline. */
  sweep(now: number): void {
    const { leaseMs, offlineRetentionMs } = this.options;
    this.#controlRate.sweep(now);
    this.#nakRate.sweep(now);
    for (const client of this.#clients.values()) {
      if (now - client.lastHeardMs > leaseMs) {
        this.counters.clientsExpired++;
        this.#dropClient(client, 'lease');
      }
    }
    for (const ch of this.#channels.values()) {
      ch.history.release(now, this.#historyMs);
      const p = ch.producer;
      if (p === null) continue;
      if (p.mediaSinceSweep) {
        p.lastHeardMs = now;
        p.mediaSinceSweep = false;
      }
      if (p.online && now - p.lastHeardMs > leaseMs) {
        this.counters.producersExpired++;
        this.#setOffline(ch, NoticeEvent.PRODUCER_OFFLINE, 'lease');
      } else if (!p.online && ch.subscribers.length === 0 && now - p.offlineSinceMs > offlineRetentionMs) {
        this.#channels.delete(ch.id);
      }
    }
  }

  /** Tells every client and producer that the broker is going away (PROTOCOL.md §4.6). */
  shutdown(): void {
    const bye = encodeControl({ type: MessageType.GOODBYE, producerId: 0, requestId: 0, reason: GoodbyeReason.SHUTDOWN });
    for (const c of this.#clients.values()) this.#sendCounted(bye, c.port, c.address);
    for (const ch of this.#channels.values()) {
      if (ch.producer?.online) this.#sendCounted(bye, ch.producer.port, ch.producer.address);
    }
  }

  statsSnapshot(): Record<string, number> {
    const q = this.subscriberQuality();
    let worstLoss = 0;
    let worstJitter = 0;
    for (const s of q) {
      worstLoss = Math.max(worstLoss, s.lossPct);
      worstJitter = Math.max(worstJitter, s.jitterMs);
    }
    return {
      ...this.counters.snapshot(),
      producers: this.producerCount,
      clients: this.clientCount,
      subscriptions: this.subscriptionCount,
      subscribersReporting: q.length,
      worstReportedLossPct: worstLoss,
      worstReportedJitterMs: worstJitter,
    };
  }

  /**
   * Each subscriber's latest RECEIVER_REPORT (PROTOCOL.md §4.11) from the last 5 s: loss over
   * the last report interval and in total (before recovery), jitter, frames, retransmissions.
   */
  subscriberQuality(): SubscriberQuality[] {
    const out: SubscriberQuality[] = [];
    const now = this.#clock();
    for (const ch of this.#channels.values()) {
      for (const s of ch.subscribers) {
        const r = s.report;
        if (r === null || now - s.reportMs > 5000) continue;
        out.push({
          producer: ch.id, client: s.key, lossPct: Number(((100 * r.fractionLost) / 256).toFixed(2)),
          totalLossPct: r.expected === 0 ? 0 : Number(((100 * r.cumulativeLost) / r.expected).toFixed(2)),
          jitterMs: r.jitterUs / 1000, framesComplete: r.framesComplete, framesDropped: r.framesDropped, retransmits: s.retransmits,
        });
      }
    }
    return out;
  }

  #listReply(requestId: number): ControlMessage {
    const producers: ProducerInfo[] = [];
    for (const ch of this.#channels.values()) {
      if (ch.producer === null) continue;
      producers.push({ id: ch.id, online: ch.producer.online, viewers: ch.subscribers.length, metadata: ch.producer.metadata });
    }
    producers.sort((a, b) => a.id - b.id);
    // Fit as many as the reply size allows; say so when some were left out.
    let n = producers.length;
    for (;;) {
      const msg: ControlMessage = { type: MessageType.LIST_REPLY, producerId: 0, requestId, producers: producers.slice(0, n), truncated: n < producers.length };
      if (n === 0 || encodeControl(msg).length <= this.options.maxReplyBytes) return msg;
      n = Math.floor(n * 0.8);
    }
  }

  #leaseDetail(): AckDetail {
    return { heartbeatIntervalMs: this.options.heartbeatIntervalMs, leaseMs: this.options.leaseMs };
  }

  #notify(ch: Channel, event: NoticeEvent): void {
    if (ch.subscribers.length === 0) return;
    const msg = encodeControl({ type: MessageType.NOTICE, producerId: ch.id, requestId: 0, event });
    for (const s of ch.subscribers) this.#sendCounted(msg, s.port, s.address);
  }

  #hintUnregistered(producerId: number, rinfo: RemoteInfo): void {
    const now = this.#clock();
    if (now - this.#lastHintMs < 100) return;
    this.#lastHintMs = now;
    this.#reply(rinfo, { type: MessageType.ACK, producerId, requestId: 0, status: Status.NOT_REGISTERED, ackedType: MessageType.MEDIA, detail: {} });
  }

  #ack(rinfo: RemoteInfo, m: ControlMessage, status: Status, detail: AckDetail = {}): void {
    const d = status === Status.OK || detail.message !== undefined ? detail : { ...detail, message: STATUS_TEXT[status] };
    this.#reply(rinfo, { type: MessageType.ACK, producerId: m.producerId, requestId: m.requestId, status, ackedType: m.type, detail: d });
  }

  #reply(rinfo: RemoteInfo, m: ControlMessage, maxBytes = this.options.maxDatagramBytes): void {
    this.#sendCounted(encodeControl(m, Math.max(maxBytes, CONTROL_HEADER_BYTES + 512)), rinfo.port, rinfo.address);
  }

  /** A control datagram counted in controlIn turns out to be dropped: counted once, as a drop. */
  #dropControl(code: string): void {
    this.counters.controlIn--;
    this.counters.countDrop(code);
  }

  /** Whether the socket's send queue is over its bound; asked of the socket at most once a millisecond. */
  #sendQueueFull(now = this.#clock()): boolean {
    if (now - this.#queueCheckedMs >= 1 || now < this.#queueCheckedMs) {
      const q = this.#socket.getSendQueueSize;
      const queued = (q === undefined ? 0 : q.call(this.#socket)) + (this.#fanout?.queuedBytes() ?? 0);
      this.#queueFull = queued > this.options.maxSendQueueBytes;
      this.#queueCheckedMs = now;
    }
    return this.#queueFull;
  }

  #sendCounted(msg: Buffer, port: number, address: string): void {
    this.counters.datagramsOut++;
    this.counters.bytesOut += msg.length;
    this.#socket.send(msg, port, address);
  }
}
