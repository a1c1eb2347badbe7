import { existsSync } from 'node:fs';
import { parse as parseDotenv } from 'dotenv';
import { readFileSync } from 'node:fs';
import { parseProducerId } from '../protocol/ids.ts';
import { MAX_UDP_PAYLOAD_BYTES, MIN_DATAGRAM_BYTES } from '../protocol/constants.ts';

/** A configuration mistake: reported as one line and a non-zero exit, never a stack trace. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/**
 * Puts `.env` (in the working directory) into process.env, under what the real environment
 * already holds: flags override the environment, which overrides .env (commander's
 * Option.env() then reads process.env). A variable set to nothing counts as unset, so its
 * default applies: `PASSPHRASE=` in .env, or Docker Compose handing on `${VAR:-}`.
 * Returns the environment.
 */
export function loadEnv(path = '.env'): Readonly<Record<string, string | undefined>> {
  const fromFile = existsSync(path) ? parseDotenv(readFileSync(path)) : {};
  for (const [k, v] of Object.entries(fromFile)) if (!(k in process.env)) process.env[k] = v;
  for (const [k, v] of Object.entries(process.env)) if (v === '' && /^[A-Z][A-Z0-9_]*$/.test(k)) delete process.env[k];
  return process.env;
}

export function parsePort(text: string, what = 'port', allowZero = true): number {
  const n = /^\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < (allowZero ? 0 : 1) || n > 65535) {
    throw new ConfigError(`${what} must be an integer in ${allowZero ? 0 : 1}..65535, got '${text}'`);
  }
  return n;
}

export function parseIntIn(text: string, what: string, min: number, max: number): number {
  const n = /^-?\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${what} must be an integer in ${min}..${max}, got '${text}'`);
  return n;
}

export function parseNumberIn(text: string, what: string, minExclusive: number, max: number): number {
  const n = /^\d+(\.\d+)?$/.test(text.trim()) ? Number(text) : NaN;
  if (!(n > minExclusive && n <= max)) throw new ConfigError(`${what} must be a number in (${minExclusive}, ${max}], got '${text}'`);
  return n;
}

export function parseId(text: string, what = 'producer ID'): number {
  const id = parseProducerId(text.trim());
  if (id === null) throw new ConfigError(`${what} must be 1 to 8 hexadecimal digits and not 0, got '${text}'`);
  return id;
}

/**
 * A producer ID derived from a host name, for replicas that share one configuration
 * (Docker Compose `scale`): FNV-1a of the name, kept to six hex digits like `1AAA99`.
 */
export function autoProducerId(hostname: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < hostname.length; i++) {
    h ^= hostname.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return 0x100000 + (h % 0xf00000);
}

/** Parses a producer ID, or `auto` (settled at start: producer/identity.ts). */
export function parseIdOrAuto(text: string, what = 'producer ID'): number | 'auto' {
  return text.trim().toLowerCase() === 'auto' ? 'auto' : parseId(text, what);
}

/** A comma-separated list (PRODUCER_TITLES, PRODUCER_VIDEO_FILES, ...), each entry trimmed. */
export function listOf(text: string | undefined): string[] {
  return (text ?? '').split(',').map((s) => s.trim());
}

/** Entry `i` of a comma-separated list; '' past its end. */
export function listEntry(text: string | undefined, i: number): string {
  return listOf(text)[i] ?? '';
}

/** Parses a comma-separated list of producer IDs (PRODUCER_IDS). */
export function parseIdList(text: string, what: string): number[] {
  return text.split(',').map((s) => s.trim()).filter(Boolean).map((s) => parseId(s, `${what} entry`));
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

export function parseDatagramBytes(text: string): number {
  return parseIntIn(text, 'max datagram bytes', MIN_DATAGRAM_BYTES, MAX_UDP_PAYLOAD_BYTES);
}

/** Parses `host:port`; a bare port means 127.0.0.1. */
export function parseEndpoint(text: string, what = 'broker address'): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text.trim());
  if (m === null) {
    if (/^\d+$/.test(text.trim())) return { host: '127.0.0.1', port: parsePort(text, `${what} port`, false) };
    throw new ConfigError(`${what} must be host:port, got '${text}'`);
  }
  return { host: m[1] ?? m[2], port: parsePort(m[3], `${what} port`, false) };
}

/** Parses one broker or several, comma-separated: `a:5000,b:5000`. */
export function parseEndpoints(text: string, what = 'broker address'): { host: string; port: number }[] {
  const list = text.split(',').map((t) => t.trim()).filter((t) => t !== '').map((t) => parseEndpoint(t, what));
  if (list.length === 0) throw new ConfigError(`${what} must be host:port[,host:port...], got '${text}'`);
  return list;
}

/**
 * Parses where to listen for HTTP, `[host:]port`: a bare port means 127.0.0.1, so nothing is
 * exposed unless asked; port 0 takes any free one; '' or `off` means not at all (false).
 */
export function parseListen(text: string, what: string): { host: string; port: number } | false {
  const t = text.trim();
  if (t === '' || t === 'off') return false;
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(t);
  if (m === null) {
    if (/^\d+$/.test(t)) return { host: '127.0.0.1', port: parsePort(t, `${what} port`) };
    throw new ConfigError(`${what} must be [host:]port or off, got '${text}'`);
  }
  return { host: m[1] ?? m[2], port: parsePort(m[3], `${what} port`) };
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export function parseLogLevel(text: string): LogLevel {
  if (!(LOG_LEVELS as readonly string[]).includes(text)) throw new ConfigError(`log level must be one of ${LOG_LEVELS.join(', ')}, got '${text}'`);
  return text as LogLevel;
}
