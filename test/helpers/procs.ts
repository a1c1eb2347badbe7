import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach } from 'vitest';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A child process running one of our programs, with its output collected line by line. */
export class Proc {
  readonly child: ChildProcessWithoutNullStreams;
  readonly stdoutLines: string[] = [];
  readonly stderrLines: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];

  /** Standard output as bytes, with `rawStdout` (a program writing media there); otherwise lines. */
  readonly stdoutBytes: Buffer[] = [];

  /**
   * `wrap` runs the program under another command, e.g. ['ip', 'netns', 'exec', 'fc-b'] (it must
   * exec, keeping the PID). `rawStdout`: keep standard output as bytes, not lines.
   */
  constructor(script: string, args: string[], env: Record<string, string> = {}, wrap: string[] = [], opts: { rawStdout?: boolean } = {}) {
    const argv = [...wrap, process.execPath, '--import', 'tsx', script, ...args];
    this.child = spawn(argv[0], argv.slice(1), {
      cwd: ROOT,
      // An empty LOG_LEVEL keeps children quiet unless a test asks; .env still supplies defaults.
      env: { ...process.env, LOG_LEVEL: 'warn', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
      // A process group of its own, so that kill() reaches what it started too (npm start's
      // broker, producers and client; the benchmark's relays, producers and subscribers).
      detached: true,
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
    if (opts.rawStdout === true) this.child.stdout.on('data', (b: Buffer) => this.stdoutBytes.push(b));
    else this.#collect(this.child.stdout, this.stdoutLines, true);
    this.#collect(this.child.stderr, this.stderrLines, true);
    running.add(this);
    void this.exited.then(() => running.delete(this));
  }

  #collect(stream: NodeJS.ReadableStream, into: string[], matchable: boolean): void {
    // Both streams are matched: programs print results on stdout and log events on stderr.
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        into.push(line);
        if (matchable) this.#check(line);
      }
    });
  }

  #check(line: string): void {
    this.#waiters = this.#waiters.filter((w) => {
      const m = line.match(w.re);
      if (m) w.resolve(m);
      return !m;
    });
  }

  /** Resolves with the first output line (stdout or stderr, already seen or to come) matching `re`. */
  waitFor(re: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    for (const line of [...this.stdoutLines, ...this.stderrLines]) {
      const m = line.match(re);
      if (m) return Promise.resolve(m);
    }
    return this.#waitNew(re, timeoutMs);
  }

  /** Resolves with the next output line from now on matching `re`. */
  waitForNext(re: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    return this.#waitNew(re, timeoutMs);
  }

  #waitNew(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w.re !== re);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re}; stdout:\n${this.stdoutLines.slice(-20).join('\n')}\nstderr:\n${this.stderrLines.slice(-20).join('\n')}`));
      }, timeoutMs);
      this.#waiters.push({ re, resolve: (m) => { clearTimeout(timer); resolve(m); } });
    });
  }

  write(line: string): void {
    this.child.stdin.write(`${line}\n`);
  }

  /** Signals the process; SIGKILL goes to its whole group, so nothing it started outlives a test. */
  kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const alive = this.child.exitCode === null && this.child.signalCode === null;
    if (signal === 'SIGKILL' && this.child.pid !== undefined) {
      try {
        process.kill(-this.child.pid, 'SIGKILL'); // the group outlives its leader: kill it even after the exit
      } catch {
        // no such group left
      }
    } else if (alive) this.child.kill(signal);
    return this.exited;
  }
}

const running = new Set<Proc>();

/** Every process a test started is killed after it, pass or fail. */
afterEach(async () => {
  await Promise.all([...running].map((p) => p.kill('SIGKILL')));
});

/** Starts a broker on a free port and resolves once it listens. */
export async function startBroker(args: string[] = [], env: Record<string, string> = {}): Promise<{ proc: Proc; port: number; address: string }> {
  const proc = new Proc('broker/main.ts', ['--port', '0', '--host', '127.0.0.1', ...args], env);
  const m = await proc.waitFor(/broker listening on [^:]+:(\d+)/);
  const port = Number(m[1]);
  return { proc, port, address: `127.0.0.1:${port}` };
}

/** A UDP port that was free a moment ago, for tests that must restart a broker on the same port. */
export async function freeUdpPort(): Promise<number> {
  const dgram = await import('node:dgram');
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const { port } = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
