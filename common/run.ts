import { Command, CommanderError } from 'commander';
import { ConfigError } from './config.ts';

/**
 * Runs a program's main: configuration mistakes and bad flags become one line on stderr and
 * exit code 2; nothing prints a stack trace for bad input.
 */
export async function runMain(name: string, main: (run: MainRun) => Promise<void>): Promise<void> {
  const run: MainRun = { log: null };
  try {
    await main(run);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${name}: ${err.message}\n`);
      process.exit(2);
    }
    if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
    const message = err instanceof Error ? err.message : String(err);
    // Into the log file too (written synchronously, common/logger.ts), where one is kept.
    run.log?.fatal(message);
    process.stderr.write(`${name}: ${message}\n`);
    process.exit(1);
  }
}

/** What a main tells runMain once it has them: its logger, so a fatal error is logged too. */
export interface MainRun {
  log: { fatal(message: string): void } | null;
}

/** A commander program that exits through runMain and turns parser errors into ConfigError. */
export function newProgram(name: string, description: string): Command {
  return new Command(name)
    .description(description)
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(str.trimEnd().replace(/^error: /, `${name}: `) + '\n') })
    .showHelpAfterError('(run with --help for usage)');
}

/** Applies a value parser inside commander, so its error says which flag was wrong. */
export function option<T>(flagName: string, parse: (text: string) => T): (text: string) => T {
  return (text) => {
    try {
      return parse(text);
    } catch (err) {
      if (err instanceof ConfigError) throw new ConfigError(`${flagName}: ${err.message}`);
      throw err;
    }
  };
}
