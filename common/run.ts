import { Command, CommanderError, InvalidArgumentError } from 'commander';
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
    .configureOutput({ outputError: (str, write) => write(`${oneLine(name, str.trimEnd())}\n`) })
    .showHelpAfterError('(run with --help for usage)');
}

/**
 * Parses `argv` into `program`'s options. --help is answered before any environment variable
 * is read, so a bad value in .env cannot hide the help that would explain it.
 */
export function parseProgram(program: Command, argv: readonly string[]): void {
  const args = argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    program.outputHelp();
    throw new CommanderError(0, 'commander.helpDisplayed', '(outputHelp)');
  }
  program.parse(argv as string[], { from: 'node' });
}

/**
 * commander's message for a bad value, as one line naming where it came from: `name: --flag:
 * why` for a flag, `name: VARIABLE: why` for an environment variable.
 */
function oneLine(name: string, text: string): string {
  const flag = /^error: option '(?:-\w, )?(--[\w-]+)[^']*' argument '.*' is invalid\. (.*)$/s.exec(text);
  if (flag !== null) return `${name}: ${flag[1]}: ${flag[2]}`;
  const env = /^error: option '[^']*' value '.*' from env '(\w+)' is invalid\. (.*)$/s.exec(text);
  if (env !== null) return `${name}: ${env[1]}: ${env[2]}`;
  return text.replace(/^error: /, `${name}: `);
}

/** Applies a value parser inside commander, so its error says which flag or variable was wrong. */
export function option<T>(parse: (text: string) => T): (text: string) => T {
  return (text) => {
    try {
      return parse(text);
    } catch (err) {
      if (err instanceof ConfigError) throw new InvalidArgumentError(err.message);
      throw err;
    }
  };
}
