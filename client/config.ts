import {
  loadEnv, parseEndpoint, parseId, parseIntIn, parseNumberIn, parsePort, type LogLevel,
} from '../common/config.ts';
import { addLatencyOption, addPassphraseOption, addSharedOptions } from '../common/options.ts';
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
  readonly latencyMs: number;
  readonly receiveBufferBytes: number;
  readonly passphrase: string | null;
  readonly logLevel: LogLevel;
  readonly logFile: string | undefined;
}

/**
 * A 1080p30 frame is about 133 datagrams sent in one burst; the system default (208 KiB) holds
 * about one and a half of them, 4 MiB about thirty (a loaded machine lost 12-15% of datagrams in
 * the client's own buffer with the default, none with 4 MiB).
 */
export const DEFAULT_RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024;

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
    .option('--log-file <path>', 'write logs to this file instead of stderr (CLIENT_LOG_FILE)', env.CLIENT_LOG_FILE)
    .option('--receive-buffer-bytes <n>', 'UDP receive buffer to ask the system for: big frames arrive in bursts (CLIENT_RECEIVE_BUFFER_BYTES)',
      option('--receive-buffer-bytes', (v) => parseIntIn(v, 'receive buffer', 65_536, 1 << 30)),
      parseIntIn(env.CLIENT_RECEIVE_BUFFER_BYTES ?? String(DEFAULT_RECEIVE_BUFFER_BYTES), 'CLIENT_RECEIVE_BUFFER_BYTES', 65_536, 1 << 30));
  // CLIENT_LOG_LEVEL first: in a container the attached terminal is the prompt.
  addLatencyOption(program, env, 'how long a lost datagram may hold later frames back while it is asked for again; 0 for no recovery');
  addSharedOptions(program, env, { lease: 'missed answers before the broker counts as unreachable', datagram: 'largest datagram sent', logLevelDefault: env.CLIENT_LOG_LEVEL });
  addPassphraseOption(program, env, 'decrypt streams encrypted with this passphrase');
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
    latencyMs: o.latencyMs as number,
    receiveBufferBytes: o.receiveBufferBytes as number,
    passphrase: (o.passphrase as string | null | undefined) ?? null,
    logLevel: o.logLevel as LogLevel,
    logFile: o.logFile as string | undefined,
  });
}
