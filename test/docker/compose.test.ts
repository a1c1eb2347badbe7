import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freeUdpPort, ROOT } from '../helpers/procs.ts';
import { dockerEngine, ensureBaseImage, FROM, run } from './engine.ts';

/**
 * The README's Docker section, step by step, against a real engine, as a user would: in a copy
 * of the checkout whose .env the test edits (the repository's own .env is never touched).
 * `npm run test:docker` (not in `npm test`: it builds an image). Where no engine answers and
 * this machine can run one (root, Debian's dockerd), it starts one for the run and stops it
 * after (scripts/docker-engine.sh); otherwise it is skipped, saying why. No image can be pulled
 * here, so a stand-in for the FROM image is built from this machine's node
 * (scripts/docker-standin-base.sh); the project's Dockerfile is used unchanged.
 */
const engine = dockerEngine();
const compose = run('docker-compose', ['version']).status === 0;
const script = run('script', ['--version']).status === 0;
const why = !engine.ok ? 'no Docker engine answers, and none could be started here (scripts/docker-engine.sh start needs root and dockerd)'
  : !compose ? 'docker-compose is not installed (Debian: docker-compose)'
  : !script ? 'script(1) is not installed (Debian: bsdutils), needed to attach with a terminal' : '';
if (why !== '') process.stdout.write(`test:docker skipped: ${why}\n`);

/** A copy of the checkout (the files git knows, as they are now), named `framecast` like a clone. */
function copyCheckout(): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'framecast-compose-')), 'framecast');
  const files = run('git', ['ls-files', '-co', '--exclude-standard']).stdout.split('\n').filter((f) => f !== '' && existsSync(join(ROOT, f)));
  for (const f of files) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    cpSync(join(ROOT, f), join(dir, f));
  }
  return dir;
}

/** Sets `NAME=value` in the copy's .env, as a user editing it would. */
function setEnv(dir: string, name: string, value: string): void {
  const path = join(dir, '.env');
  const text = readFileSync(path, 'utf8');
  const line = `${name}=${value}`;
  writeFileSync(path, new RegExp(`^${name}=.*$`, 'm').test(text) ? text.replace(new RegExp(`^${name}=.*$`, 'm'), line) : `${text}\n${line}\n`);
}

/** `docker attach client-1` inside a terminal (script(1)), as a person at a keyboard; output without escape codes. */
class Attached {
  readonly proc: ChildProcessWithoutNullStreams;
  text = '';
  constructor() {
    this.proc = spawn('script', ['-qfec', 'docker attach client-1', '/dev/null'], { cwd: ROOT });
    this.proc.stdout.on('data', (b: Buffer) => {
      // eslint-disable-next-line no-control-regex
      this.text += b.toString('utf8').replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '\n');
    });
  }
  type(line: string): void {
    this.proc.stdin.write(`${line}\r`);
  }
  /** Waits until the output since `from` matches `re`; returns the match. */
  async see(re: RegExp, timeoutMs: number, from = 0): Promise<RegExpMatchArray> {
    const until = performance.now() + timeoutMs;
    for (;;) {
      const m = this.text.slice(from).match(re);
      if (m) return m;
      if (performance.now() > until) throw new Error(`not seen within ${timeoutMs} ms: ${re}\n--- client-1 showed ---\n${this.text.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  /** Types `list` until `accept` takes the rows shown (ID and online/offline); returns them. */
  async listUntil(accept: (rows: Map<string, string>) => boolean, timeoutMs: number, what: string): Promise<Map<string, string>> {
    const until = performance.now() + timeoutMs;
    for (;;) {
      const from = this.text.length;
      this.type('list');
      try {
        await this.see(/(\d+ producers?:|no producers are live)[\s\S]*?framecast> /, 5000, from);
        const rows = new Map([...this.text.slice(from).matchAll(/^\s+([0-9A-F]{1,8})\s+(online|offline)/gm)].map((m) => [m[1], m[2]]));
        if (accept(rows)) return rows;
      } catch { /* not answered yet */ }
      if (performance.now() > until) throw new Error(`list never showed ${what}:\n${this.text.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  /** The `frames N complete` count the `stats` command shows for `id`. */
  async frames(id: string): Promise<number> {
    const from = this.text.length;
    this.type('stats');
    return Number((await this.see(new RegExp(`${id}: [^\\n]*frames (\\d+) complete`), 5000, from))[1]);
  }
}

const online = (rows: Map<string, string>): string[] => [...rows].filter(([, s]) => s === 'online').map(([id]) => id).sort();

describe.skipIf(why !== '')(`Docker Compose on a real engine${why ? ` (skipped: ${why})` : ''}`, () => {
  let builtBase = false;
  let dir = '';
  const attached: Attached[] = [];
  const dc = (args: string[], timeoutMs = 120_000): string => {
    const r = run('docker-compose', args, { cwd: dir, timeoutMs });
    if (r.status !== 0) throw new Error(`docker-compose ${args.join(' ')} failed: ${r.stderr || r.error?.message}`);
    return r.stdout + r.stderr;
  };
  const inspect = (container: string, format: string): string => run('docker', ['inspect', '-f', format, container]).stdout.trim();

  beforeAll(async () => {
    builtBase = ensureBaseImage();
    dir = copyCheckout();
  }, 300_000);

  afterAll(() => {
    for (const a of attached) a.proc.kill('SIGKILL');
    // Everything it built or started goes: containers, network, volumes, the image, the stand-in base, the engine.
    if (dir !== '') {
      run('docker-compose', ['down', '--rmi', 'all', '--volumes', '--remove-orphans'], { cwd: dir, timeoutMs: 180_000 });
      rmSync(dirname(dir), { recursive: true, force: true });
    }
    if (builtBase) run('docker', ['rmi', '-f', FROM]);
    engine.stop();
  }, 300_000);

  it('up with two edges, attach, subscribe; change PRODUCERS both ways without touching the broker or the viewer; stable IDs; record; survive a broker crash', async () => {
    // .env as a user sets it: two producers, the published ports moved off 5000 and 9100 (so
    // an npm start on this machine cannot clash), offline producers forgotten after 15 s.
    setEnv(dir, 'PRODUCERS', '2');
    setEnv(dir, 'BROKER_PUBLISHED_PORT', String(await freeUdpPort()));
    setEnv(dir, 'BROKER_METRICS_PORT', String(await freeUdpPort()));
    setEnv(dir, 'BROKER_OFFLINE_RETENTION_S', '15');
    // Two edges between the broker and the clients: the clients attach to them.
    setEnv(dir, 'EDGES', '2');
    dc(['up', '-d', '--build'], 900_000);
    const broker = dc(['ps', '-q', 'broker']).trim();
    for (const until = performance.now() + 90_000; inspect(broker, '{{.State.Health.Status}}') !== 'healthy';) {
      if (performance.now() > until) throw new Error(`broker not healthy: ${inspect(broker, '{{.State.Health.Status}}')}`);
      await new Promise((r) => setTimeout(r, 1000));
    }

    // README: docker attach client-1, then type list and subscribe <ID>. Replicas 1 and 2 took
    // the first two IDs of PRODUCER_IDS; the client is at an edge, which lists what the broker has.
    let a = new Attached();
    attached.push(a);
    a.type('');
    await a.listUntil((rows) => online(rows).length === 2, 60_000, 'two producers online');
    expect(online(await a.listUntil(() => true, 10_000, 'anything'))).toEqual(['1AAA99', '2BBB88']);
    const id = '1AAA99';
    let from = a.text.length;
    a.type(`subscribe ${id}`);
    await a.see(new RegExp(`subscribed to ${id}`), 10_000, from);
    await a.see(new RegExp(`${id}: frames are arriving`), 10_000, from);
    const started = (c: string) => `${inspect(c, '{{.Id}}')} ${inspect(c, '{{.State.StartedAt}}')}`;
    const before = { broker: started(broker), client: started('client-1') };

    // README: set PRODUCERS=3 in .env and run docker-compose up -d again: one producer more,
    // with the third ID; the broker and the client are the same containers, never restarted,
    // and the subscription goes on counting frames.
    const framesBefore = await a.frames(id);
    setEnv(dir, 'PRODUCERS', '3');
    const up3 = dc(['up', '-d'], 300_000);
    expect(up3).not.toMatch(/Recreating|Restarting/);
    expect(online(await a.listUntil((rows) => online(rows).length === 3, 60_000, 'three producers online'))).toEqual(['1AAA99', '2BBB88', '3CCC77']);
    expect({ broker: started(broker), client: started('client-1') }).toEqual(before);
    expect(await a.frames(id)).toBeGreaterThan(framesBefore);

    // And back to 2: the third goes offline, then leaves list after BROKER_OFFLINE_RETENTION_S.
    setEnv(dir, 'PRODUCERS', '2');
    dc(['up', '-d'], 300_000);
    const downAt = performance.now();
    await a.listUntil((rows) => rows.get('3CCC77') === 'offline', 30_000, '3CCC77 offline');
    await a.listUntil((rows) => !rows.has('3CCC77') && rows.size === 2, 60_000, '3CCC77 gone');
    process.stdout.write(`figure: a producer scaled away left list ${((performance.now() - downAt) / 1000).toFixed(1)} s after up -d (retention 15 s)\n`);
    expect({ broker: started(broker), client: started('client-1') }).toEqual(before);

    // Recreated producers keep their IDs (by replica slot), so nothing lingers as offline.
    dc(['up', '-d', '--force-recreate', '--no-deps', 'producer'], 300_000);
    const after = await a.listUntil((rows) => online(rows).length === 2, 60_000, 'two producers online after the recreate');
    expect([...after.keys()].sort()).toEqual(['1AAA99', '2BBB88']);
    expect(await a.frames(id)).toBeGreaterThan(framesBefore);

    // README: detach with Ctrl-P Ctrl-Q: the client goes on running.
    a.proc.stdin.write('\x10\x11');
    await new Promise<void>((r) => a.proc.once('exit', () => r()));
    expect(inspect('client-1', '{{.State.Running}}')).toBe('true');

    // README: a recording lands in the client's volume, written as the node user.
    const rec = run('docker-compose', ['run', '--rm', '-T', 'client-1', 'client/main.ts', '--subscribe', id, '--duration', '3', '--record', 'recordings'], { cwd: dir, timeoutMs: 120_000 });
    expect(rec.status, rec.stderr).toBe(0);
    const volume = `${inspect('client-1', '{{range .Mounts}}{{.Name}}{{end}}')}`;
    const files = run('docker', ['run', '--rm', '-v', `${volume}:/r`, 'framecast:latest', '-e',
      "for (const f of require('fs').readdirSync('/r')) console.log(f, require('fs').statSync('/r/' + f).size)"]).stdout;
    expect(files).toMatch(new RegExp(`^${id}\\.mjpeg [1-9]\\d{4,}$`, 'm'));
    expect(files).toMatch(new RegExp(`^${id}\\.wav [1-9]\\d{3,}$`, 'm'));

    // The broker crashes (SIGKILL from the host, not a docker stop or kill): its restart policy
    // brings it back, and the attached viewer's stream heals by itself.
    a = new Attached();
    attached.push(a);
    from = a.text.length;
    const killedAt = performance.now();
    process.kill(Number(inspect(broker, '{{.State.Pid}}')), 'SIGKILL');
    await a.see(new RegExp(`${id}: frames are arriving again`), 60_000, from);
    process.stdout.write(`figure: docker broker killed -> stream healed after ${((performance.now() - killedAt) / 1000).toFixed(1)} s\n`);
    expect(Number(inspect(broker, '{{.RestartCount}}'))).toBeGreaterThanOrEqual(1);

    // README: docker-compose logs broker shows the broker's log; the edges subscribed there on demand.
    expect(dc(['logs', '--no-color', 'broker'])).toMatch(/broker listening/);
    expect(dc(['logs', '--no-color', 'edge'])).toMatch(/edge: subscribing upstream on demand/);
    expect(dc(['ps', '-q', 'edge']).trim().split('\n')).toHaveLength(2);
  }, 1_500_000);
});
