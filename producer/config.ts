import { ConfigError, loadEnv, listOf, parseIdList, parseIdOrAuto, parseIntIn, parseNumberIn, type LogLevel } from '../common/config.ts';
import { addBrokerOption, addLatencyOption, addPassphraseOption, addSharedOptions, brokerAddresses, valueOption, type SharedOptions } from '../common/options.ts';
import type { LogFormat } from '../common/logger.ts';
import { newProgram, parseProgram } from '../common/run.ts';

export interface ProducerConfig {
  /** `auto`: settled at start from the Compose replica slot (producer/identity.ts). */
  readonly producerId: number | 'auto';
  /** For `auto`: PRODUCER_IDS, PRODUCER_TITLES, PRODUCER_VIDEO_FILES and PRODUCER_AUDIO_FILES, taken by replica slot. */
  readonly autoIds: readonly number[];
  readonly autoTitles: readonly string[];
  readonly autoVideos: readonly string[];
  readonly autoAudios: readonly string[];
  /** One broker, or several to move between when the one in use stops answering. */
  readonly brokers: readonly { readonly host: string; readonly port: number }[];
  readonly videoPath: string;
  readonly audioPath: string | null;
  /** null: `Producer <ID>`, or the replica slot's title for `auto`. */
  readonly title: string | null;
  readonly fps: number;
  readonly loop: boolean;
  readonly startDelayMs: number;
  readonly maxDatagramBytes: number;
  readonly heartbeatIntervalMs: number;
  readonly leaseIntervals: number;
  readonly secret: string | null;
  readonly passphrase: string | null;
  readonly latencyMs: number;
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
  readonly logFile: string | undefined;
}

interface Flags extends SharedOptions {
  id?: number | 'auto';
  broker?: { host: string; port: number }[];
  video: string;
  audio: string | false;
  title?: string;
  rate: number;
  loop: boolean;
  startDelayMs: number;
  passphrase?: string;
  latencyMs: number;
  logFile?: string;
}

/** Flags, then the environment, then .env: one frozen, validated config. */
export function loadProducerConfig(argv: readonly string[]): ProducerConfig {
  loadEnv();
  const program = newProgram('producer', 'Framecast producer: streams a Motion-JPEG sample and its audio to the broker over UDP')
    .addOption(valueOption('--id <hex>', 'producer ID, 1-8 hex digits, or auto (Docker Compose: by replica slot from PRODUCER_IDS, else from the container name)', { env: 'PRODUCER_ID', parse: (v) => parseIdOrAuto(v) }));
  addBrokerOption(program)
    .addOption(valueOption('--video <file>', 'Motion-JPEG file, or any video when ffmpeg is installed', { env: 'VIDEO_FILE', parse: (v) => v, default: 'samples/sample.mjpeg' }))
    .addOption(valueOption('--audio <file>', 'WAV file sent beside the video', { env: 'AUDIO_FILE', parse: (v) => v, default: 'samples/sample.wav' }))
    .option('--no-audio', 'send video only')
    .addOption(valueOption('--title <text>', 'stream title shown by list (default: Producer <ID>)', { env: 'PRODUCER_TITLE', parse: (v) => v }))
    .addOption(valueOption('--rate <fps>', 'frames per second', { env: 'FRAME_RATE', parse: (v) => parseNumberIn(v, 'frame rate', 0, 240), default: 12 }))
    .option('--no-loop', 'stop at the end of the sample instead of looping')
    .addOption(valueOption('--start-delay-ms <ms>', 'wait before streaming', { env: 'PRODUCER_START_DELAY_MS', parse: (v) => parseIntIn(v, 'start delay', 0, 3_600_000), default: 0 }))
    .option('--log-file <path>', 'write logs to this file instead of stderr');
  addSharedOptions(program, { lease: 'missed answers before the broker counts as unreachable', datagram: 'largest datagram sent' });
  addPassphraseOption(program, 'encrypt every frame end to end; viewers need the same passphrase');
  addLatencyOption(program, 'how long sent datagrams are kept (twice this) so the broker can ask for lost ones again; 0 for no recovery');
  parseProgram(program, argv);
  const o = program.opts<Flags>();
  if (o.id === undefined) throw new ConfigError('--id is required (or PRODUCER_ID in .env)');
  const secret = process.env.PRODUCER_SECRET;
  return Object.freeze({
    producerId: o.id,
    autoIds: o.id === 'auto' ? parseIdList(process.env.PRODUCER_IDS ?? '', 'PRODUCER_IDS') : [],
    autoTitles: o.id === 'auto' ? listOf(process.env.PRODUCER_TITLES) : [],
    autoVideos: o.id === 'auto' ? listOf(process.env.PRODUCER_VIDEO_FILES) : [],
    autoAudios: o.id === 'auto' ? listOf(process.env.PRODUCER_AUDIO_FILES) : [],
    brokers: brokerAddresses(o.broker),
    videoPath: o.video,
    audioPath: o.audio === false ? null : o.audio,
    title: o.title ?? null,
    fps: o.rate,
    loop: o.loop,
    startDelayMs: o.startDelayMs,
    maxDatagramBytes: o.maxDatagramBytes,
    heartbeatIntervalMs: o.heartbeatMs,
    leaseIntervals: o.leaseIntervals,
    // From the environment only: a secret on the command line would show in `ps`.
    secret: secret === undefined || secret === '' ? null : secret,
    passphrase: o.passphrase === undefined || o.passphrase === '' ? null : o.passphrase,
    latencyMs: o.latencyMs,
    logLevel: o.logLevel,
    logFormat: o.logFormat,
    logFile: o.logFile,
  });
}
