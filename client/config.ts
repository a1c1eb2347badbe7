import {
  loadEnv, parseDatagramBytes, parseEndpoint, parseId, parseIntIn, parseLogLevel, parseNumberIn, parsePort, type LogLevel,
} from '../common/config.ts';
import { newProgram, option } from '../common/run.ts';

export interface ClientConfig {
  readonly broker: { readonly host: string; readonly port: number };
  readonly localPort: number;
  readonly subscribe: readonly number[];
  readonly durationS: number | null;
  readonly recordDir: string | null;
  readonly statusIntervalS: number | null;
  readonly heartbeatIntervalMs: number;
  readonly leaseIntervals: number;
  readonly maxDatagramBytes: number;
  readonly logLevel: LogLevel;
  readonly logFile: string | undefined;
}

/** Merges .env, the environment and flags once into a frozen, validated config. */
export function loadClientConfig(argv: readonly string[]): ClientConfig {
  const env = loadEnv();
  const brokerDefault = `${env.BROKER_HOST ?? '127.0.0.1'}:${env.BROKER_PORT ?? '5000'}`;
  const program = newProgram('client', 'Framecast client: subscribe to producers and watch their figures; type help at the prompt')
    .option('--broker <host:port>', 'broker address (BROKER_HOST, BROKER_PORT)', option('--broker', (v) => parseEndpoint(v)), parseEndpoint(brokerDefault, 'BROKER_HOST:BROKER_PORT'))
    .option('--port <port>', 'local UDP port, 0 for any (CLIENT_PORT)', option('--port', (v) => parsePort(v)), parsePort(env.CLIENT_PORT ?? '0', 'CLIENT_PORT'))
    .option('--subscribe <id>', 'subscribe at start (repeatable)', option('--subscribe', (v: string) => parseId(v)))
    .option('--duration <seconds>', 'run this long without a prompt, then print a JSON summary and exit', option('--duration', (v) => parseNumberIn(v, 'duration', 0, 86_400 * 365)))
    .option('--record <dir>', 'write each subscription to DIR/<ID>.mjpeg and DIR/<ID>.wav')
    .option('--status-interval <seconds>', 'print each subscription\'s figures this often (default 5 at a terminal, never otherwise; 0 for never)', option('--status-interval', (v) => parseIntIn(v, 'status interval', 0, 86_400)))
    .option('--heartbeat-ms <ms>', 'heartbeat interval (HEARTBEAT_INTERVAL_MS)', option('--heartbeat-ms', (v) => parseIntIn(v, 'heartbeat interval', 50, 600_000)), parseIntIn(env.HEARTBEAT_INTERVAL_MS ?? '1000', 'HEARTBEAT_INTERVAL_MS', 50, 600_000))
    .option('--lease-intervals <n>', 'missed answers before the broker counts as unreachable (LEASE_INTERVALS)', option('--lease-intervals', (v) => parseIntIn(v, 'lease intervals', 2, 100)), parseIntIn(env.LEASE_INTERVALS ?? '3', 'LEASE_INTERVALS', 2, 100))
    .option('--max-datagram-bytes <n>', 'largest datagram sent (MAX_DATAGRAM_BYTES)', option('--max-datagram-bytes', parseDatagramBytes), parseDatagramBytes(env.MAX_DATAGRAM_BYTES ?? '1200'))
    .option('--log-level <level>', 'pino log level (LOG_LEVEL)', option('--log-level', parseLogLevel), parseLogLevel(env.CLIENT_LOG_LEVEL ?? env.LOG_LEVEL ?? 'info'))
    .option('--log-file <path>', 'write logs to this file instead of stderr (CLIENT_LOG_FILE)', env.CLIENT_LOG_FILE);
  // Repeatable: commander calls the parser with the previous value for variadic accumulation.
  const sub = program.options.find((o) => o.long === '--subscribe')!;
  const parseOne = option('--subscribe', (v: string) => parseId(v));
  sub.argParser((v: string, prev: number[] | undefined) => [...(prev ?? []), parseOne(v)]);
  program.parse(argv as string[], { from: 'node' });
  const o = program.opts();
  return Object.freeze({
    broker: o.broker as { host: string; port: number },
    localPort: o.port as number,
    subscribe: Object.freeze((o.subscribe as number[] | undefined) ?? []),
    durationS: (o.duration as number | undefined) ?? null,
    recordDir: (o.record as string | undefined) ?? null,
    statusIntervalS: (o.statusInterval as number | undefined) ?? null,
    heartbeatIntervalMs: o.heartbeatMs as number,
    leaseIntervals: o.leaseIntervals as number,
    maxDatagramBytes: o.maxDatagramBytes as number,
    logLevel: o.logLevel as LogLevel,
    logFile: o.logFile as string | undefined,
  });
}
