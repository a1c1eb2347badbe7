import { DEFAULT_HEARTBEAT_INTERVAL_MS, DEFAULT_LATENCY_MS, DEFAULT_LEASE_INTERVALS } from '../common/options.ts';
import { DEFAULT_MAX_DATAGRAM_BYTES } from '../protocol/constants.ts';

/** Every limit and timing of the broker, with units in the names (PROTOCOL.md §5). */
export interface BrokerOptions {
  readonly heartbeatIntervalMs: number;
  /** A peer unheard for this long is dropped (client) or marked offline (producer). */
  readonly leaseMs: number;
  /** How often leases are checked. */
  readonly sweepIntervalMs: number;
  /** An offline producer nobody subscribes to is forgotten after this long. */
  readonly offlineRetentionMs: number;
  /** An edge keeps an upstream subscription this long after its last viewer left (PROTOCOL.md §5.5). */
  readonly upstreamLingerMs: number;
  /** Answer viewers' SUBSCRIBE with a redirect to the least-loaded edge that registered (PROTOCOL.md §5.5). */
  readonly redirect: boolean;
  /** The secret edges prove to register an address viewers may be redirected to; null: none may. */
  readonly edgeSecret: string | null;
  readonly maxDatagramBytes: number;
  /** LIST and STATS replies may be larger than media datagrams; they are rare and small. */
  readonly maxReplyBytes: number;
  readonly maxProducers: number;
  readonly maxClients: number;
  readonly maxSubscriptionsPerClient: number;
  readonly maxSubscribersPerProducer: number;
  /** Frames with more fragments are forwarded but not cached for instant join. */
  readonly maxCachedFragments: number;
  /**
   * The one memory ceiling (PROTOCOL.md §5.3): what peers can make the broker hold, all tables,
   * history, send queues and instant-join caches together. The limits must fit in it; the
   * caches get what they leave.
   */
  readonly maxMemoryBytes: number;
  /** Instant-join cache of one producer (its latest whole frame and the one arriving). */
  readonly maxCacheBytesPerProducer: number;
  readonly socketBufferBytes: number;
  /**
   * A socket per client, connected to it on the broker's port (main.ts): media sends skip the
   * address. Costs a file descriptor and about 5 KiB per client; off by default.
   */
  readonly connectedSockets: boolean;
  /**
   * Worker threads that send media, each from connected sockets of its share of the clients
   * (fanout-threads.ts); 0: the main thread sends. Helps from about 10 subscribers per producer
   * when the machine has a core to spare (docs/SCALING.md).
   */
  readonly fanoutThreads: number;
  /** With fan-out threads, a producer with fewer subscribers is still sent by the main thread. */
  readonly fanoutMinSubscribers: number;
  /** Beyond this many bytes waiting to be sent, whole frames are shed rather than queued. */
  readonly maxSendQueueBytes: number;
  /**
   * Overload (PROTOCOL.md §3.5): bytes that may wait unread in the fullest of the broker's receive
   * buffers (Linux), checked each sweep interval while the thread is busier than `maxBusyShare`
   * (elsewhere, the busy share alone decides). Over it, a growing share of frames is shed whole
   * until the backlog is under a quarter of it.
   */
  readonly maxBacklogBytes: number;
  readonly maxBusyShare: number;
  /** How long an address validation token may be echoed after it was issued. */
  readonly tokenLifetimeMs: number;
  /** Authenticated control datagrams accepted per session per second (bursts up to as many). */
  readonly maxControlPerSecondPerSession: number;
  /** Handshake datagrams (HELLO) accepted per source IP per second, and from everyone together (PROTOCOL.md §5.4). */
  readonly maxHandshakesPerSecondPerIp: number;
  readonly maxHandshakesPerSecond: number;
  /** IPs whose handshake rate is tracked at once. */
  readonly maxRateTrackedAddresses: number;
  /** Sessions open at once, and per source IP: a proven address counts, a forged one cannot. */
  readonly maxSessions: number;
  readonly maxSessionsPerIp: number;
  /** Producer IDs held by sessions from one source IP. */
  readonly maxProducersPerIp: number;
  /** Producer IDs whose ANNOUNCE must prove this secret, bound to the session (PROTOCOL.md §4.1). */
  readonly producerSecrets: ReadonlyMap<number, string>;
  /** Loss recovery budget: a datagram older than this is not sent again (PROTOCOL.md §3.6); 0: no history. */
  readonly latencyMs: number;
  /** Datagrams remembered per producer track for NAKs (rounded up to a power of two). */
  readonly historyDatagrams: number;
  /** Bytes of recent datagrams remembered for NAKs, all producers together (one log, allocated on first use). */
  readonly historyBytes: number;
  /** Retransmissions per subscriber per second (bursts up to as many), at least: more for a stream of more than twice as many datagrams (half its rate). */
  readonly maxRetransmitsPerSecondPerSubscriber: number;
  /** Retransmissions to all sessions of one source IP per second, so many sessions buy no more repairs (PROTOCOL.md §3.6); raised in proportion for a stream whose subscribers get more. */
  readonly maxRetransmitsPerSecondPerIp: number;
  /** NAKs accepted per session per second; counted apart from other control messages. */
  readonly maxNaksPerSecondPerSession: number;
}

export const DEFAULT_BROKER_OPTIONS: BrokerOptions = Object.freeze({
  heartbeatIntervalMs: DEFAULT_HEARTBEAT_INTERVAL_MS,
  leaseMs: DEFAULT_HEARTBEAT_INTERVAL_MS * DEFAULT_LEASE_INTERVALS,
  sweepIntervalMs: 100,
  offlineRetentionMs: 5 * 60_000,
  upstreamLingerMs: 5000,
  redirect: false,
  edgeSecret: null,
  maxDatagramBytes: DEFAULT_MAX_DATAGRAM_BYTES,
  maxReplyBytes: 8192,
  maxProducers: 1000,
  maxClients: 10_000,
  maxSubscriptionsPerClient: 3,
  maxSubscribersPerProducer: 1000,
  maxCachedFragments: 4096,
  maxMemoryBytes: 512 * 1024 * 1024,
  maxCacheBytesPerProducer: 4 * 1024 * 1024,
  socketBufferBytes: 4 * 1024 * 1024,
  maxSendQueueBytes: 1024 * 1024,
  maxBacklogBytes: 1024 * 1024,
  maxBusyShare: 0.9,
  connectedSockets: false,
  fanoutThreads: 0,
  fanoutMinSubscribers: 4,
  tokenLifetimeMs: 30_000,
  maxControlPerSecondPerSession: 50,
  maxHandshakesPerSecondPerIp: 1000,
  maxHandshakesPerSecond: 4000,
  maxRateTrackedAddresses: 65_536,
  maxSessions: 12_000,
  maxSessionsPerIp: 2048,
  maxProducersPerIp: 128,
  producerSecrets: new Map(),
  latencyMs: DEFAULT_LATENCY_MS,
  historyDatagrams: 2048,
  historyBytes: 16 * 1024 * 1024,
  maxRetransmitsPerSecondPerSubscriber: 1000,
  maxRetransmitsPerSecondPerIp: 4000,
  maxNaksPerSecondPerSession: 200,
});
