import pino, { type Logger } from 'pino';
import type { LogLevel } from './config.ts';

/** How log lines look: `pretty` (one short line a person reads), `json` (pino's, for machines), or `auto`. */
export type LogFormat = 'auto' | 'pretty' | 'json';
export const LOG_FORMATS: readonly LogFormat[] = ['auto', 'pretty', 'json'];

const LEVEL_NAMES: Readonly<Record<number, string>> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO ', 40: 'WARN ', 50: 'ERROR', 60: 'FATAL' };
/** Fields every line has, shown in the line's own columns rather than as key=value. */
const OWN = new Set(['level', 'time', 'msg', 'role', 'name', 'pid', 'hostname']);

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/** A value as key=value shows it: plain when it needs no quotes, JSON otherwise. */
function show(v: unknown): string {
  if (typeof v === 'string') return /^[\w.:/@+-]+$/.test(v) ? v : JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  return JSON.stringify(v);
}

/**
 * One pino JSON line as a person reads it: local time, level, role, message, then the other
 * fields as key=value (`21:59:48.123 INFO  broker  broker listening host=127.0.0.1 port=5000`).
 * A line that is not JSON passes through as it is.
 */
export function prettyLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const t = new Date(typeof o.time === 'number' ? o.time : Date.now());
  const time = `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}.${pad(t.getMilliseconds(), 3)}`;
  const level = LEVEL_NAMES[o.level as number] ?? String(o.level);
  const fields = Object.entries(o).filter(([k]) => !OWN.has(k)).map(([k, v]) => `${k}=${show(v)}`);
  return `${time} ${level} ${String(o.role ?? o.name ?? '').padEnd(8)} ${String(o.msg ?? '')}${fields.length > 0 ? ` ${fields.join(' ')}` : ''}\n`;
}

/**
 * A pino logger. To a file: JSON lines, opened and written synchronously, so a program that exits
 * early (a busy port, the end of piped input) still leaves its log, and pino's exit handler has
 * nothing unready to flush (nothing is logged per datagram). To stderr: `pretty` lines at a
 * terminal, JSON otherwise (`format` decides when not `auto`). `to`: where pretty lines go
 * instead of stderr (the client's prompt-safe printer).
 */
export function createLogger(name: string, level: LogLevel, file?: string, o: { format?: LogFormat; to?: (line: string) => void } = {}): Logger {
  if (file) return pino({ name, level, base: { role: name } }, pino.destination({ dest: file, mkdir: true, sync: true }));
  const format = o.format ?? 'auto';
  const pretty = format === 'pretty' || (format === 'auto' && (o.to !== undefined || process.stderr.isTTY === true));
  if (!pretty) return pino({ name, level, base: { role: name } }, pino.destination({ dest: 2, sync: true }));
  const to = o.to ?? ((line: string) => process.stderr.write(line));
  return pino({ name, level, base: { role: name } }, { write: (line: string) => to(prettyLine(line)) });
}
