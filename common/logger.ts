import pino, { type Logger } from 'pino';
import type { LogLevel } from './config.ts';

/**
 * A pino logger writing JSON lines to stderr, or to a file when one is given, so that logs
 * never cross an interactive prompt on stdout.
 */
export function createLogger(name: string, level: LogLevel, file?: string): Logger {
  // A file is opened and written synchronously: a program that exits early (a busy port, the end
  // of piped input) still leaves its log, and pino's exit handler has nothing unready to flush.
  // Nothing is logged per datagram, so the cost is a write per event.
  const dest = file ? pino.destination({ dest: file, mkdir: true, sync: true }) : pino.destination(2);
  return pino({ name, level, base: { role: name } }, dest);
}
