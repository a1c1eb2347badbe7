import { EventEmitter } from 'node:events';
import {
  clearMediaToken, clearRetransmit, isFrameStart, isMedia, isRetransmit, mediaEpoch, mediaFrameNo,
  mediaProducerId, mediaSeq, mediaTrack,
} from '../protocol/media-header.ts';
import {
  CONTROL_HEADER_BYTES, GoodbyeReason, MAGIC, MessageType,
  NoticeEvent, PACKET_NUMBER_OFFSET, REQUEST_ID_OFFSET, SESSION_ID_OFFSET, Status, STATUS_TEXT, TAG_BYTES, Track, VERSION,
} from '../protocol/constants.ts';
import {
  checkMedia, decode, encodeControl, peekType, type Message, type AckDetail, type ControlMessage,
  type HelloMessage, type PathResponseMessage, type NoticeMessage,
} from '../protocol/codec.ts';
import { isProtocolError } from '../protocol/errors.ts';
import { DatagramLog } from '../protocol/history.ts';
import type { ProducerInfo } from '../protocol/metadata.ts';
import { seal, verifyTag } from '../protocol/session-crypto.ts';
import { AddressValidator } from './address-validator.ts';
import { Channel, type PeerSender } from './channel.ts';
import { RateLimiter } from './rate-limiter.ts';
import type { ClientEntry } from './clients.ts';
import { hasMediaToken, pathNonce, SessionTable, type PeerSession } from './sessions.ts';
import { createCounters, type BrokerCounters, type RefusalReason } from './counters.ts';
import { DEFAULT_BROKER_OPTIONS, type BrokerOptions } from './options.ts';
import { CacheBudget, planMemory, type MemoryPlan } from './memory.ts';
import { LoadGovernor } from './load.ts';
import { UplinkRepair } from './uplink.ts';
import type { UpstreamLink } from './upstream.ts';
import { EdgeFeeds } from './edge.ts';
import type { BrokerContext } from './handlers/context.ts';
import { handleAnnounce } from './handlers/announce.ts';
import { handleGoodbye } from './handlers/goodbye.ts';
import { handleHeartbeat } from './handlers/heartbeat.ts';
import { handleNak } from './handlers/nak.ts';
import { handleReport } from './handlers/report.ts';
import { handleEdge } from './handlers/edge-register.ts';
import { handleSubscribe, handleUnsubscribe } from './handlers/subscribe.ts';

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
 * Optional: a socket of the broker's port connected to each producer (main.ts), on which the
 * kernel then queues that producer's datagrams apart from everyone else's (PROTOCOL.md §3.5).
 * What arrives on it is fed to handleDatagram like the rest.
 */
export interface Ingress {
  open(address: string, port: number): { close(): void };
}

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

/** A receiver report counts for this long (PROTOCOL.md §4.11: peers send one about every second). */
const REPORT_FRESH_MS = 5000;

/** Control types a peer may send to the broker within a session. */
const TO_BROKER: ReadonlySet<number> = new Set([
  MessageType.SUBSCRIBE, MessageType.UNSUBSCRIBE, MessageType.LIST, MessageType.STATS, MessageType.NAK, MessageType.RECEIVER_REPORT,
  MessageType.ANNOUNCE, MessageType.HEARTBEAT, MessageType.GOODBYE, MessageType.PATH_RESPONSE, MessageType.EDGE,
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
 * The broker's state machine: sessions, producers, subscriptions, leases and fan-out over one
 * socket. It owns no socket or timer: the entry point feeds it datagrams and calls `sweep(now)`.
 * Nothing but a proven session changes state (PROTOCOL.md §2.2): a control datagram is checked
 * for its session's tag, its packet number and its path before it is decoded.
 */
export class Broker extends EventEmitter<BrokerEvents> {
  readonly counters: BrokerCounters = createCounters();
  readonly options: BrokerOptions;
  readonly #socket: DatagramSocket;
  readonly #clock: Clock;
  readonly #channels = new Map<number, Channel>();
  readonly #sessions: SessionTable;
  /**
   * Sessions that registered as edges with a proven address (EDGE): where `--redirect` may send
   * viewers. Kept apart so that a redirect looks at the edges, not at every session.
   */
  readonly #redirectTargets = new Set<PeerSession>();
  readonly #validator: AddressValidator;
  /** Handshakes per source IP and from everyone, checked before any work (PROTOCOL.md §5.4). */
  readonly #handshakeRate: RateLimiter;
  readonly #retransmitRate: RateLimiter;
  readonly #handshakeTokens: { tokens: number; refillMs: number };
  /** Recent datagrams of every producer, for NAKs (PROTOCOL.md §3.6). */
  readonly #log: DatagramLog;
  #lastHintMs = -Infinity;
  #queueFull = false;
  #queueCheckedMs = -Infinity;
  #clients = 0;
  /**
   * How long a datagram is kept for NAKs: two budgets, since a receiver learns of a loss only
   * when a later datagram arrives (up to a frame interval later) and then has a whole budget to
   * repair it (PROTOCOL.md §3.6).
   */
  get #historyMs(): number {
    return 2 * this.options.latencyMs;
  }

  /**
   * The uplink's share of the latency budget (PROTOCOL.md §3.6): a gap in a producer's seqs is
   * asked of the producer for half the budget, so that a repair that arrives by then still
   * leaves the viewers' hop the other half to repair its own loss of it.
   */
  get #uplinkBudgetMs(): number {
    return this.options.latencyMs / 2;
  }

  /** Loss recovery on the producers' links (PROTOCOL.md §3.6). */
  readonly #uplink: UplinkRepair;
  /** Overload: the share of frames to shed (PROTOCOL.md §3.5). */
  readonly #load: LoadGovernor;

  readonly #peers: PeerSockets | null;
  readonly #ingress: Ingress | null;
  readonly #upstream: UpstreamLink | null;
  readonly #fanout: Fanout | null;

  constructor(args: {
    socket: DatagramSocket; clock: Clock; options?: Partial<BrokerOptions>; secret?: Buffer; peers?: PeerSockets; fanout?: Fanout; ingress?: Ingress;
    /** An edge's upstream broker (PROTOCOL.md §5.5): IDs nobody produces here are subscribed to there. */
    upstream?: UpstreamLink;
  }) {
    super();
    this.#socket = args.socket;
    this.#upstream = args.upstream ?? null;
    this.#peers = args.peers ?? null;
    this.#ingress = args.ingress ?? null;
    this.#fanout = args.fanout ?? null;
    this.#clock = args.clock;
    this.options = Object.freeze({ ...DEFAULT_BROKER_OPTIONS, ...args.options });
    this.#validator = new AddressValidator({ lifetimeMs: this.options.tokenLifetimeMs, secret: args.secret });
    this.#sessions = new SessionTable({ maxSessions: this.options.maxSessions, maxSessionsPerIp: this.options.maxSessionsPerIp });
    this.#handshakeRate = new RateLimiter({ ratePerSecond: this.options.maxHandshakesPerSecondPerIp, maxTracked: this.options.maxRateTrackedAddresses });
    this.#handshakeTokens = { tokens: this.options.maxHandshakesPerSecond, refillMs: this.#clock() };
    // Keyed by the IPs of proven sessions only, so no more than there are sessions (their charge covers it).
    this.#retransmitRate = new RateLimiter({ ratePerSecond: this.options.maxRetransmitsPerSecondPerIp, maxTracked: this.options.maxSessions });
    this.#log = new DatagramLog(this.options.historyBytes);
    const plan = planMemory(this.options);
    if ('error' in plan) throw new RangeError(plan.error);
    this.memory = plan;
    this.#cacheBudget = new CacheBudget(plan.cacheBytes, this.options.maxCacheBytesPerProducer);
    this.#load = new LoadGovernor(this.options);
    this.#uplink = new UplinkRepair(this.#uplinkBudgetMs, this.counters, {
      sendNak: (ch, nak) => (ch.producer!.session === null ? this.#upstream?.nak(nak) : this.#reply(ch.producer!.session, nak)),
      wanted: (ch) => ch.producer !== null && ch.producer.online && ch.subscribers.length > 0 && (ch.producer.session === null || this.#sessionLive(ch.producer.session)),
      paused: () => this.#load.overloaded,
    });
    const broker = this;
    this.#ctx = {
      options: this.options, counters: this.counters, channels: this.#channels, fanout: this.#fanout,
      get historyMs() {
        return broker.#historyMs;
      },
      now: () => this.#clock(),
      emit: (event, ...args) => (this.emit as (e: string, ...a: unknown[]) => boolean)(event, ...args),
      ack: (s, m, status, detail) => this.#ack(s, m, status, detail),
      refuse: (reason, s, m, status, detail) => this.#refuse(reason, s, m, status, detail),
      send: (msg, s) => this.#sendCounted(msg, s.port, s.address),
      leaseDetail: () => this.#leaseDetail(),
      newChannel: (id) => new Channel(id, { maxFragments: this.options.maxCachedFragments, budget: this.#cacheBudget }, { slots: this.options.historyDatagrams, log: this.#log, uplinkBudgetMs: this.#uplinkBudgetMs }),
      setOnline: (ch) => this.#setOnline(ch),
      setOffline: (ch, event, reason) => this.#setOffline(ch, event, reason),
      closeSession: (s, reason) => this.#closeSession(s, reason),
      clientOf: (s, m) => this.#clientOf(s, m),
      sessionLive: (s) => this.#sessionLive(s),
      producersFromIp: (ip) => this.#producersFromIp(ip),
      sendQueueFull: () => this.#load.overloaded || this.#sendQueueFull(),
      openIngress: (s) => {
        if (s.ingress === null && s.client?.out == null) s.ingress = this.#ingress?.open(s.address, s.port) ?? null;
      },
      takeRetransmit: (ip, rate) => this.#retransmitRate.allow(ip, this.#clock(), rate),
      askUpstream: (s, m) => this.#edge?.ask(s, m) ?? false,
      releaseUpstream: (id) => {
        this.#upstream?.release(id);
        const ch = this.#channels.get(id)!;
        ch.gate?.clear();
        ch.gate = null;
      },
      audience: (ch) => this.#audience(ch),
      pickEdge: () => this.#pickEdge(),
      edgeRegistered: (s) => this.#redirectTargets.add(s),
      dropControl: (code) => this.#dropControl(code),
    };
    this.#edge = this.#upstream === null ? null : new EdgeFeeds(this.#ctx, this.#upstream);
  }

  /** What the message handlers (handlers/) may use of the broker. */
  readonly #ctx: BrokerContext;
  /** An edge's side of its upstream (null: an origin). */
  readonly #edge: EdgeFeeds | null;

  /** How the memory ceiling is split (PROTOCOL.md §5.3). */
  readonly memory: MemoryPlan;
  readonly #cacheBudget: CacheBudget;

  /** Each producer ID the broker knows: its viewers, rates and whether it is live (metrics.ts). */
  producerFigures(): { readonly id: number; readonly online: boolean; readonly viewers: number; readonly bitsPerSecond: number; readonly datagramsPerSecond: number }[] {
    const out = [];
    for (const ch of this.#channels.values()) {
      if (ch.producer === null) continue;
      out.push({ id: ch.id, online: ch.producer.online, viewers: this.#audience(ch), bitsPerSecond: ch.bitsPerSecond, datagramsPerSecond: ch.datagramsPerSecond });
    }
    return out;
  }

  /** Bytes the instant-join caches hold now, and how often one was let go for room. */
  get cacheUsage(): { readonly bytes: number; readonly evictions: number } {
    return { bytes: this.#cacheBudget.usedBytes, evictions: this.#cacheBudget.evictions };
  }

  get producerCount(): number {
    let n = 0;
    for (const ch of this.#channels.values()) if (ch.producer?.online) n++;
    return n;
  }
  /** Viewers served, edges' reported audiences included: an edge's load (PROTOCOL.md §5.5). */
  get audienceTotal(): number {
    let n = 0;
    for (const ch of this.#channels.values()) n += this.#audience(ch);
    return n;
  }
  get clientCount(): number {
    return this.#clients;
  }
  get sessionCount(): number {
    return this.#sessions.size;
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
    // Source port 0 cannot be answered (node:dgram refuses to send there): a forged datagram.
    if (rinfo.port === 0) {
      c.countDrop('FC_DROP_BAD_SOURCE');
      return;
    }
    if (msg.length < CONTROL_HEADER_BYTES || msg.readUInt16BE(0) !== MAGIC || msg[2] !== VERSION) {
      c.countDrop(msg.length >= 3 && msg.readUInt16BE(0) === MAGIC ? (msg[2] === VERSION ? 'FC_ERR_TOO_SHORT' : 'FC_ERR_BAD_VERSION') : (msg.length < 4 ? 'FC_ERR_TOO_SHORT' : 'FC_ERR_BAD_MAGIC'));
      return;
    }
    // Hot path (PROTOCOL.md §3): a MEDIA datagram is forwarded as received, without decoding.
    if (isMedia(msg)) {
      this.#forwardMedia(msg, rinfo);
      return;
    }
    const sid = msg.readUInt32BE(SESSION_ID_OFFSET);
    if (sid === 0) return this.#handleHandshake(msg, rinfo);
    const s = this.#sessions.get(sid);
    if (s === undefined) {
      c.countDrop('FC_DROP_UNKNOWN_SESSION');
      return this.#hintUnknown(sid, 0, rinfo);
    }
    // PROTOCOL.md §2.2: the tag first, then the packet number; nothing else is read before.
    if (msg.length < CONTROL_HEADER_BYTES + TAG_BYTES || !verifyTag(msg, s.keys.peerToBroker)) {
      c.countDrop('FC_DROP_BAD_TAG');
      return;
    }
    const now = this.#clock();
    const onPath = rinfo.port === s.port && rinfo.address === s.address;
    if (!onPath && peekType(msg) !== MessageType.PATH_RESPONSE) {
      // A datagram of the session from another address: a NAT rebinding, or a copy sent by
      // someone who saw it. Nothing from an unproven path is acted on; the path is asked to
      // prove itself (PROTOCOL.md §4.12). Its packet number is not used up, so the peer's
      // retry is accepted once the path is proven.
      c.countDrop('FC_DROP_PATH_UNPROVEN');
      return this.#challengePath(s, rinfo, msg.length, now);
    }
    if (!s.replay.accept(msg.readUInt32BE(PACKET_NUMBER_OFFSET))) {
      c.countDrop('FC_DROP_REPLAY');
      return;
    }
    // The peer has the session's first answer: a retried HELLO can no longer need it.
    s.welcome = null;
    if (!this.#allowControl(s, peekType(msg) === MessageType.NAK, now)) {
      c.countDrop('FC_DROP_RATE_LIMITED');
      return;
    }
    const m = this.#decodeOrDrop(msg, s);
    if (m === null) return;
    if (m.type === MessageType.MEDIA) return;
    if (!TO_BROKER.has(m.type)) {
      // ACK, NOTICE, replies and HELLO are never sent within a session to the broker.
      c.countDrop('FC_DROP_UNEXPECTED_TYPE');
      return;
    }
    if (m.type === MessageType.PATH_RESPONSE) {
      if (!this.#movePath(s, m, rinfo)) c.countDrop('FC_DROP_PATH_UNPROVEN');
      else c.controlIn++;
      return;
    }
    // Consent (PROTOCOL.md §5.2): only an authenticated datagram on the proven path renews it.
    s.lastHeardMs = now;
    // Every datagram is counted once: datagramsIn = mediaIn + controlIn + dropped.
    c.controlIn++;
    switch (m.type) {
      case MessageType.ANNOUNCE: return handleAnnounce(this.#ctx, m, s);
      case MessageType.SUBSCRIBE: return handleSubscribe(this.#ctx, m, s);
      case MessageType.UNSUBSCRIBE: return handleUnsubscribe(this.#ctx, m, s);
      case MessageType.LIST: return this.#list(s, m.requestId);
      case MessageType.STATS: return this.#reply(s, { type: MessageType.STATS_REPLY, producerId: 0, requestId: m.requestId, stats: this.statsSnapshot() }, this.options.maxReplyBytes);
      case MessageType.HEARTBEAT: return handleHeartbeat(this.#ctx, m, s);
      case MessageType.GOODBYE: return handleGoodbye(this.#ctx, m, s);
      case MessageType.NAK: return handleNak(this.#ctx, m, s);
      case MessageType.RECEIVER_REPORT: return handleReport(this.#ctx, m, s);
      case MessageType.EDGE: return handleEdge(this.#ctx, m, s);
    }
  }

  /** The channel a MEDIA datagram names once its header checks (undefined: none); null, counted, when it does not check. */
  #mediaChannel(msg: Buffer): Channel | undefined | null {
    const err = checkMedia(msg);
    if (err !== null) {
      this.counters.countDrop(err);
      return null;
    }
    return this.#channels.get(mediaProducerId(msg));
  }

  #forwardMedia(msg: Buffer, rinfo: RemoteInfo): void {
    const c = this.counters;
    const ch = this.#mediaChannel(msg);
    if (ch === null) return;
    const p = ch?.producer;
    if (ch === undefined || p == null || p.session === null || !this.#sessionLive(p.session)) {
      // Not announced (a restarted broker): nudge the sender to open a session, at most 10 times a second.
      c.countDrop('FC_DROP_UNKNOWN_PRODUCER');
      this.#hintUnknown(0, mediaProducerId(msg), rinfo);
      return;
    }
    // PROTOCOL.md §3.1: MEDIA proves its session with the media token, compared without allocating.
    if (!hasMediaToken(msg, p.session)) {
      c.countDrop('FC_DROP_NOT_OWNER');
      return;
    }
    const track = mediaTrack(msg);
    // A copy of a datagram already forwarded (a replay, or a duplicate on the way) goes nowhere.
    if (!ch.seqSeen[track].accept(mediaSeq(msg))) {
      c.countDrop('FC_DROP_REPLAY');
      return;
    }
    // Nobody downstream may learn the token (a viewer could then forge the producer's MEDIA).
    clearMediaToken(msg);
    // A repair the broker asked for goes on as an ordinary datagram: viewers count only the loss
    // of their own link (PROTOCOL.md §3.6).
    const repair = isRetransmit(msg);
    if (repair) {
      clearRetransmit(msg);
      c.uplinkRepairsIn++;
    }
    c.mediaIn++;
    // Gaps in the producer's seqs are tracked for every datagram, shed or not (PROTOCOL.md §3.6).
    if (ch.subscribers.length > 0 && this.options.latencyMs > 0) this.#uplink.record(ch, msg, track, this.#clock());
    this.#fanOut(ch, msg, track, repair);
  }

  /**
   * An edge's MEDIA from its upstream broker (PROTOCOL.md §5.5). Gaps are tracked as datagrams
   * arrive, so what is missing is asked for while the frame waits; the datagrams go out only as
   * whole frames whose producer's signature verifies, so nothing forged on the upstream link is
   * multiplied. They go out byte for byte as received; a repair goes on as an ordinary datagram,
   * and the join replay that precedes the live stream keeps its RETRANSMIT flag.
   */
  feedUpstream(msg: Buffer): void {
    const c = this.counters;
    c.datagramsIn++;
    c.bytesIn += msg.length;
    const ch = this.#mediaChannel(msg);
    if (ch === null) return;
    const p = ch?.producer;
    if (ch === undefined || p == null || p.session !== null || ch.gate === null || mediaEpoch(msg) !== p.epoch) {
      c.countDrop('FC_DROP_UNKNOWN_PRODUCER');
      return;
    }
    const track = mediaTrack(msg);
    const now = this.#clock();
    const retransmit = isRetransmit(msg);
    if (!retransmit) {
      ch.upstreamLive[track] = true;
      ch.upstreamLoss[track].record(p.epoch, mediaSeq(msg));
    }
    if (ch.subscribers.length > 0 && this.options.latencyMs > 0 && (!retransmit || ch.upstreamLive[track])) this.#uplink.record(ch, msg, track, now);
    const forged = ch.gate.counters.framesForged;
    const released = ch.gate.push(msg, now);
    c.framesForgedUpstream += ch.gate.counters.framesForged - forged;
    for (let i = 0; i < released.length; i++) {
      const d = released[i];
      if (!ch.seqSeen[track].accept(mediaSeq(d))) {
        c.countDrop('FC_DROP_REPLAY');
        continue;
      }
      // A repair of what this edge asked for: an ordinary datagram from here on.
      const repair = isRetransmit(d);
      if (repair && ch.upstreamLive[track]) {
        clearRetransmit(d);
        c.uplinkRepairsIn++;
      }
      c.mediaIn++;
      this.#fanOut(ch, d, track, repair);
    }
  }

  /** The forwarding both paths share: the lease, the instant-join cache, shedding, the NAK history, the fan-out. */
  #fanOut(ch: Channel, msg: Buffer, track: number, repair: boolean): void {
    const c = this.counters;
    const p = ch.producer!;
    p.mediaSinceSweep = true; // the lease, renewed by the next sweep
    if (!p.online) this.#setOnline(ch);
    if (track === Track.VIDEO) ch.cacheVideo(msg, repair);
    ch.mediaCount++;
    ch.mediaBytes += msg.length;
    const subs = ch.subscribers;
    const n = subs.length;
    if (n === 0) return; // nobody watches: nothing to send, nothing anyone could NAK
    const now = this.#clock();
    // Slow path out (PROTOCOL.md §3.5): when the send queue is over its bound at a frame's first
    // fragment, that whole frame is shed rather than queued; a part of a frame is worth nothing.
    // A repair of an older frame leaves the decision about the current one as it is.
    const frameStart = isFrameStart(msg) && !repair;
    if (frameStart) {
      // Overloaded, a share of frames is shed: spread evenly over every producer's frames.
      const busy = this.#load.shedNext();
      ch.shedFrame[track] = busy || this.#sendQueueFull(now) ? mediaFrameNo(msg) : -1;
      if (busy) c.framesShedBusy++;
    }
    if (ch.shedFrame[track] >= 0 && ch.shedFrame[track] === mediaFrameNo(msg)) {
      if (frameStart) c.framesShed++;
      c.datagramsShed += n;
      return;
    }
    // Only what is forwarded is kept for NAKs: a shed frame is not copied (overloaded, the copy
    // was work for nothing) and is not sent again later either.
    if (this.options.latencyMs > 0) ch.history.put(track, msg, now);
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

  /**
   * The least-loaded edge that registered an address in the last few seconds (PROTOCOL.md §5.5):
   * its reported load plus the viewers sent there since, so a crowd arriving at once is spread.
   */
  #pickEdge(): string | null {
    const now = this.#clock();
    let best: PeerSession | null = null;
    for (const s of this.#redirectTargets) {
      if (!this.#sessionLive(s)) {
        this.#redirectTargets.delete(s);
        continue;
      }
      const e = s.edge;
      if (e === null || e.advertise === null || now - e.heardMs > REPORT_FRESH_MS) continue;
      if (best === null || e.load + e.assigned < best.edge!.load + best.edge!.assigned) best = s;
    }
    if (best === null) return null;
    best.edge!.assigned++;
    return best.edge!.advertise;
  }

  /** Viewers of a channel, edges' audiences included (PROTOCOL.md §4.11). */
  #audience(ch: Channel): number {
    return ch.audience(this.#clock(), REPORT_FRESH_MS, this.options.maxSubscribersPerProducer * 1000);
  }

  /** An edge (PROTOCOL.md §5.5): its upstream's answers, notices and reports, handled by edge.ts. */
  get edge(): EdgeFeeds | null {
    return this.#edge;
  }

  /**
   * How loaded the broker was over the last interval (main.ts, every LOAD_INTERVAL_MS): the share
   * of the time its thread was busy (0-1) and the bytes waiting unread in its fullest receive
   * buffer, or null where the system does not tell. Overloaded, it sheds a share of frames
   * whole, and answers no NAK and asks for no repair (PROTOCOL.md §3.5).
   */
  setLoad(busyShare: number, backlogBytes: number | null): void {
    this.#load.update(busyShare, backlogBytes);
  }

  /** The share of frames being shed because the broker is overloaded (0-1). */
  get shedShare(): number {
    return this.#load.shedShare;
  }

  /** Asks producers again for what is still missing (PROTOCOL.md §3.6); the entry point calls it every few milliseconds. */
  repairTick(now: number): void {
    this.#uplink.tick(now);
  }

  /**
   * The handshake (PROTOCOL.md §4.9): the only datagram served outside a session. Limited per
   * source IP and in total before any work; every answer is no larger than the HELLO.
   */
  #handleHandshake(msg: Buffer, rinfo: RemoteInfo): void {
    const c = this.counters;
    const now = this.#clock();
    if (!this.#handshakeRate.allow(rinfo.address, now) || !this.#takeHandshakeToken(now)) {
      c.countDrop('FC_DROP_RATE_LIMITED');
      return;
    }
    const m = this.#decodeOrDrop(msg);
    if (m === null) return;
    if (m.type !== MessageType.HELLO) {
      c.countDrop(TO_BROKER.has(m.type) ? 'FC_DROP_UNTAGGED' : 'FC_DROP_UNEXPECTED_TYPE');
      return;
    }
    c.controlIn++;
    this.#handleHello(m, rinfo, msg.length, now);
  }

  #handleHello(m: HelloMessage, rinfo: RemoteInfo, requestBytes: number, now: number): void {
    if (m.token.length === 0 || !this.#validator.verify(m.token, rinfo.address, rinfo.port, now)) {
      if (m.token.length > 0) this.counters.tokensRefused++;
      return this.#sendUnproven(rinfo, requestBytes, {
        type: MessageType.ACK, producerId: 0, requestId: m.requestId, status: Status.VALIDATE, ackedType: MessageType.HELLO,
        detail: { token: this.#validator.mint(rinfo.address, rinfo.port, now) },
      });
    }
    // The address is proven. A retried HELLO (its answer was lost) gets the same answer.
    const retry = this.#sessions.findRetry(rinfo.address, rinfo.port, m.publicKey);
    if (retry?.welcome != null) return this.#sendCounted(retry.welcome, rinfo.port, rinfo.address);
    const refusal = this.#sessions.refusal(rinfo.address);
    if (refusal !== null) {
      this.counters.countRefusal('REFUSED_SESSIONS');
      return this.#sendUnproven(rinfo, requestBytes, { type: MessageType.ACK, producerId: 0, requestId: m.requestId, status: Status.LIMIT_REACHED, ackedType: MessageType.HELLO, detail: { message: refusal } });
    }
    const opened = this.#sessions.open({
      address: rinfo.address, port: rinfo.port, peerPublicKey: m.publicKey, nowMs: now,
      burst: { control: this.options.maxControlPerSecondPerSession, nak: this.options.maxNaksPerSecondPerSession },
    });
    if (opened === null) {
      this.counters.countDrop('FC_DROP_BAD_KEY');
      this.counters.controlIn--;
      return;
    }
    const { session, brokerPublicKey } = opened;
    // One socket has one session: an older one from the same address is over (the peer opened
    // a new one because the broker forgot it, or the peer restarted on the same port).
    for (const old of this.#sessions.values()) {
      if (old !== session && old.port === rinfo.port && old.address === rinfo.address) this.#closeSession(old, 'goodbye');
    }
    const welcome = this.#seal(session, {
      type: MessageType.ACK, producerId: 0, requestId: m.requestId, status: Status.OK, ackedType: MessageType.HELLO,
      detail: { publicKey: brokerPublicKey, ...this.#leaseDetail() },
    });
    if (welcome.length > requestBytes) throw new Error('a session answer larger than the HELLO: MIN_HELLO_BYTES is too small');
    session.welcome = welcome;
    this.#sendCounted(welcome, rinfo.port, rinfo.address);
  }

  #setOnline(ch: Channel): void {
    const p = ch.producer!;
    p.online = true;
    p.offlineSinceMs = 0;
    this.#notify(ch, NoticeEvent.PRODUCER_ONLINE);
    this.emit('producerOnline', ch.id, p.session?.address ?? 'upstream', p.session?.port ?? 0, p.metadata.title);
  }

  /** The client side of a session, made on its first client request; counted against maxClients only then. */
  #clientOf(s: PeerSession, m: ControlMessage): ClientEntry | null {
    if (s.client !== null) return s.client;
    if (this.#clients >= this.options.maxClients) {
      this.#refuse('REFUSED_CLIENTS', s, m, Status.LIMIT_REACHED, { message: `the broker serves at most ${this.options.maxClients} clients` });
      return null;
    }
    // (A producer's session that also subscribes keeps its ingress socket: one socket per path.)
    const out = s.ingress === null ? this.#peers?.open(s.address, s.port) ?? null : null;
    const peer = this.#fanout?.open(s.address, s.port) ?? 0;
    s.client = { key: String(s.id), session: s, subscriptions: new Map(), out, peer };
    this.#clients++;
    this.emit('clientJoined', s.address, s.port);
    return s.client;
  }

  /**
   * A session's datagram from a new address: ask that address to echo a nonce within the session
   * (PROTOCOL.md §4.12), no larger than what it sent, at most once per 250 ms.
   */
  #challengePath(s: PeerSession, rinfo: RemoteInfo, requestBytes: number, now: number): void {
    const pr = s.probe;
    if (pr !== null && pr.address === rinfo.address && pr.port === rinfo.port && now - pr.sentMs < 250) return;
    const nonce = pathNonce();
    s.probe = { address: rinfo.address, port: rinfo.port, nonce, sentMs: now };
    const msg = this.#seal(s, { type: MessageType.PATH_CHALLENGE, producerId: 0, requestId: 0, nonce });
    if (msg.length > requestBytes) return this.counters.countDrop('FC_DROP_AMPLIFICATION');
    this.#sendCounted(msg, rinfo.port, rinfo.address);
  }

  /** The new path echoed the nonce: the session, its subscriptions and its sockets move there. */
  #movePath(s: PeerSession, m: PathResponseMessage, rinfo: RemoteInfo): boolean {
    const pr = s.probe;
    if (pr === null || pr.address !== rinfo.address || pr.port !== rinfo.port || !pr.nonce.equals(m.nonce)) return false;
    s.probe = null;
    s.address = rinfo.address;
    s.port = rinfo.port;
    s.lastHeardMs = this.#clock();
    if (s.ingress !== null) {
      s.ingress.close();
      s.ingress = this.#ingress?.open(s.address, s.port) ?? null;
    }
    const client = s.client;
    if (client !== null) {
      if (client.out !== null) {
        this.#peers?.close(client.out);
        client.out = this.#peers?.open(s.address, s.port) ?? null;
      }
      if (this.#fanout !== null) {
        this.#fanout.close(client.peer);
        client.peer = this.#fanout.open(s.address, s.port);
        for (const id of client.subscriptions.keys()) this.#fanout.subscribe(id, client.peer);
      }
      for (const sub of client.subscriptions.values()) {
        sub.address = s.address;
        sub.port = s.port;
        sub.out = client.out;
      }
    }
    return true;
  }

  #setOffline(ch: Channel, event: NoticeEvent, reason: 'lease' | 'goodbye'): void {
    const p = ch.producer!;
    p.online = false;
    p.offlineSinceMs = this.#clock();
    ch.clearCache();
    this.#notify(ch, event);
    this.emit('producerOffline', ch.id, reason);
  }

  #closeSession(s: PeerSession, reason: 'lease' | 'goodbye'): void {
    this.#sessions.close(s);
    this.#redirectTargets.delete(s);
    s.ingress?.close();
    s.ingress = null;
    const client = s.client;
    if (client !== null) {
      for (const id of client.subscriptions.keys()) this.#channels.get(id)?.removeSubscriber(client.key);
      if (client.out !== null) this.#peers?.close(client.out);
      this.#fanout?.close(client.peer); // and with it every subscription it had there
      s.client = null;
      this.#clients--;
      this.emit('clientLeft', s.address, s.port, reason);
    }
    // Its producers keep their lease until it lapses (or another session proves a secret).
  }

  #sessionLive(s: PeerSession): boolean {
    return this.#sessions.get(s.id) === s;
  }

  #producersFromIp(ip: string): number {
    let n = 0;
    for (const ch of this.#channels.values()) if (ch.producer !== null && ch.producer.online && ch.producer.session?.ip === ip) n++;
    return n;
  }

  /** Expires leases (PROTOCOL.md §5.2): closes silent sessions, marks silent producers offline. */
  sweep(now: number): void {
    const { leaseMs, offlineRetentionMs } = this.options;
    this.#handshakeRate.sweep(now);
    this.#retransmitRate.sweep(now);
    for (const s of this.#sessions.values()) {
      if (now - s.lastHeardMs <= leaseMs) continue;
      // A producer's MEDIA is its consent too (marked on the hot path, read here).
      let media = false;
      for (const id of s.producerIds) {
        const p = this.#channels.get(id)?.producer;
        if (p?.session === s && (p.mediaSinceSweep || now - p.lastHeardMs <= leaseMs)) media = true;
      }
      if (media) continue;
      if (s.client !== null) this.counters.clientsExpired++;
      this.#closeSession(s, 'lease');
    }
    for (const ch of this.#channels.values()) {
      ch.history.release(now, this.#historyMs);
      ch.updateRate(now);
      ch.gate?.expire(now);
      const p = ch.producer;
      if (p === null) continue;
      // An edge keeps its upstream subscription for a while after its last viewer left, so a
      // viewer who flips back is served at once (PROTOCOL.md §5.5).
      if (p.session === null) {
        if (ch.subscribers.length > 0) ch.unwatchedSinceMs = 0;
        else if (ch.unwatchedSinceMs === 0) ch.unwatchedSinceMs = now;
        else if (now - ch.unwatchedSinceMs > this.options.upstreamLingerMs) {
          this.#edge?.drop(ch);
          continue;
        }
      }
      if (p.mediaSinceSweep) {
        p.lastHeardMs = now;
        p.mediaSinceSweep = false;
      }
      if (p.online && now - p.lastHeardMs > leaseMs) {
        this.counters.producersExpired++;
        this.#setOffline(ch, NoticeEvent.PRODUCER_OFFLINE, 'lease');
      } else if (!p.online && ch.subscribers.length === 0 && now - p.offlineSinceMs > offlineRetentionMs) {
        p.session?.producerIds.delete(ch.id);
        ch.clearCache();
        this.#channels.delete(ch.id);
      }

    }
  }

  /** Tells every session that the broker is going away (PROTOCOL.md §4.6). */
  shutdown(): void {
    for (const s of this.#sessions.values()) {
      this.#sendCounted(this.#seal(s, { type: MessageType.GOODBYE, producerId: 0, requestId: 0, reason: GoodbyeReason.SHUTDOWN }), s.port, s.address);
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
      sessions: this.sessionCount,
      subscriptions: this.subscriptionCount,
      subscribersReporting: q.length,
      worstReportedLossPct: worstLoss,
      worstReportedJitterMs: worstJitter,
      cacheBytes: this.#cacheBudget.usedBytes,
      cacheLimitBytes: this.#cacheBudget.limitBytes,
      cacheEvictions: this.#cacheBudget.evictions,
      memoryCeilingBytes: this.memory.ceilingBytes,
      busyPct: Math.round(100 * this.#load.busyShare),
      backlogBytes: this.#load.backlogBytes,
      shedPct: Math.round(100 * this.#load.shedShare),
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
        if (r === null || now - s.reportMs > REPORT_FRESH_MS) continue;
        out.push({
          producer: ch.id, client: `${s.address}:${s.port}`, lossPct: Number(((100 * r.fractionLost) / 256).toFixed(2)),
          totalLossPct: r.expected === 0 ? 0 : Number(((100 * r.cumulativeLost) / r.expected).toFixed(2)),
          jitterMs: r.jitterUs / 1000, framesComplete: r.framesComplete, framesDropped: r.framesDropped, retransmits: s.retransmits,
        });
      }
    }
    return out;
  }

  /**
   * LIST: what this broker carries; at an edge, also what its upstream broker lists (PROTOCOL.md
   * §5.5), asked at once and answered when it has answered (or with the local list alone).
   */
  #list(s: PeerSession, requestId: number): void {
    if (this.#upstream === null) return this.#reply(s, this.#listReply(requestId, []), this.options.maxReplyBytes);
    void this.#upstream.list().then((r) => {
      if (this.#sessionLive(s)) this.#reply(s, this.#listReply(requestId, r?.producers ?? []), this.options.maxReplyBytes);
    });
  }

  #listReply(requestId: number, upstream: readonly ProducerInfo[]): ControlMessage {
    const producers: ProducerInfo[] = [];
    const here = new Set<number>();
    for (const ch of this.#channels.values()) {
      if (ch.producer === null || ch.producer.session === null) continue;
      here.add(ch.id);
      producers.push({ id: ch.id, online: ch.producer.online, viewers: this.#audience(ch), metadata: ch.producer.metadata });
    }
    for (const p of upstream) if (!here.has(p.id)) producers.push(p);
    producers.sort((a, b) => a.id - b.id);
    // Fit as many as the reply size allows (tag included); say so when some were left out.
    let n = producers.length;
    for (;;) {
      const msg: ControlMessage = { type: MessageType.LIST_REPLY, producerId: 0, requestId, producers: producers.slice(0, n), truncated: n < producers.length };
      if (n === 0 || encodeControl(msg).length + TAG_BYTES <= this.options.maxReplyBytes) return msg;
      n = Math.floor(n * 0.8);
    }
  }

  #leaseDetail(): AckDetail {
    return { heartbeatIntervalMs: this.options.heartbeatIntervalMs, leaseMs: this.options.leaseMs };
  }

  #notify(ch: Channel, event: NoticeEvent): void {
    const p = ch.producer;
    const notice: NoticeMessage = event === NoticeEvent.PRODUCER_ONLINE && p !== null
      ? { type: MessageType.NOTICE, producerId: ch.id, requestId: 0, event, epoch: p.epoch, frameKey: p.frameKey, encrypted: p.metadata.encrypted === true }
      : { type: MessageType.NOTICE, producerId: ch.id, requestId: 0, event: event === NoticeEvent.PRODUCER_ENDED ? event : NoticeEvent.PRODUCER_OFFLINE };
    for (const sub of ch.subscribers) {
      const s = this.#sessions.get(Number(sub.key));
      if (s !== undefined) this.#reply(s, notice);
    }
  }

  /**
   * SESSION_UNKNOWN (PROTOCOL.md §4.13): the broker holds no such session, or no producer for
   * that MEDIA. At most 10 a second in total; 24 bytes, less than any datagram that draws it.
   */
  #hintUnknown(sessionId: number, producerId: number, rinfo: RemoteInfo): void {
    const now = this.#clock();
    if (now - this.#lastHintMs < 100) return;
    this.#lastHintMs = now;
    this.#sendCounted(encodeControl({ type: MessageType.SESSION_UNKNOWN, producerId, requestId: 0, unknownSessionId: sessionId }), rinfo.port, rinfo.address);
  }

  /** Refuses a proven session's request: counted by reason, logged only in aggregate (main.ts). */
  #refuse(reason: RefusalReason, s: PeerSession, m: ControlMessage, status: Status, detail: AckDetail = {}): void {
    this.counters.countRefusal(reason);
    this.#ack(s, m, status, detail);
  }

  #ack(s: PeerSession, m: ControlMessage, status: Status, detail: AckDetail = {}): void {
    const d = status === Status.OK || detail.message !== undefined ? detail : { ...detail, message: STATUS_TEXT[status] };
    this.#reply(s, { type: MessageType.ACK, producerId: m.producerId, requestId: m.requestId, status, ackedType: m.type, detail: d });
  }

  /** Sends a message within a session, sealed, to its proven path. */
  #reply(s: PeerSession, m: ControlMessage, maxBytes = this.options.maxDatagramBytes): void {
    this.#sendCounted(this.#seal(s, m, maxBytes), s.port, s.address);
  }

  #seal(s: PeerSession, m: ControlMessage, maxBytes = this.options.maxDatagramBytes): Buffer {
    const buf = encodeControl({ ...m, sessionId: s.id }, Math.max(maxBytes, CONTROL_HEADER_BYTES + 512));
    return seal(buf, s.id, s.nextPacketNo++, s.keys.brokerToPeer);
  }

  /** An answer to an address not proven yet: sent only when no larger than what it received (PROTOCOL.md §4.9). */
  #sendUnproven(rinfo: RemoteInfo, requestBytes: number, m: ControlMessage): void {
    const msg = encodeControl(m);
    if (msg.length <= requestBytes) this.#sendCounted(msg, rinfo.port, rinfo.address);
    else this.counters.countDrop('FC_DROP_AMPLIFICATION');
  }

  /** Control datagrams and NAKs per session, as token buckets (PROTOCOL.md §5.4). */
  #allowControl(s: PeerSession, nak: boolean, now: number): boolean {
    const o = this.options;
    const dt = Math.max(0, now - s.refillMs);
    s.refillMs = now;
    s.controlTokens = Math.min(o.maxControlPerSecondPerSession, s.controlTokens + (dt * o.maxControlPerSecondPerSession) / 1000);
    s.nakTokens = Math.min(o.maxNaksPerSecondPerSession, s.nakTokens + (dt * o.maxNaksPerSecondPerSession) / 1000);
    if (nak) {
      if (s.nakTokens < 1) return false;
      s.nakTokens--;
      return true;
    }
    if (s.controlTokens < 1) return false;
    s.controlTokens--;
    return true;
  }

  #takeHandshakeToken(now: number): boolean {
    const b = this.#handshakeTokens;
    const rate = this.options.maxHandshakesPerSecond;
    b.tokens = Math.min(rate, b.tokens + (Math.max(0, now - b.refillMs) * rate) / 1000);
    b.refillMs = now;
    if (b.tokens < 1) return false;
    b.tokens--;
    return true;
  }

  /**
   * Decodes a datagram; one that does not decode is counted by its code and gives null. Within
   * a session (authenticated, so the answer goes to a proven peer) a request that does not
   * decode, say an ANNOUNCE without a title, is answered BAD_REQUEST with the reason, so its
   * sender stops retrying it (PROTOCOL.md §4.3).
   */
  #decodeOrDrop(msg: Buffer, s?: PeerSession): Message | null {
    try {
      return decode(msg);
    } catch (err) {
      if (!isProtocolError(err)) throw err;
      this.counters.countDrop(err.code);
      const requestId = msg.readUInt32BE(REQUEST_ID_OFFSET);
      const type = peekType(msg) as MessageType;
      if (s !== undefined && requestId !== 0 && TO_BROKER.has(type)) {
        this.#reply(s, {
          type: MessageType.ACK, producerId: msg.readUInt32BE(4), requestId, status: Status.BAD_REQUEST,
          ackedType: type, detail: { message: err.message.slice(0, 200) },
        });
      }
      return null;
    }
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
    try {
      this.#socket.send(msg, port, address);
    } catch {
      // node:dgram throws at once for an address it cannot send to: counted, never fatal.
      this.counters.sendErrors++;
    }
  }
}
