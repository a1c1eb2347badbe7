/**
 * `npm start`: the whole system on one machine, no Docker. Starts a broker, the producers
 * named in .env (PRODUCER_IDS), and an interactive client in this terminal. The other
 * processes log to logs/*.log, never over the prompt; quitting the client (quit, Ctrl-D,
 * Ctrl-C) stops them all.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { ConfigError, loadEnv, parseId, parsePort, parseProducerSecrets } from '../common/config.ts';
import { runMain } from '../common/run.ts';
import { formatProducerId } from '../protocol/ids.ts';

await runMain('start', async () => {
  const env = loadEnv();
  const port = parsePort(env.BROKER_PORT ?? '5000', 'BROKER_PORT', false);
  const ids = (env.PRODUCER_IDS ?? '1AAA99,2BBB88,3CCC77').split(',').map((s) => s.trim()).filter(Boolean).map((s) => parseId(s, 'PRODUCER_IDS entry'));
  if (ids.length === 0) throw new ConfigError('PRODUCER_IDS names no producer');
  const titles = (env.PRODUCER_TITLES ?? '').split(',').map((s) => s.trim());
  const secrets = parseProducerSecrets(env.PRODUCER_SECRETS);
  const broker = `127.0.0.1:${port}`;
  mkdirSync('logs', { recursive: true });

  const children: ChildProcess[] = [];
  const run = (script: string, args: string[], stdio: 'inherit' | 'ignore', env: Record<string, string> = {}): ChildProcess => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
      stdio: stdio === 'inherit' ? 'inherit' : ['ignore', 'ignore', 'ignore'],
      env: { ...process.env, ...env },
    });
    children.push(child);
    return child;
  };

  const b = run('broker/main.ts', ['--port', String(port), '--host', '127.0.0.1', '--log-file', 'logs/broker.log'], 'ignore');
  b.once('exit', (code) => {
    if (code !== 0 && code !== null && !stopping) {
      process.stderr.write(`start: the broker exited with code ${code}: see logs/broker.log (is port ${port} in use? set BROKER_PORT in .env)\n`);
      stopAll(1);
    }
  });
  ids.forEach((id, i) => {
    const name = formatProducerId(id);
    const secret = secrets.get(id);
    run('producer/main.ts', ['--id', name, '--broker', broker, '--title', titles[i] || `Producer ${name}`, '--log-file', `logs/producer-${name}.log`], 'ignore',
      secret === undefined ? {} : { PRODUCER_SECRET: secret });
  });
  process.stdout.write(`Framecast: broker on ${broker}, producers ${ids.map(formatProducerId).join(', ')} (logs in logs/).\n` +
    `Try: list, subscribe ${formatProducerId(ids[0])}, stats, unsubscribe ${formatProducerId(ids[0])}, quit\n`);
  const client = run('client/main.ts', ['--broker', broker, '--log-file', 'logs/client.log'], 'inherit');

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
  client.once('exit', (code) => stopAll(code ?? 0));
  // Ctrl-C reaches the whole foreground group: the client quits on its own and the rest follow.
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => stopAll(0));
});
