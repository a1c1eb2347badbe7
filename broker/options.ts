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
  readonly maxDatagramBytes: number;
  /** LIST and STATS replies may be larger than media datagrams; they are rare and small. */
  readonly maxReplyBytes: number;
  readonly maxProducers: number;
  readonly maxClients: number;
  readonly maxSubscriptionsPerClient: number;
  readonly maxSubscribersPerProducer: number;
  /** Frames with more fragments are forwarded but not cached for instant join. */
  readonly maxCachedFragments: number;
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
  /** How long an address validation token may be echoed after it was issued. */
  readonly tokenLifetimeMs: number;
  /** Control datagrams accepted per source address per second (bursts up to as many). */
  readonly maxControlPerSecondPerAddress: number;
  /** Addresses whose control rate is tracked at once. */
  readonly maxRateTrackedAddresses: number;
  /** Producer IDs whose ANNOUNCE must be signed with this secret (PROTOCOL.md §4.1). */
  readonly producerSecrets: ReadonlyMap<number, string>;
  /** How far a signed ANNOUNCE's time may be from the broker's wall clock. */
  readonly announceWindowMs: number;
  /** Loss recovery budget: a datagram older than this is not sent again (PROTOCOL.md §3.6); 0: no history. */
  readonly latencyMs: number;
  /** Datagrams remembered per producer track for NAKs (rounded up to a power of two). */
  readonly historyDatagrams: number;
  /** Bytes of recent datagrams remembered for NAKs, all producers together (one log, allocated on first use). */
  readonly historyBytes: number;
  /** Retransmissions per subscriber per second (bursts up to as many). */
  readonly maxRetransmitsPerSecondPerSubscriber: number;
  /** NAKs accepted per source address per second; counted apart from other control messages. */
  readonly maxNaksPerSecondPerAddress: number;
}

export const DEFAULT_BROKER_OPTIONS: BrokerOptions = Object.freeze({
  heartbeatIntervalMs: DEFAULT_HEARTBEAT_INTERVAL_MS,
  leaseMs: DEFAULT_HEARTBEAT_INTERVAL_MS * DEFAULT_LEASE_INTERVALS,
  sweepIntervalMs: 100,
  offlineRetentionMs: 5 * 60_000,
  maxDatagramBytes: DEFAULT_MAX_DATAGRAM_BYTES,
  maxReplyBytes: 8192,
  maxProducers: 1000,
  maxClients: 10_000,
  maxSubscriptionsPerClient: 3,
  maxSubscribersPerProducer: 1000,
  maxCachedFragments: 4096,
  socketBufferBytes: 4 * 1024 * 1024,
  maxSendQueueBytes: 1024 * 1024,
  connectedSockets: false,
  fanoutThreads: 0,
  fanoutMinSubscribers: 4,
  tokenLifetimeMs: 30_000,
  maxControlPerSecondPerAddress: 50,
  maxRateTrackedAddresses: 65_536,
  producerSecrets: new Map(),
  announceWindowMs: 30_000,
  latencyMs: DEFAULT_LATENCY_MS,
  historyDatagrams: 512,
  historyBytes: 16 * 1024 * 1024,
  maxRetransmitsPerSecondPerSubscriber: 1000,
  maxNaksPerSecondPerAddress: 200,
});
