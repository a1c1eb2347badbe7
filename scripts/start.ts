/**
 * `npm start`: the whole system on one machine, no Docker. Starts a broker, the producers
 * named in .env (PRODUCER_IDS), and an interactive client in this terminal. The other
 * processes log to logs/*.log (their stderr too), never over the prompt; quitting the client
 * (quit, Ctrl-D, Ctrl-C) stops them all.
 *
 * Before anything starts, every role's configuration is checked with the role's own parser,
 * and the broker's port is tried: a mistake stops here, in that role's own one line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { ConfigError, listEntry, loadEnv, parseIdList, parsePort, parseProducerSecrets } from '../common/config.ts';
import { runMain } from '../common/run.ts';
import { formatProducerId } from '../protocol/ids.ts';
import { loadBrokerConfig } from '../broker/config.ts';
import { loadClientConfig } from '../client/config.ts';
import { loadProducerConfig } from '../producer/config.ts';
import { loadSource } from '../producer/source.ts';

/** A role's configuration, checked in this process with the role's own parser: its mistake in its own words. */
function check(role: string, load: () => unknown): void {
  try {
    load();
  } catch (err) {
    if (err instanceof ConfigError || (err as { code?: string }).code?.startsWith('commander.')) {
      // commander has written the role's line already; a ConfigError has not.
      if (err instanceof ConfigError) process.stderr.write(`${role}: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

/** The last lines of a log file, for a child that failed. */
function lastLines(path: string, n = 8): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-n).map((l) => `  ${l}`).join('\n');
  } catch {
    return '  (no log written)';
  }
}

await runMain('start', async () => {
  const env = loadEnv();
  const port = parsePort(env.BROKER_PORT ?? '5000', 'BROKER_PORT', false);
  const ids = parseIdList(env.PRODUCER_IDS ?? '1AAA99,2BBB88,3CCC77', 'PRODUCER_IDS');
  if (ids.length === 0) throw new ConfigError('PRODUCER_IDS names no producer');
  const secrets = parseProducerSecrets(env.PRODUCER_SECRETS);
  const broker = `127.0.0.1:${port}`;
  const node = ['node', 'x'];
  const brokerArgs = ['--port', String(port), '--host', '127.0.0.1', '--log-file', 'logs/broker.log'];
  const producerArgs = (id: number, i: number): string[] => {
    const name = formatProducerId(id);
    // Each producer's own sample where .env lists them (three different streams by default).
    const video = listEntry(env.PRODUCER_VIDEO_FILES, i);
    const audio = listEntry(env.PRODUCER_AUDIO_FILES, i);
    return ['--id', name, '--broker', broker, '--title', listEntry(env.PRODUCER_TITLES, i) || `Producer ${name}`,
      ...(video ? ['--video', video] : []), ...(audio ? ['--audio', audio] : []), '--log-file', `logs/producer-${name}.log`];
  };
  const clientArgs = ['--broker', broker, '--log-file', 'logs/client.log'];
  check('broker', () => loadBrokerConfig([...node, ...brokerArgs]));
  ids.forEach((id, i) => check('producer', () => {
    const c = loadProducerConfig([...node, ...producerArgs(id, i)]);
    return loadSource(c.videoPath, c.audioPath, c.fps);
  }));
  check('client', () => loadClientConfig([...node, ...clientArgs]));
  // The port, tried as the broker will bind it: a busy one is named before anything starts.
  await new Promise<void>((resolve, reject) => {
    const probe = dgram.createSocket('udp4');
    probe.once('error', (err: NodeJS.ErrnoException) => {
      probe.close();
      reject(new Error(err.code === 'EADDRINUSE'
        ? `port ${port} is in use (another npm start, a broker, or Docker Compose's published port?): stop it, or set BROKER_PORT in .env`
        : `cannot use port ${port}: ${err.code ?? err.message}`));
    });
    probe.bind(port, '127.0.0.1', () => probe.close(() => resolve()));
  });
  mkdirSync('logs', { recursive: true });

  const children: ChildProcess[] = [];
  let stopping = false;
  const stopAll = (code: number): void => {
    if (stopping) return;
    stopping = true;
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    // Anything still up after a grace period is killed.
    setTimeout(() => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      process.exit(code);
    }, 1500).unref();
    Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? null : new Promise((r) => c.once('exit', r))))).then(() => process.exit(code));
  };
  /** A background role: its stderr into its log file (beside its own log lines), stdout read for its readiness line. */
  const background = (script: string, args: string[], log: string, extraEnv: Record<string, string> = {}): ChildProcess => {
    const fd = openSync(log, 'a');
    const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { stdio: ['ignore', 'pipe', fd], env: { ...process.env, ...extraEnv } });
    closeSync(fd);
    child.stdout?.resume();
    children.push(child);
    child.once('exit', (code) => {
      if (code !== 0 && code !== null && !stopping) {
        process.stderr.write(`start: ${script.split('/')[0]} exited with code ${code}; the last lines of ${log}:\n${lastLines(log)}\n`);
        stopAll(1);
      }
    });
    return child;
  };

  const b = background('broker/main.ts', brokerArgs, 'logs/broker.log');
  // Producers and the client start once the broker listens: nothing is printed after the prompt.
  await new Promise<void>((resolve) => {
    let out = '';
    b.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('broker listening on')) resolve();
    });
    b.once('exit', () => resolve());
  });
  if (stopping) return;
  ids.forEach((id, i) => {
    const secret = secrets.get(id);
    background('producer/main.ts', producerArgs(id, i), `logs/producer-${formatProducerId(id)}.log`, secret === undefined ? {} : { PRODUCER_SECRET: secret });
  });
  process.stdout.write(`Framecast: broker on ${broker}, producers ${ids.map(formatProducerId).join(', ')} (logs in logs/).\n` +
    `Try: list, subscribe ${formatProducerId(ids[0])}, stats, unsubscribe ${formatProducerId(ids[0])}, quit\n`);
  const client = spawn(process.execPath, ['--import', 'tsx', 'client/main.ts', ...clientArgs], { stdio: 'inherit', env: process.env });
  children.push(client);

  client.once('exit', (code) => stopAll(code ?? 0));
  // Ctrl-C reaches the whole foreground group: the client quits on its own and the rest follow.
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => stopAll(0));
});
