import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canNetns, ip, whyNoNetns } from './helpers/netns.ts';
import { Proc } from './helpers/procs.ts';
import { expectSampleFramesInOrder, summaryOf } from './helpers/recording.ts';

/**
 * A tree of brokers across hosts (PROTOCOL.md §5.5): an origin, two edges, a producer and four
 * clients, each in a network namespace of its own, all on one bridged subnet that exists only
 * inside them. Two clients watch through each edge.
 */
const tag = (process.pid % 10_000).toString();
const hosts = { origin: 1, edgeA: 2, edgeB: 3, producer: 4, c1: 11, c2: 12, c3: 13, c4: 14 } as const;
type Host = keyof typeof hosts;
const nsOf = (h: Host | 'switch') => `fct${h}${tag}`;
const addr = (h: Host) => `10.232.0.${hosts[h]}`;
const wrap = (h: Host) => ['ip', 'netns', 'exec', nsOf(h)];
const dir = mkdtempSync(join(tmpdir(), 'framecast-tree-'));

function setUp(): void {
  ip('netns', 'add', nsOf('switch'));
  ip('-n', nsOf('switch'), 'link', 'add', 'br0', 'type', 'bridge');
  ip('-n', nsOf('switch'), 'link', 'set', 'br0', 'up');
  for (const h of Object.keys(hosts) as Host[]) {
    const n = nsOf(h);
    ip('netns', 'add', n);
    ip('-n', n, 'link', 'set', 'lo', 'up');
    const inside = `t${hosts[h]}h${tag}`;
    const port = `t${hosts[h]}s${tag}`;
    ip('link', 'add', inside, 'type', 'veth', 'peer', 'name', port);
    ip('link', 'set', inside, 'netns', n);
    ip('link', 'set', port, 'netns', nsOf('switch'));
    ip('-n', nsOf('switch'), 'link', 'set', port, 'master', 'br0');
    ip('-n', nsOf('switch'), 'link', 'set', port, 'up');
    ip('-n', n, 'addr', 'add', `${addr(h)}/24`, 'dev', inside);
    ip('-n', n, 'link', 'set', inside, 'up');
  }
}

function tearDown(): void {
  for (const h of [...Object.keys(hosts), 'switch'] as (Host | 'switch')[]) spawnSync('ip', ['netns', 'del', nsOf(h)]);
}

/** The origin's Prometheus figures, fetched from the producer's host. */
function originMetrics(): Record<string, number> {
  const text = execFileSync('ip', ['netns', 'exec', nsOf('producer'), process.execPath, '-e',
    `fetch('http://${addr('origin')}:9100/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))`], { encoding: 'utf8' });
  return Object.fromEntries(text.split('\n').filter((l) => l.startsWith('framecast_') && !l.includes('{')).map((l) => [l.split(' ')[0], Number(l.split(' ')[1])]));
}

describe.skipIf(!canNetns)(`a tree of brokers across hosts${canNetns ? '' : ` (skipped: ${whyNoNetns})`}`, () => {
  beforeAll(() => {
    tearDown(); // leftovers of a killed run
    setUp();
  });
  afterAll(() => {
    tearDown();
    rmSync(dir, { recursive: true, force: true });
  });

  it('four clients through two edges record the sample byte for byte, and the origin sends each frame once per edge, not per viewer', async () => {
    const origin = new Proc('broker/main.ts', ['--port', '5000', '--metrics', '0.0.0.0:9100'], {}, wrap('origin'));
    await origin.waitFor(/broker listening/);
    const edges = (['edgeA', 'edgeB'] as const).map((h) => new Proc('broker/main.ts', ['--port', '5000', '--upstream', `${addr('origin')}:5000`], {}, wrap(h)));
    for (const e of edges) await e.waitFor(/broker listening/);
    new Proc('producer/main.ts', ['--id', '1AAA99', '--broker', `${addr('origin')}:5000`], {}, wrap('producer'));
    const clients = (['c1', 'c2', 'c3', 'c4'] as const).map((h, i) => new Proc('client/main.ts',
      ['--broker', `${addr(i < 2 ? 'edgeA' : 'edgeB')}:5000`, '--subscribe', '1AAA99', '--record', join(dir, h), '--duration', '6'], {}, wrap(h)));
    for (const c of clients) await c.waitFor(/^1AAA99: frames are arriving/, 15_000);
    const before = originMetrics();
    await new Promise((r) => setTimeout(r, 2000)); // two seconds of the stream, counted at the origin
    const after = originMetrics();
    const sent = after.framecast_datagrams_sent_total - before.framecast_datagrams_sent_total;
    const media = after.framecast_media_datagrams_received_total - before.framecast_media_datagrams_received_total;
    process.stdout.write(`figure: a tree across 8 hosts: the origin took ${media} media datagrams and sent ${sent} in 2 s (${(sent / media).toFixed(2)} per datagram) for 4 viewers behind 2 edges\n`);
    // Two copies of each datagram (one per edge) and a little control, whatever the viewers.
    expect(sent / media).toBeGreaterThan(1.9);
    expect(sent / media).toBeLessThan(2.3);
    expect(after.framecast_subscriptions).toBe(2);
    for (const [i, c] of clients.entries()) {
      const s = await summaryOf(c, '1AAA99');
      expect(s.packetsLost).toBe(0);
      expectSampleFramesInOrder(join(dir, `c${i + 1}`, '1AAA99.mjpeg'), s.frames);
    }
  });
});
