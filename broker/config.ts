import { ConfigError, loadEnv, parseEndpoint, parseEndpoints, parseIntIn, parseListen, parseNumberIn, parsePort, parseProducerSecrets, type LogLevel } from '../common/config.ts';
import { addLatencyOption, addSharedOptions, switchOption, valueOption, type SharedOptions } from '../common/options.ts';
import type { LogFormat } from '../common/logger.ts';
import { newProgram, parseProgram } from '../common/run.ts';
import { DEFAULT_BROKER_OPTIONS, type BrokerOptions } from './options.ts';
import { planMemory } from './memory.ts';

export interface BrokerConfig {
  readonly host: string;
  readonly port: number;
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
  readonly logFile: string | undefined;
  readonly statsIntervalMs: number;
  /** An edge's upstream brokers (PROTOCOL.md §5.5); empty: an origin. */
  readonly upstream: readonly { readonly host: string; readonly port: number }[];
  /** An edge: `host:port` where viewers reach it, told upstream; null: not told. */
  readonly advertise: string | null;
  /** Where /metrics, /healthz and /readyz are served over HTTP; null: not at all. */
  readonly metrics: { readonly host: string; readonly port: number } | null;
  readonly options: BrokerOptions;
}

interface Flags extends SharedOptions {
  port: number;
  host: string;
  maxSubscriptions: number;
  maxSubscribers: number;
  maxProducers: number;
  maxControlRate: number;
  statsIntervalS: number;
  connectedSockets: boolean;
  fanoutThreads: number;
  fanoutMinSubscribers: number;
  maxMemoryMb: number;
  maxSessions: number;
  offlineRetentionS: number;
  upstream: { host: string; port: number }[] | false;
  upstreamLingerS: number;
  advertise?: string;
  redirect: boolean;
  metrics: { host: string; port: number } | false;
  logFile?: string;
  latencyMs: number;
}

const int = (what: string, min: number, max: number) => (v: string): number => parseIntIn(v, what, min, max);

/** Flags, then the environment, then .env: one frozen, validated config. */
export function loadBrokerConfig(argv: readonly string[]): BrokerConfig {
  loadEnv();
  const d = DEFAULT_BROKER_OPTIONS;
  const program = newProgram('broker', 'Framecast broker: fans out producers\' streams to subscribed clients over UDP')
    .addOption(valueOption('-p, --port <port>', 'UDP port to listen on (0: any free port)', { env: 'BROKER_PORT', parse: (v) => parsePort(v), default: 5000 }))
    .addOption(valueOption('--host <address>', 'address to bind', { env: 'BROKER_BIND', parse: (v) => v, default: '0.0.0.0' }))
    .addOption(valueOption('--max-subscriptions <n>', 'subscriptions per client', { env: 'MAX_SUBSCRIPTIONS_PER_CLIENT', parse: int('max subscriptions', 1, 1000), default: d.maxSubscriptionsPerClient }))
    .addOption(valueOption('--max-subscribers <n>', 'subscribers per producer', { env: 'MAX_SUBSCRIBERS_PER_PRODUCER', parse: int('max subscribers', 1, 1_000_000), default: d.maxSubscribersPerProducer }))
    .addOption(valueOption('--max-producers <n>', 'producers per broker', { env: 'MAX_PRODUCERS', parse: int('max producers', 1, 1_000_000), default: d.maxProducers }))
    .addOption(valueOption('--max-control-rate <n>', 'control datagrams per second per session', { env: 'MAX_CONTROL_PER_SECOND', parse: int('max control rate', 1, 1_000_000), default: d.maxControlPerSecondPerSession }))
    .addOption(valueOption('--stats-interval-s <s>', 'seconds between stats lines in the log, 0 for none', { env: 'BROKER_STATS_INTERVAL_S', parse: int('stats interval', 0, 86_400), default: 10 }))
    .addOption(switchOption('--connected-sockets', 'a socket per client connected to it on this port: faster fan-out, ~5 KiB and a descriptor per client', 'BROKER_CONNECTED_SOCKETS'))
    .addOption(valueOption('--fanout-threads <n>', 'worker threads that send media, each through connected sockets of its share of the clients; 0: none', { env: 'BROKER_FANOUT_THREADS', parse: int('fan-out threads', 0, 64), default: 0 }))
    .addOption(valueOption('--fanout-min-subscribers <n>', 'with fan-out threads, producers with fewer subscribers are sent by the main thread', { env: 'BROKER_FANOUT_MIN_SUBSCRIBERS', parse: int('fan-out minimum subscribers', 1, 1_000_000), default: d.fanoutMinSubscribers }))
    .addOption(valueOption('--max-memory-mb <n>', 'the one memory ceiling: tables, history, send queues and instant-join caches together', { env: 'BROKER_MAX_MEMORY_MB', parse: int('max memory', 16, 1_048_576), default: d.maxMemoryBytes / 2 ** 20 }))
    .addOption(valueOption('--max-sessions <n>', 'sessions (producers and clients) at once', { env: 'BROKER_MAX_SESSIONS', parse: int('max sessions', 1, 10_000_000), default: d.maxSessions }))
    .addOption(valueOption('--offline-retention-s <s>', 'how long a producer that went offline stays in list (while nobody is subscribed to it)',
      { env: 'BROKER_OFFLINE_RETENTION_S', parse: int('offline retention', 0, 30 * 86_400), default: d.offlineRetentionMs / 1000 }))
    .addOption(valueOption<{ host: string; port: number }[] | false>('--upstream <host:port,...>', 'run as an edge: IDs nobody produces here are subscribed to upstream, at whichever of these brokers has them; off: an origin',
      { env: 'BROKER_UPSTREAM', parse: (v) => (v.trim() === 'off' ? false : parseEndpoints(v, 'upstream')), default: false, text: 'off' }))
    .addOption(valueOption('--upstream-linger-s <s>', 'an edge keeps an upstream subscription this long after its last viewer here left',
      { env: 'BROKER_UPSTREAM_LINGER_S', parse: (v) => parseNumberIn(v, 'upstream linger', -1, 3600), default: d.upstreamLingerMs / 1000 }))
    .addOption(valueOption('--advertise <host:port>', 'an edge: where viewers reach it, told to its upstream brokers (proven with BROKER_EDGE_SECRET) so that they may redirect viewers here',
      { env: 'BROKER_ADVERTISE', parse: (v) => { const e = parseEndpoint(v, 'advertised address'); return `${e.host}:${e.port}`; } }))
    .addOption(switchOption('--redirect', 'answer viewers\' SUBSCRIBE with a redirect to the least-loaded edge that registered (edges need BROKER_EDGE_SECRET)', 'BROKER_REDIRECT'))
    .addOption(valueOption<{ host: string; port: number } | false>('--metrics <[host:]port>', 'serve /metrics (Prometheus), /healthz and /readyz over HTTP here; a bare port is on 127.0.0.1; off: not at all',
      { env: 'BROKER_METRICS', parse: (v) => parseListen(v, 'metrics address'), default: false, text: 'off' }))
    .option('--log-file <path>', 'write logs to this file instead of stderr');
  addLatencyOption(program, 'how old a datagram may be and still be sent again on NAK; 0 keeps no history');
  addSharedOptions(program, { lease: 'missed heartbeats before a peer is dropped', datagram: 'largest datagram the broker sends' });
  parseProgram(program, argv);
  const o = program.opts<Flags>();
  if (o.fanoutThreads > 0 && o.connectedSockets) {
    throw new ConfigError('--fanout-threads sends through connected sockets of its own: leave out --connected-sockets');
  }
  const options: BrokerOptions = Object.freeze({
    ...d,
    heartbeatIntervalMs: o.heartbeatMs,
    leaseMs: o.heartbeatMs * o.leaseIntervals,
    maxDatagramBytes: o.maxDatagramBytes,
    maxSubscriptionsPerClient: o.maxSubscriptions,
    maxSubscribersPerProducer: o.maxSubscribers,
    maxProducers: o.maxProducers,
    maxSessions: o.maxSessions,
    offlineRetentionMs: o.offlineRetentionS * 1000,
    upstreamLingerMs: o.upstreamLingerS * 1000,
    redirect: o.redirect,
    // From the environment only, as the producer secrets.
    edgeSecret: process.env.BROKER_EDGE_SECRET === undefined || process.env.BROKER_EDGE_SECRET === '' ? null : process.env.BROKER_EDGE_SECRET,
    maxControlPerSecondPerSession: o.maxControlRate,
    maxMemoryBytes: o.maxMemoryMb * 2 ** 20,
    latencyMs: o.latencyMs,
    connectedSockets: o.connectedSockets,
    fanoutThreads: o.fanoutThreads,
    fanoutMinSubscribers: o.fanoutMinSubscribers,
    // From the environment only: secrets on the command line would show in `ps`.
    producerSecrets: parseProducerSecrets(process.env.PRODUCER_SECRETS),
  });
  const plan = planMemory(options);
  if ('error' in plan) throw new ConfigError(plan.error);
  return Object.freeze({
    host: o.host,
    port: o.port,
    logLevel: o.logLevel,
    logFormat: o.logFormat,
    logFile: o.logFile,
    statsIntervalMs: o.statsIntervalS * 1000,
    upstream: o.upstream === false ? [] : o.upstream,
    advertise: o.advertise ?? null,
    metrics: o.metrics === false ? null : o.metrics,
    options,
  });
}
