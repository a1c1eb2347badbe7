import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerEngine, ensureBaseImage, FROM, run } from './engine.ts';

/**
 * The README's Docker Swarm lines against a real engine: a single-node swarm, the stack file
 * deployed as it is (an origin, two edges, a producer and a viewer), and the viewer, at an edge,
 * seeing frames. Skipped, saying why, where swarm mode cannot run.
 */
const engine = dockerEngine();
const STACK = 'fcswarm';
let swarm = '';
if (engine.ok) {
  const init = run('docker', ['swarm', 'init', '--advertise-addr', '127.0.0.1']);
  const already = /already part of a swarm/.test(init.stderr);
  swarm = init.status === 0 || already ? (already ? 'joined' : 'made') : `swarm mode cannot start here: ${init.stderr.trim().split('\n').pop()}`;
}
const why = !engine.ok ? 'no Docker engine answers, and none could be started here' : swarm === 'made' || swarm === 'joined' ? '' : swarm;
if (why !== '') process.stdout.write(`test:docker swarm skipped: ${why}\n`);

async function until(what: string, probe: () => boolean, timeoutMs: number): Promise<void> {
  for (const end = performance.now() + timeoutMs; !probe();) {
    if (performance.now() > end) throw new Error(`never: ${what}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

describe.skipIf(why !== '')(`Docker Swarm on a real engine${why ? ` (skipped: ${why})` : ''}`, () => {
  let builtBase = false;
  beforeAll(() => {
    builtBase = ensureBaseImage();
    const b = run('docker', ['build', '-q', '-t', 'framecast:latest', '.'], { timeoutMs: 600_000 });
    if (b.status !== 0) throw new Error(`docker build failed: ${b.stderr}`);
  }, 700_000);

  afterAll(async () => {
    run('docker', ['stack', 'rm', STACK]);
    // The stack's network goes once its tasks are gone.
    for (let i = 0; i < 30 && run('docker', ['network', 'inspect', `${STACK}_default`]).status === 0; i++) await new Promise((r) => setTimeout(r, 1000));
    if (swarm === 'made') {
      run('docker', ['swarm', 'leave', '--force']);
      run('docker', ['network', 'rm', 'docker_gwbridge']);
    }
    run('docker', ['rmi', '-f', 'framecast:latest']);
    if (builtBase) run('docker', ['rmi', '-f', FROM]);
    engine.stop();
  }, 120_000);

  it('docker stack deploy: an origin, two edges, a producer, and a viewer at an edge seeing frames', async () => {
    const d = run('docker', ['stack', 'deploy', '-c', 'deploy/swarm/docker-stack.yml', STACK], { timeoutMs: 120_000 });
    expect(d.status, d.stderr).toBe(0);
    const logs = () => {
      const r = run('docker', ['service', 'logs', '--raw', `${STACK}_viewer`]);
      return r.stdout + r.stderr;
    };
    const deployedAt = performance.now();
    await until('the viewer sees frames', () => /1AAA99: frames are arriving/.test(logs()), 120_000);
    process.stdout.write(`figure: swarm stack deployed -> frames at the viewer after ${((performance.now() - deployedAt) / 1000).toFixed(1)} s\n`);
    const replicas = run('docker', ['service', 'ls', '--format', '{{.Name}} {{.Replicas}}']).stdout;
    expect(replicas).toMatch(new RegExp(`${STACK}_edge 2/2`));
    expect(replicas).toMatch(new RegExp(`${STACK}_origin 1/1`));
    // The viewer is at an edge, which subscribed at the origin on demand.
    expect(run('docker', ['service', 'logs', '--raw', `${STACK}_edge`]).stdout).toMatch(/^edge of origin:5000 from local ports \d+$/m);
  }, 300_000);
});
