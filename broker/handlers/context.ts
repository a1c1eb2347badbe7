import type { AckDetail, ControlMessage, SubscribeMessage } from '../../protocol/codec.ts';
import type { NoticeEvent, Status } from '../../protocol/constants.ts';
import type { Channel } from '../channel.ts';
import type { ClientEntry } from '../clients.ts';
import type { BrokerCounters, RefusalReason } from '../counters.ts';
import type { BrokerOptions } from '../options.ts';
import type { PeerSession } from '../sessions.ts';
import type { BrokerEvents, Fanout } from '../broker.ts';

/**
 * What a message handler may use of the broker (shared/STYLE.md: the broker is glue plus one
 * small handler per message type). Every handler gets a datagram that has passed the session
 * layer: its tag, path, packet number and rate were checked, and it decoded.
 */
export interface BrokerContext {
  readonly options: BrokerOptions;
  readonly counters: BrokerCounters;
  readonly channels: Map<number, Channel>;
  readonly fanout: Fanout | null;
  /** How long a datagram may be sent again on NAK (PROTOCOL.md §3.6). */
  readonly historyMs: number;
  now(): number;
  emit<K extends keyof BrokerEvents>(event: K, ...args: BrokerEvents[K]): boolean;
  /** Answers a request within its session. */
  ack(s: PeerSession, m: ControlMessage, status: Status, detail?: AckDetail): void;
  /** Answers with a refusal, counted by reason for the aggregated log line. */
  refuse(reason: RefusalReason, s: PeerSession, m: ControlMessage, status: Status, detail?: AckDetail): void;
  /** Sends a datagram (MEDIA) to a session's proven address, counted. */
  send(msg: Buffer, s: PeerSession): void;
  leaseDetail(): AckDetail;
  /** A new channel for a producer ID, with its cache budget and history (the caller checked the limits). */
  newChannel(id: number): Channel;
  setOnline(ch: Channel): void;
  setOffline(ch: Channel, event: NoticeEvent, reason: 'lease' | 'goodbye'): void;
  closeSession(s: PeerSession, reason: 'lease' | 'goodbye'): void;
  /** The client side of a session, made (and counted against maxClients) on its first client request; null when refused. */
  clientOf(s: PeerSession, m: ControlMessage): ClientEntry | null;
  sessionLive(s: PeerSession): boolean;
  producersFromIp(ip: string): number;
  sendQueueFull(): boolean;
  /** Gives a producer's session a socket of its own for what it sends (PROTOCOL.md §3.5), if it has none. */
  openIngress(s: PeerSession): void;
  /** One retransmission from the budget of a source IP (all its sessions together), at `rate` a second if above the usual; false when spent. */
  takeRetransmit(ip: string, rate: number): boolean;
  /**
   * An edge with no channel for the ID: subscribes to it upstream and answers this SUBSCRIBE once
   * the upstream broker has (PROTOCOL.md §5.5). False without an upstream.
   */
  askUpstream(s: PeerSession, m: SubscribeMessage): boolean;
  /** A producer here took an ID an edge had from upstream: the upstream subscription goes. */
  releaseUpstream(id: number): void;
  /** A channel's viewers, edges' reported audiences included (PROTOCOL.md §4.11). */
  audience(ch: Channel): number;
  /** The least-loaded edge that registered an address, counted as sent one more viewer; null: none. */
  pickEdge(): string | null;
  /** A session proved it is an edge with an address viewers reach (EDGE): one `pickEdge` may choose. */
  edgeRegistered(s: PeerSession): void;
  /** A control datagram counted as received turns out to be dropped. */
  dropControl(code: string): void;
}
