import type { Command } from 'commander';
import { DEFAULT_MAX_DATAGRAM_BYTES } from '../protocol/constants.ts';
import { ConfigError, parseDatagramBytes, parseIntIn, parseLogLevel } from './config.ts';
import { option } from './run.ts';

/** PROTOCOL.md §5.1-5.2 defaults, shared by every role so their timers agree. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 1000;
export const DEFAULT_LEASE_INTERVALS = 3;

/** The loss-recovery latency budget (PROTOCOL.md §3.6), like SRT's default 120 ms. */
export const DEFAULT_LATENCY_MS = 120;

const heartbeatMs = (v: string, what: string): number => parseIntIn(v, what, 50, 600_000);
const leaseIntervals = (v: string, what: string): number => parseIntIn(v, what, 2, 100);

/**
 * The flags every role shares, with the same names, ranges and .env variables:
 * --heartbeat-ms, --lease-intervals, --max-datagram-bytes and --log-level.
 */
export function addSharedOptions(
  program: Command,
  env: Readonly<Record<string, string | undefined>>,
  help: { readonly lease: string; readonly datagram: string; readonly logLevelDefault?: string },
): Command {
  return program
    .option('--heartbeat-ms <ms>', 'heartbeat interval (HEARTBEAT_INTERVAL_MS)', option('--heartbeat-ms', (v) => heartbeatMs(v, 'heartbeat interval')),
      heartbeatMs(env.HEARTBEAT_INTERVAL_MS ?? String(DEFAULT_HEARTBEAT_INTERVAL_MS), 'HEARTBEAT_INTERVAL_MS'))
    .option('--lease-intervals <n>', `${help.lease} (LEASE_INTERVALS)`, option('--lease-intervals', (v) => leaseIntervals(v, 'lease intervals')),
      leaseIntervals(env.LEASE_INTERVALS ?? String(DEFAULT_LEASE_INTERVALS), 'LEASE_INTERVALS'))
    .option('--max-datagram-bytes <n>', `${help.datagram} (MAX_DATAGRAM_BYTES)`, option('--max-datagram-bytes', parseDatagramBytes),
      parseDatagramBytes(env.MAX_DATAGRAM_BYTES ?? String(DEFAULT_MAX_DATAGRAM_BYTES)))
    .option('--log-level <level>', 'pino log level (LOG_LEVEL)', option('--log-level', parseLogLevel),
      parseLogLevel(help.logLevelDefault ?? env.LOG_LEVEL ?? 'info'));
}

/** --latency-ms (LATENCY_MS): the broker and its clients read the same budget. */
export function addLatencyOption(program: Command, env: Readonly<Record<string, string | undefined>>, help: string): Command {
  const parse = (v: string, what: string): number => parseIntIn(v, what, 0, 10_000);
  return program.option('--latency-ms <ms>', `${help} (LATENCY_MS)`, option('--latency-ms', (v) => parse(v, 'latency')),
    parse(env.LATENCY_MS ?? String(DEFAULT_LATENCY_MS), 'LATENCY_MS'));
}

/** SRT's bounds for a passphrase: long enough that the scrypt cost makes guessing slow. */
export const MIN_PASSPHRASE_CHARS = 10;
export const MAX_PASSPHRASE_CHARS = 79;

function parsePassphrase(v: string, what: string): string | null {
  if (v === '') return null;
  if (v.length < MIN_PASSPHRASE_CHARS || v.length > MAX_PASSPHRASE_CHARS) {
    throw new ConfigError(`${what} must be ${MIN_PASSPHRASE_CHARS} to ${MAX_PASSPHRASE_CHARS} characters, got ${v.length}`);
  }
  return v;
}

/** --passphrase (PASSPHRASE): frames encrypted end to end (PROTOCOL.md §3.7); the broker needs none. */
export function addPassphraseOption(program: Command, env: Readonly<Record<string, string | undefined>>, help: string): Command {
  return program.option('--passphrase <text>', `${help} (PASSPHRASE; the variable keeps it out of ps)`, option('--passphrase', (v) => parsePassphrase(v, 'passphrase')),
    parsePassphrase(env.PASSPHRASE ?? '', 'PASSPHRASE'));
}
