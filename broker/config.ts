import { ConfigError, loadEnv, parseIntIn, parseListen, parsePort, parseProducerSecrets, type LogLevel } from '../common/config.ts';
import { addLatencyOption, addSharedOptions } from '../common/options.ts';
import { newProgram, option } from '../common/run.ts';
import { DEFAULT_BROKER_OPTIONS, type BrokerOptions } from './options.ts';
import { planMemory } from './memory.ts';

export interface BrokerConfig {
  readonly host: string;
  readonly port: number;
  readonly logLevel: LogLevel;
  readonly logFile: string | undefined;
  readonly statsIntervalMs: number;
  /** Where /metrics, /healthz and /readyz are served over HTTP; null: not at all. */
  readonly metrics: { readonly host: string; readonly port: number } | null;
  readonly options: BrokerOptions;
}

/** Merges .env, the environment and flags once into a frozen, validated config. */
export function loadBrokerConfig(argv: readonly string[]): BrokerConfig {
  const env = loadEnv();
  const d = DEFAULT_BROKER_OPTIONS;
  const program = newProgram('broker', 'Framecast broker: fans out producers\' streams to subscribed clients over UDP')
    .option('-p, --port <port>', 'UDP port to listen on (BROKER_PORT)', option('--port', (v) => parsePort(v)), parsePort(env.BROKER_PORT ?? '5000', 'BROKER_PORT'))
    .option('--host <address>', 'address to bind (BROKER_BIND)', env.BROKER_BIND ?? '0.0.0.0')
    .option('--max-subscriptions <n>', 'subscriptions per client (MAX_SUBSCRIPTIONS_PER_CLIENT)', option('--max-subscriptions', (v) => parseIntIn(v, 'max subscriptions', 1, 1000)), parseIntIn(env.MAX_SUBSCRIPTIONS_PER_CLIENT ?? String(d.maxSubscriptionsPerClient), 'MAX_SUBSCRIPTIONS_PER_CLIENT', 1, 1000))
    .option('--max-subscribers <n>', 'subscribers per producer (MAX_SUBSCRIBERS_PER_PRODUCER)', option('--max-subscribers', (v) => parseIntIn(v, 'max subscribers', 1, 1_000_000)), parseIntIn(env.MAX_SUBSCRIBERS_PER_PRODUCER ?? String(d.maxSubscribersPerProducer), 'MAX_SUBSCRIBERS_PER_PRODUCER', 1, 1_000_000))
    .option('--max-producers <n>', 'producers per broker (MAX_PRODUCERS)', option('--max-producers', (v) => parseIntIn(v, 'max producers', 1, 1_000_000)), parseIntIn(env.MAX_PRODUCERS ?? String(d.maxProducers), 'MAX_PRODUCERS', 1, 1_000_000))
    .option('--max-control-rate <n>', 'control datagrams per second per session (MAX_CONTROL_PER_SECOND)', option('--max-control-rate', (v) => parseIntIn(v, 'max control rate', 1, 1_000_000)), parseIntIn(env.MAX_CONTROL_PER_SECOND ?? String(d.maxControlPerSecondPerSession), 'MAX_CONTROL_PER_SECOND', 1, 1_000_000))
    .option('--stats-interval-s <s>', 'seconds between stats lines in the log, 0 for none (BROKER_STATS_INTERVAL_S)', option('--stats-interval-s', (v) => parseIntIn(v, 'stats interval', 0, 86_400)), parseIntIn(env.BROKER_STATS_INTERVAL_S ?? '10', 'BROKER_STATS_INTERVAL_S', 0, 86_400))
    .option('--connected-sockets', 'a socket per client connected to it on this port: faster fan-out, ~5 KiB and a descriptor per client (BROKER_CONNECTED_SOCKETS=1)', env.BROKER_CONNECTED_SOCKETS === '1')
    .option('--fanout-threads <n>', 'worker threads that send media, each through connected sockets of its share of the clients; 0: none (BROKER_FANOUT_THREADS)', option('--fanout-threads', (v) => parseIntIn(v, 'fan-out threads', 0, 64)), parseIntIn(env.BROKER_FANOUT_THREADS ?? '0', 'BROKER_FANOUT_THREADS', 0, 64))
    .option('--fanout-min-subscribers <n>', 'with fan-out threads, producers with fewer subscribers are sent by the main thread (BROKER_FANOUT_MIN_SUBSCRIBERS)', option('--fanout-min-subscribers', (v) => parseIntIn(v, 'fan-out minimum subscribers', 1, 1_000_000)), parseIntIn(env.BROKER_FANOUT_MIN_SUBSCRIBERS ?? String(d.fanoutMinSubscribers), 'BROKER_FANOUT_MIN_SUBSCRIBERS', 1, 1_000_000))
    .option('--max-memory-mb <n>', 'the one memory ceiling: tables, history, send queues and instant-join caches together (BROKER_MAX_MEMORY_MB)', option('--max-memory-mb', (v) => parseIntIn(v, 'max memory', 16, 1_048_576)), parseIntIn(env.BROKER_MAX_MEMORY_MB ?? String(d.maxMemoryBytes / 2 ** 20), 'BROKER_MAX_MEMORY_MB', 16, 1_048_576))
    .option('--max-sessions <n>', 'sessions (producers and clients) at once (BROKER_MAX_SESSIONS)', option('--max-sessions', (v) => parseIntIn(v, 'max sessions', 1, 10_000_000)), parseIntIn(env.BROKER_MAX_SESSIONS ?? String(d.maxSessions), 'BROKER_MAX_SESSIONS', 1, 10_000_000))
    .option('--metrics <[host:]port>', 'serve /metrics (Prometheus), /healthz and /readyz over HTTP here; a bare port is on 127.0.0.1; off: not at all (BROKER_METRICS)',
      option('--metrics', (v) => parseListen(v, '--metrics')), parseListen(env.BROKER_METRICS ?? '', 'BROKER_METRICS'))
    .option('--log-file <path>', 'write logs to this file instead of stderr');
  addLatencyOption(program, env, 'how old a datagram may be and still be sent again on NAK; 0 keeps no history');
  addSharedOptions(program, env, { lease: 'missed heartbeats before a peer is dropped', datagram: 'largest datagram the broker sends' });
  program.parse(argv as string[], { from: 'node' });
  const o = program.opts();
  if ((o.fanoutThreads as number) > 0 && o.connectedSockets === true) {
    throw new ConfigError('--fanout-threads sends through connected sockets of its own: leave out --connected-sockets');
  }
  const options: BrokerOptions = Object.freeze({
    ...d,
    heartbeatIntervalMs: o.heartbeatMs as number,
    leaseMs: (o.heartbeatMs as number) * (o.leaseIntervals as number),
    maxDatagramBytes: o.maxDatagramBytes as number,
    maxSubscriptionsPerClient: o.maxSubscriptions as number,
    maxSubscribersPerProducer: o.maxSubscribers as number,
    maxProducers: o.maxProducers as number,
    maxSessions: o.maxSessions as number,
    maxControlPerSecondPerSession: o.maxControlRate as number,
    maxMemoryBytes: (o.maxMemoryMb as number) * 2 ** 20,
    latencyMs: o.latencyMs as number,
    connectedSockets: o.connectedSockets === true,
    fanoutThreads: o.fanoutThreads as number,
    fanoutMinSubscribers: o.fanoutMinSubscribers as number,
    // From the environment only: secrets on the command line would show in `ps`.
    producerSecrets: parseProducerSecrets(env.PRODUCER_SECRETS),
  });
  const plan = planMemory(options);
  if ('error' in plan) throw new ConfigError(plan.error);
  return Object.freeze({
    host: o.host as string,
    port: o.port as number,
    logLevel: o.logLevel as LogLevel,
    logFile: o.logFile as string | undefined,
    statsIntervalMs: (o.statsIntervalS as number) * 1000,
    metrics: (o.metrics as { host: string; port: number } | null | undefined) ?? null,
    options,
  });
}
