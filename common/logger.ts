import pino, { type Logger } from 'pino';
import type { LogLevel } from './config.ts';

/**
 * A pino logger writing JSON lines to stderr, or to a file when one is given, so that logs
 * never cross an interactive prompt on stdout.
 */
export function createLogger(name: string, level: LogLevel, file?: string): Logger {
  const dest = file ? pino.destination({ dest: file, mkdir: true, sync: false }) : pino.destination(2);
  return pino({ name, level, base: { role: name } }, dest);
}
