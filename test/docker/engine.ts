import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../helpers/procs.ts';

/** Runs a command and waits, with the test's environment; never throws (look at `status`). */
export const run = (cmd: string, args: string[], o: { cwd?: string; timeoutMs?: number } = {}) =>
  spawnSync(cmd, args, { cwd: o.cwd ?? ROOT, env: process.env, encoding: 'utf8', timeout: o.timeoutMs ?? 60_000 });

const has = (cmd: string): boolean => run('sh', ['-c', `command -v ${cmd}`]).status === 0;

/**
 * A Docker engine for the suite: the one that answers, or, where none does and this machine can
 * run one (root, Debian's dockerd), one started for the run (scripts/docker-engine.sh) that
 * `stop()` stops again, with what dockerd leaves behind.
 */
export function dockerEngine(): { ok: boolean; stop(): void } {
  if (run('docker', ['info'], { timeoutMs: 15_000 }).status === 0) return { ok: true, stop: () => {} };
  if (process.getuid?.() !== 0 || !has('dockerd')) return { ok: false, stop: () => {} };
  const started = run('bash', ['scripts/docker-engine.sh', 'start'], { timeoutMs: 90_000 }).status === 0;
  return { ok: started, stop: () => void (started && run('bash', ['scripts/docker-engine.sh', 'stop'], { timeoutMs: 60_000 })) };
}

/** The Dockerfile's FROM image; built from this machine's node where no registry can be reached (true: built here, remove it after). */
export const FROM = /^FROM\s+(\S+)/m.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))?.[1] ?? 'node:20-bookworm-slim';
export function ensureBaseImage(): boolean {
  if (run('docker', ['image', 'inspect', FROM]).status === 0) return false;
  const r = run('bash', ['scripts/docker-standin-base.sh', FROM], { timeoutMs: 300_000 });
  if (r.status !== 0) throw new Error(`cannot build a stand-in for ${FROM}: ${r.stderr}`);
  return true;
}
