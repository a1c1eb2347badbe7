import { ConfigError, loadEnv, parseDatagramBytes, parseId, parseIntIn, parseLogLevel, parsePort, type LogLevel } from '../common/config.ts';
import { newProgram, option } from '../common/run.ts';
import { DEFAULT_BROKER_OPTIONS, type BrokerOptions } from './options.ts';

export interface BrokerConfig {
  readonly host: string;
  readonly port: number;
  readonly logLevel: LogLevel;
  readonly logFile: string | undefined;
  readonly statsIntervalMs: number;
  readonly options: BrokerOptions;
}

/** Parses PRODUCER_SECRETS: `ID:secret,ID:secret` (hexadecimal IDs). */
export function parseProducerSecrets(text: string | undefined): ReadonlyMap<number, string> {
  const secrets = new Map<number, string>();
  for (const entry of (text ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const colon = entry.indexOf(':');
    if (colon < 1 || colon === entry.length - 1) throw new ConfigError(`PRODUCER_SECRETS entries must be ID:secret, got '${entry.slice(0, colon < 0 ? 8 : colon)}…'`);
    secrets.set(parseId(entry.slice(0, colon), 'PRODUCER_SECRETS ID'), entry.slice(colon + 1));
  }
  return secrets;
}

/** Merges .env, the environment and flags once into a frozen, validated config. */
export function loadBrokerConfig(argv: readonly string[]): BrokerConfig {
  const env = loadEnv();
  const d = DEFAULT_BROKER_OPTIONS;
  const program = newProgram('broker', 'Framecast broker: fans out producers\' streams to subscribed clients over UDP')
    .option('-p, --port <port>', 'UDP port to listen on (BROKER_PORT)', option('--port', (v) => parsePort(v)), parsePort(env.BROKER_PORT ?? '5000', 'BROKER_PORT'))
    .option('--host <address>', 'address to bind (BROKER_BIND)', env.BROKER_BIND ?? '0.0.0.0')
    .option('--heartbeat-ms <ms>', 'heartbeat interval peers are told to use (HEARTBEAT_INTERVAL_MS)', option('--heartbeat-ms', (v) => parseIntIn(v, 'heartbeat interval', 50, 600_000)), parseIntIn(env.HEARTBEAT_INTERVAL_MS ?? String(d.heartbeatIntervalMs), 'HEARTBEAT_INTERVAL_MS', 50, 600_000))
    .option('--lease-intervals <n>', 'missed heartbeats before a peer is dropped (LEASE_INTERVALS)', option('--lease-intervals', (v) => parseIntIn(v, 'lease intervals', 2, 100)), parseIntIn(env.LEASE_INTERVALS ?? '3', 'LEASE_INTERVALS', 2, 100))
    .option('--max-datagram-bytes <n>', 'largest datagram the broker sends (MAX_DATAGRAM_BYTES)', option('--max-datagram-bytes', parseDatagramBytes), parseDatagramBytes(env.MAX_DATAGRAM_BYTES ?? String(d.maxDatagramBytes)))
    .option('--max-subscriptions <n>', 'subscriptions per client (MAX_SUBSCRIPTIONS_PER_CLIENT)', option('--max-subscriptions', (v) => parseIntIn(v, 'max subscriptions', 1, 1000)), parseIntIn(env.MAX_SUBSCRIPTIONS_PER_CLIENT ?? String(d.maxSubscriptionsPerClient), 'MAX_SUBSCRIPTIONS_PER_CLIENT', 1, 1000))
    .option('--max-subscribers <n>', 'subscribers per producer (MAX_SUBSCRIBERS_PER_PRODUCER)', option('--max-subscribers', (v) => parseIntIn(v, 'max subscribers', 1, 1_000_000)), parseIntIn(env.MAX_SUBSCRIBERS_PER_PRODUCER ?? String(d.maxSubscribersPerProducer), 'MAX_SUBSCRIBERS_PER_PRODUCER', 1, 1_000_000))
    .option('--max-producers <n>', 'producers per broker (MAX_PRODUCERS)', option('--max-producers', (v) => parseIntIn(v, 'max producers', 1, 1_000_000)), parseIntIn(env.MAX_PRODUCERS ?? String(d.maxProducers), 'MAX_PRODUCERS', 1, 1_000_000))
    .option('--max-control-rate <n>', 'control datagrams per second per address (MAX_CONTROL_PER_SECOND)', option('--max-control-rate', (v) => parseIntIn(v, 'max control rate', 1, 1_000_000)), parseIntIn(env.MAX_CONTROL_PER_SECOND ?? String(d.maxControlPerSecondPerAddress), 'MAX_CONTROL_PER_SECOND', 1, 1_000_000))
    .option('--stats-interval-s <s>', 'seconds between stats lines in the log, 0 for none (BROKER_STATS_INTERVAL_S)', option('--stats-interval-s', (v) => parseIntIn(v, 'stats interval', 0, 86_400)), parseIntIn(env.BROKER_STATS_INTERVAL_S ?? '10', 'BROKER_STATS_INTERVAL_S', 0, 86_400))
    .option('--log-level <level>', 'pino log level (LOG_LEVEL)', option('--log-level', parseLogLevel), parseLogLevel(env.LOG_LEVEL ?? 'info'))
    .option('--log-file <path>', 'write logs to this file instead of stderr');
  program.parse(argv as string[], { from: 'node' });
  const o = program.opts();
  return Object.freeze({
    host: o.host as string,
    port: o.port as number,
    logLevel: o.logLevel as LogLevel,
    logFile: o.logFile as string | undefined,
    statsIntervalMs: (o.statsIntervalS as number) * 1000,
    options: Object.freeze({
      ...d,
      heartbeatIntervalMs: o.heartbeatMs as number,
      leaseMs: (o.heartbeatMs as number) * (o.leaseIntervals as number),
      maxDatagramBytes: o.maxDatagramBytes as number,
      maxSubscriptionsPerClient: o.maxSubscriptions as number,
      maxSubscribersPerProducer: o.maxSubscribers as number,
      maxProducers: o.maxProducers as number,
      maxControlPerSecondPerAddress: o.maxControlRate as number,
      // From the environment only: secrets on the command line would show in `ps`.
      producerSecrets: parseProducerSecrets(env.PRODUCER_SECRETS),
    }),
  });
}
