import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Proc } from './helpers/procs.ts';
import { canNetns, ip, whyNoNetns } from './helpers/netns.ts';

// A broker that comes back at a new address under the same name, as a recreated container or a
// rescheduled pod does (PROTOCOL.md §5.1). Everything runs in a network namespace of the test's own; the
// name lives in that namespace's /etc/hosts (`ip netns exec` mounts /etc/netns/NAME/hosts there),
// rewritten in place when the broker moves.
const why = whyNoNetns;

const ns = `fcm${process.pid % 10_000}`;
const HOSTS = `/etc/netns/${ns}/hosts`;
const NAME = 'broker.framecast.test';
const OLD = '10.231.9.1';
const NEW = '10.231.9.2';

function pointNameAt(address: string): void {
  writeFileSync(HOSTS, `127.0.0.1 localhost\n${address} ${NAME}\n`); // in place: the mount sees it
}
function tearDown(): void {
  spawnSync('ip', ['netns', 'del', ns]);
  rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
}
const inNs = ['ip', 'netns', 'exec', ns];
function broker(address: string): Proc {
  return new Proc('broker/main.ts', ['--host', address, '--port', '5000'], { LOG_LEVEL: 'info' }, inNs);
}

describe.skipIf(!canNetns)(`a broker that moves${canNetns ? '' : ` (skipped: ${why})`}`, () => {
  beforeAll(() => {
    tearDown();
    ip('netns', 'add', ns);
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    ip('-n', ns, 'addr', 'add', `${OLD}/32`, 'dev', 'lo');
    mkdirSync(`/etc/netns/${ns}`, { recursive: true });
    pointNameAt(OLD);
  });
  afterAll(tearDown);

  it('is found again at its new address: producers and clients heal within 3 s of it listening there', async () => {
    const first = broker(OLD);
    await first.waitFor(/broker listening/);
    const p = new Proc('producer/main.ts', ['--id', '1AAA99', '--broker', `${NAME}:5000`], { LOG_LEVEL: 'info' }, inNs);
    const c = new Proc('client/main.ts', ['--broker', `${NAME}:5000`, '--subscribe', '1AAA99', '--status-interval', '0'], {}, inNs);
    await p.waitFor(/"msg":"announced"/);
    await c.waitFor(/^1AAA99: frames are arriving/);

    // The old broker dies and its address goes with it; a second later the name points elsewhere.
    await first.kill('SIGKILL');
    ip('-n', ns, 'addr', 'del', `${OLD}/32`, 'dev', 'lo');
    await new Promise((r) => setTimeout(r, 1000));
    ip('-n', ns, 'addr', 'add', `${NEW}/32`, 'dev', 'lo');
    pointNameAt(NEW);
    const second = broker(NEW);
    await second.waitFor(/broker listening/);
    const listeningMs = performance.now();
    const announced = p.waitForNext(/"msg":"announced"/, 10_000).then(() => performance.now() - listeningMs);
    const streaming = c.waitForNext(/^1AAA99: frames are arriving again/, 10_000).then(() => performance.now() - listeningMs);
    const [producerMs, clientMs] = await Promise.all([announced, streaming]);
    process.stdout.write(`figure: broker moved from ${OLD} to ${NEW} under one name: producer announced there ${producerMs.toFixed(0)} ms, ` +
      `client streaming again ${clientMs.toFixed(0)} ms after it listened\n`);
    expect(c.stdoutLines.some((l) => l.includes(`resolves to ${NEW} now: following it`))).toBe(true);
    // Version 1 resolved the name once: no heal in 120 s.
    expect(producerMs).toBeLessThan(3000);
    expect(clientMs).toBeLessThan(3000);
  }, 40_000);
});
