import { hostname } from 'node:os';
import {
  ConfigError, loadEnv, parseEndpoint, parseIdOrAuto, parseIntIn, parseNumberIn, type LogLevel,
} from '../common/config.ts';
import { addLatencyOption, addPassphraseOption, addSharedOptions } from '../common/options.ts';
import { newProgram, option } from '../common/run.ts';
import { formatProducerId } from '../protocol/ids.ts';

export interface ProducerConfig {
  readonly producerId: number;
  readonly broker: { readonly host: string; readonly port: number };
  readonly videoPath: string;
  readonly audioPath: string | null;
  readonly title: string;
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
  readonly logFile: string | undefined;
}

/** Merges .env, the environment and flags once into a frozen, validated config. */
export function loadProducerConfig(argv: readonly string[]): ProducerConfig {
  const env = loadEnv();
  const brokerDefault = `${env.BROKER_HOST ?? '127.0.0.1'}:${env.BROKER_PORT ?? '5000'}`;
  const program = newProgram('producer', 'Framecast producer: streams a Motion-JPEG sample and its audio to the broker over UDP')
    .option('--id <hex>', 'producer ID, 1-8 hex digits, or auto (from the host name) (PRODUCER_ID)', option('--id', (v) => parseIdOrAuto(v, hostname())), env.PRODUCER_ID === undefined ? undefined : parseIdOrAuto(env.PRODUCER_ID, hostname(), 'PRODUCER_ID'))
    .option('--broker <host:port>', 'broker address (BROKER_HOST, BROKER_PORT)', option('--broker', (v) => parseEndpoint(v)), parseEndpoint(brokerDefault, 'BROKER_HOST:BROKER_PORT'))
    .option('--video <file>', 'Motion-JPEG file, or any video when ffmpeg is installed (VIDEO_FILE)', env.VIDEO_FILE ?? 'samples/sample.mjpeg')
    .option('--audio <file>', 'WAV file sent beside the video (AUDIO_FILE)', env.AUDIO_FILE ?? 'samples/sample.wav')
    .option('--no-audio', 'send video only')
    .option('--title <text>', 'stream title shown by list (PRODUCER_TITLE)', env.PRODUCER_TITLE)
    .option('--rate <fps>', 'frames per second (FRAME_RATE)', option('--rate', (v) => parseNumberIn(v, 'frame rate', 0, 240)), parseNumberIn(env.FRAME_RATE ?? '12', 'FRAME_RATE', 0, 240))
    .option('--no-loop', 'stop at the end of the sample instead of looping')
    .option('--start-delay-ms <ms>', 'wait before streaming (PRODUCER_START_DELAY_MS)', option('--start-delay-ms', (v) => parseIntIn(v, 'start delay', 0, 3_600_000)), parseIntIn(env.PRODUCER_START_DELAY_MS ?? '0', 'PRODUCER_START_DELAY_MS', 0, 3_600_000))
    .option('--log-file <path>', 'write logs to this file instead of stderr');
  addSharedOptions(program, env, { lease: 'missed answers before the broker counts as unreachable', datagram: 'largest datagram sent' });
  addPassphraseOption(program, env, 'encrypt every frame end to end; viewers need the same passphrase');
  addLatencyOption(program, env, 'how long sent datagrams are kept (twice this) so the broker can ask for lost ones again; 0 for no recovery');
  program.parse(argv as string[], { from: 'node' });
  const o = program.opts();
  if (o.id === undefined) throw new ConfigError('--id is required (or PRODUCER_ID in .env)');
  return Object.freeze({
    producerId: o.id as number,
    broker: o.broker as { host: string; port: number },
    videoPath: o.video as string,
    audioPath: o.audio === false ? null : (o.audio as string),
    title: (o.title as string | undefined) ?? `Producer ${formatProducerId(o.id as number)}`,
    fps: o.rate as number,
    loop: o.loop as boolean,
    startDelayMs: o.startDelayMs as number,
    maxDatagramBytes: o.maxDatagramBytes as number,
    heartbeatIntervalMs: o.heartbeatMs as number,
    leaseIntervals: o.leaseIntervals as number,
    // From the environment only: a secret on the command line would show in `ps`.
    secret: env.PRODUCER_SECRET === undefined || env.PRODUCER_SECRET === '' ? null : env.PRODUCER_SECRET,
    passphrase: (o.passphrase as string | null | undefined) ?? null,
    latencyMs: o.latencyMs as number,
    logLevel: o.logLevel as LogLevel,
    logFile: o.logFile as string | undefined,
  });
}
