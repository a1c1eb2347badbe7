import { Option, type Command } from 'commander';
import { DEFAULT_MAX_DATAGRAM_BYTES } from '../protocol/constants.ts';
import { ConfigError, parseDatagramBytes, parseEndpoints, parseIntIn, parseLogLevel, type LogLevel } from './config.ts';
import { LOG_FORMATS, type LogFormat } from './logger.ts';
import { option } from './run.ts';

/** PROTOCOL.md §5.1-5.2 defaults, shared by every role so their timers agree. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 1000;
export const DEFAULT_LEASE_INTERVALS = 3;

/** The loss-recovery latency budget (PROTOCOL.md §3.6), like SRT's default 120 ms. */
export const DEFAULT_LATENCY_MS = 120;

/**
 * A flag with a value: its environment variable (read only when the flag is absent, so a flag
 * overrides a bad environment value), its parser (one line naming the flag or the variable on a
 * bad value) and its default, shown in --help as `text` when given.
 */
export function valueOption<T>(flags: string, description: string, o: { env?: string; parse: (text: string) => T; default?: T; text?: string }): Option {
  const opt = new Option(flags, description).argParser(option(o.parse));
  if (o.env !== undefined) opt.env(o.env);
  if (o.default !== undefined) opt.default(o.default, o.text);
  return opt;
}

/** An on/off flag whose variable is on when 1, true, yes or on (commander's .env() would take any value, even 0, as on). */
export function switchOption(flags: string, description: string, env: string): Option {
  const on = /^(1|true|yes|on)$/i.test(process.env[env] ?? '');
  return new Option(flags, `${description} (${env}=1)`).default(on);
}

export interface SharedOptions {
  heartbeatMs: number;
  leaseIntervals: number;
  maxDatagramBytes: number;
  logLevel: LogLevel;
  logFormat: LogFormat;
}

function parseLogFormat(v: string): LogFormat {
  if (!(LOG_FORMATS as readonly string[]).includes(v)) throw new ConfigError(`log format must be one of ${LOG_FORMATS.join(', ')}, got '${v}'`);
  return v as LogFormat;
}

/**
 * The flags every role shares, with the same names, ranges and .env variables:
 * --heartbeat-ms, --lease-intervals, --max-datagram-bytes, --log-level and --log-format.
 */
export function addSharedOptions(program: Command, help: { readonly lease: string; readonly datagram: string; readonly logLevelEnv?: string }): Command {
  return program
    .addOption(valueOption('--heartbeat-ms <ms>', 'heartbeat interval', { env: 'HEARTBEAT_INTERVAL_MS', parse: (v) => parseIntIn(v, 'heartbeat interval', 50, 600_000), default: DEFAULT_HEARTBEAT_INTERVAL_MS }))
    .addOption(valueOption('--lease-intervals <n>', help.lease, { env: 'LEASE_INTERVALS', parse: (v) => parseIntIn(v, 'lease intervals', 2, 100), default: DEFAULT_LEASE_INTERVALS }))
    .addOption(valueOption('--max-datagram-bytes <n>', help.datagram, { env: 'MAX_DATAGRAM_BYTES', parse: parseDatagramBytes, default: DEFAULT_MAX_DATAGRAM_BYTES }))
    .addOption(valueOption<LogLevel>('--log-level <level>', 'pino log level', { env: help.logLevelEnv ?? 'LOG_LEVEL', parse: parseLogLevel, default: 'info' }))
    .addOption(valueOption<LogFormat>('--log-format <format>', 'auto: one readable line per event at a terminal, JSON lines otherwise; pretty; json', { env: 'LOG_FORMAT', parse: parseLogFormat, default: 'auto' }));
}

/** --latency-ms (LATENCY_MS): broker, producers and clients read the same budget. */
export function addLatencyOption(program: Command, help: string): Command {
  return program.addOption(valueOption('--latency-ms <ms>', help, { env: 'LATENCY_MS', parse: (v) => parseIntIn(v, 'latency', 0, 10_000), default: DEFAULT_LATENCY_MS }));
}

/** SRT's bounds for a passphrase: long enough that the scrypt cost makes guessing slow. */
export const MIN_PASSPHRASE_CHARS = 10;
export const MAX_PASSPHRASE_CHARS = 79;

/** '' (none) or the passphrase; commander turns a parsed null into '', so none is '' throughout. */
function parsePassphrase(v: string): string {
  if (v === '') return '';
  if (v.length < MIN_PASSPHRASE_CHARS || v.length > MAX_PASSPHRASE_CHARS) {
    throw new ConfigError(`passphrase must be ${MIN_PASSPHRASE_CHARS} to ${MAX_PASSPHRASE_CHARS} characters, got ${v.length}`);
  }
  return v;
}

/** --passphrase (PASSPHRASE): frames encrypted end to end (PROTOCOL.md §3.7); the broker needs none. */
export function addPassphraseOption(program: Command, help: string): Command {
  return program.addOption(valueOption('--passphrase <text>', `${help} (the variable keeps it out of ps)`, { env: 'PASSPHRASE', parse: parsePassphrase }));
}

/**
 * --broker HOST:PORT for producers and clients; absent, BROKER_HOST and BROKER_PORT (read only
 * then, so the flag overrides them however wrong they are), else 127.0.0.1:5000.
 */
export function addBrokerOption(program: Command): Command {
  return program.addOption(new Option('--broker <host:port,...>', 'the broker, or several to move between: the next is tried when the one in use stops answering for a lease (default: BROKER_HOST:BROKER_PORT, where BROKER_HOST may list several, else 127.0.0.1:5000)')
    .argParser(option((v) => parseEndpoints(v))));
}

/** The brokers: the flag's, or the environment's (BROKER_HOST may list several, each with BROKER_PORT unless it names its own). */
export function brokerAddresses(flag: { host: string; port: number }[] | undefined): { host: string; port: number }[] {
  if (flag !== undefined) return flag;
  const port = process.env.BROKER_PORT ?? '5000';
  const hosts = (process.env.BROKER_HOST ?? '127.0.0.1').split(',').map((h) => h.trim()).filter((h) => h !== '');
  return parseEndpoints(hosts.map((h) => (/^(\[[^\]]+\]|[^:]+):\d+$/.test(h) ? h : `${h}:${port}`)).join(','), 'BROKER_HOST:BROKER_PORT');
}
