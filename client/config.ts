import { Option } from 'commander';
import { loadEnv, parseId, parseIntIn, parseListen, parseNumberIn, parsePort, type LogLevel } from '../common/config.ts';
import { addBrokerOption, addLatencyOption, addPassphraseOption, addSharedOptions, brokerAddresses, valueOption, type SharedOptions } from '../common/options.ts';
import type { LogFormat } from '../common/logger.ts';
import { newProgram, option, parseProgram } from '../common/run.ts';

export interface ClientConfig {
  /** One broker, or several to move between when the one in use stops answering. */
  readonly brokers: readonly { readonly host: string; readonly port: number }[];
  readonly localPort: number;
  readonly subscribe: readonly number[];
  readonly durationS: number | null;
  readonly recordDir: string | null;
  /** Where the HTTP view listens from the start; null: only once `view` is typed. */
  readonly http: { readonly host: string; readonly port: number } | null;
  /** The producer whose JPEG frames go to standard output (the text goes to standard error). */
  readonly stdoutId: number | null;
  readonly statusIntervalS: number | null;
  readonly heartbeatIntervalMs: number;
  readonly leaseIntervals: number;
  readonly maxDatagramBytes: number;
  readonly latencyMs: number;
  readonly receiveBufferBytes: number;
  readonly passphrase: string | null;
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
  readonly logFile: string | undefined;
}

/**
 * A 1080p30 frame is about 133 datagrams sent in one burst; the system default (208 KiB) holds
 * about one and a half of them, 4 MiB about thirty (a loaded machine lost 12-15% of datagrams in
 * the client's own buffer with the default, none with 4 MiB).
 */
export const DEFAULT_RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024;

interface Flags extends SharedOptions {
  broker?: { host: string; port: number }[];
  port: number;
  subscribe: number[];
  duration?: number;
  record?: string;
  http: { host: string; port: number } | false;
  stdout?: number;
  statusInterval?: number;
  logFile?: string;
  receiveBufferBytes: number;
  latencyMs: number;
  passphrase?: string;
}

/** Flags, then the environment, then .env: one frozen, validated config. */
export function loadClientConfig(argv: readonly string[]): ClientConfig {
  loadEnv();
  const program = newProgram('client', 'Framecast client: subscribe to producers and watch their figures; type help at the prompt');
  addBrokerOption(program)
    .addOption(valueOption('--port <port>', 'local UDP port, 0 for any', { env: 'CLIENT_PORT', parse: (v) => parsePort(v), default: 0 }))
    // Repeatable: commander hands the parser the values so far.
    .addOption(new Option('--subscribe <id>', 'subscribe at start (repeatable)').default([], 'none')
      .argParser((v: string, prev: number[]) => [...prev, option((t) => parseId(t))(v)]))
    .addOption(valueOption('--duration <seconds>', 'run this long without a prompt, then print a JSON summary and exit', { parse: (v) => parseNumberIn(v, 'duration', 0, 86_400 * 365) }))
    .addOption(valueOption('--record <dir>', 'write each subscription to DIR/<ID>.mjpeg and DIR/<ID>.wav', { env: 'CLIENT_RECORD', parse: (v) => v }))
    .addOption(valueOption<{ host: string; port: number } | false>('--http <[host:]port>', 'serve the live view (page, MJPEG, snapshots, JSON) here from the start; a bare port is on 127.0.0.1; off: only once view is typed',
      { env: 'CLIENT_HTTP', parse: (v) => parseListen(v, 'HTTP address'), default: false, text: 'off' }))
    .addOption(valueOption('--stdout <id>', 'write this producer\'s JPEG frames to standard output (pipe into ffplay -f mjpeg -); text goes to standard error', { parse: (v) => parseId(v) }))
    .addOption(valueOption('--status-interval <seconds>', 'print each subscription\'s figures this often (default 5 at a terminal, never otherwise; 0 for never)', { parse: (v) => parseIntIn(v, 'status interval', 0, 86_400) }))
    .addOption(valueOption('--log-file <path>', 'write logs to this file instead of stderr', { env: 'CLIENT_LOG_FILE', parse: (v) => v }))
    .addOption(valueOption('--receive-buffer-bytes <n>', 'UDP receive buffer to ask the system for: big frames arrive in bursts',
      { env: 'CLIENT_RECEIVE_BUFFER_BYTES', parse: (v) => parseIntIn(v, 'receive buffer', 65_536, 1 << 30), default: DEFAULT_RECEIVE_BUFFER_BYTES }));
  addLatencyOption(program, 'how long a lost datagram may hold later frames back while it is asked for again; 0 for no recovery');
  // CLIENT_LOG_LEVEL: in a container the attached terminal is the prompt.
  addSharedOptions(program, { lease: 'missed answers before the broker counts as unreachable', datagram: 'largest datagram sent', logLevelEnv: 'CLIENT_LOG_LEVEL' });
  addPassphraseOption(program, 'decrypt streams encrypted with this passphrase');
  parseProgram(program, argv);
  const o = program.opts<Flags>();
  return Object.freeze({
    brokers: brokerAddresses(o.broker),
    localPort: o.port,
    subscribe: Object.freeze([...o.subscribe]),
    durationS: o.duration ?? null,
    recordDir: o.record ?? null,
    http: o.http === false ? null : o.http,
    stdoutId: o.stdout ?? null,
    statusIntervalS: o.statusInterval ?? null,
    heartbeatIntervalMs: o.heartbeatMs,
    leaseIntervals: o.leaseIntervals,
    maxDatagramBytes: o.maxDatagramBytes,
    latencyMs: o.latencyMs,
    receiveBufferBytes: o.receiveBufferBytes,
    passphrase: o.passphrase === undefined || o.passphrase === '' ? null : o.passphrase,
    logLevel: o.logLevel,
    logFormat: o.logFormat,
    logFile: o.logFile,
  });
}
