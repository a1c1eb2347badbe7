import { execFileSync, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Proc } from './helpers/procs.ts';
import { canNetns, ip, whyNoNetns } from './helpers/netns.ts';

// Three hosts on one machine: broker, producer and client each in a network namespace of its
// own, joined to the broker's by veth links on a private subnet that exists only inside them.
const hasNft = spawnSync('nft', ['--version']).status === 0;
const why = whyNoNetns;

const tag = (process.pid % 10_000).toString();
const ns = { broker: `fcb${tag}`, producer: `fcp${tag}`, client: `fcc${tag}` };
const BROKER_FOR_PRODUCER = '10.231.1.1';
const BROKER_FOR_CLIENT = '10.231.2.1';
const CLIENT_LINK = `vc${tag}`;

function inNs(name: string, cmd: string, ...args: string[]): string {
  return execFileSync('ip', ['netns', 'exec', name, cmd, ...args], { stdio: 'pipe' }).toString();
}

function setUp(): void {
  for (const n of Object.values(ns)) {
    ip('netns', 'add', n);
    ip('-n', n, 'link', 'set', 'lo', 'up');
  }
  const link = (peer: string, bIf: string, pIf: string, subnet: number): void => {
    ip('link', 'add', bIf, 'type', 'veth', 'peer', 'name', pIf);
    ip('link', 'set', bIf, 'netns', ns.broker);
    ip('link', 'set', pIf, 'netns', peer);
    ip('-n', ns.broker, 'addr', 'add', `10.231.${subnet}.1/24`, 'dev', bIf);
    ip('-n', peer, 'addr', 'add', `10.231.${subnet}.2/24`, 'dev', pIf);
    ip('-n', ns.broker, 'link', 'set', bIf, 'up');
    ip('-n', peer, 'link', 'set', pIf, 'up');
  };
  link(ns.producer, `vbp${tag}`, `vp${tag}`, 1);
  link(ns.client, `vbc${tag}`, CLIENT_LINK, 2);
}

function tearDown(): void {
  for (const n of Object.values(ns)) spawnSync('ip', ['netns', 'del', n]);
}

describe.skipIf(!canNetns)(`across network namespaces${canNetns ? '' : ` (skipped: ${why})`}`, () => {
  beforeAll(() => {
    tearDown(); // leftovers of a killed run
    setUp();
  });
  afterAll(tearDown);

  let broker: Proc;
  beforeEach(async () => {
    broker = new Proc('broker/main.ts', ['--port', '5000'], { LOG_LEVEL: 'info' }, ['ip', 'netns', 'exec', ns.broker]);
    await broker.waitFor(/broker listening/);
  });

  it('streams across hosts; a client whose link is cut is dropped within its lease and resubscribes by itself', async () => {
    const producer = new Proc('producer/main.ts', ['--id', '1AAA99', '--broker', `${BROKER_FOR_PRODUCER}:5000`], { LOG_LEVEL: 'info' }, ['ip', 'netns', 'exec', ns.producer]);
    const client = new Proc('client/main.ts', ['--broker', `${BROKER_FOR_CLIENT}:5000`], {}, ['ip', 'netns', 'exec', ns.client]);
    await producer.waitFor(/"msg":"announced"/);
    client.write('subscribe 1AAA99');
    await client.waitFor(/^1AAA99: frames are arriving/);

    ip('-n', ns.client, 'link', 'set', CLIENT_LINK, 'down');
    const cutAt = performance.now();
    await broker.waitFor(/"reason":"lease","msg":"client left"/, 6000);
    const droppedMs = performance.now() - cutAt;
    process.stdout.write(`figure: netns client dropped ${droppedMs.toFixed(0)} ms after its link went down\n`);
    expect(droppedMs).toBeLessThan(3500);

    ip('-n', ns.client, 'link', 'set', CLIENT_LINK, 'up');
    const upAt = performance.now();
    await client.waitFor(/^resubscribed to 1AAA99$/, 10_000);
    await client.waitFor(/^1AAA99: frames are arriving again/, 10_000);
    process.stdout.write(`figure: netns client streaming again ${(performance.now() - upAt).toFixed(0)} ms after its link came back\n`);
  });

  it.skipIf(!hasNft)(`reports the loss nftables inflicts on its link${hasNft ? '' : ' (skipped: nftables is not installed)'}`, async () => {
    // Drop 5% of the MEDIA datagrams (UDP payload starting 46 43 01 01) reaching the client,
    // counting first transmissions (flags byte 13 without RETRANSMIT 0x02) and retransmissions apart.
    inNs(ns.client, 'nft', 'add', 'table', 'inet', 'fcloss');
    inNs(ns.client, 'nft', 'add', 'chain', 'inet', 'fcloss', 'input', '{ type filter hook input priority 0; }');
    for (const flag of ['0x0', '0x2']) {
      inNs(ns.client, 'nft', 'add', 'rule', 'inet', 'fcloss', 'input', 'udp', 'sport', '5000', '@th,64,32', '0x46430201',
        '@th,168,8', '&', '0x2', '==', flag, 'numgen', 'random', 'mod', '100', '<', '5', 'counter', 'drop');
    }
    try {
      const producer = new Proc('producer/main.ts', ['--id', '2BBB88', '--broker', `${BROKER_FOR_PRODUCER}:5000`], { LOG_LEVEL: 'info' }, ['ip', 'netns', 'exec', ns.producer]);
      await producer.waitFor(/"msg":"announced"/);
      const client = new Proc('client/main.ts', ['--broker', `${BROKER_FOR_CLIENT}:5000`, '--subscribe', '2BBB88', '--duration', '6'], {}, ['ip', 'netns', 'exec', ns.client]);
      const [line] = await client.waitFor(/^\{"type":"summary".*\}$/, 15_000);
      const s = (JSON.parse(line) as { producers: Record<string, { packetsLost: number; packetsExpected: number; frames: number; framesDropped: number }> }).producers['2BBB88'];
      const [dropped, droppedRetransmits] = [...inNs(ns.client, 'nft', 'list', 'chain', 'inet', 'fcloss', 'input').matchAll(/counter packets (\d+)/g)].map((m) => Number(m[1]));
      const measured = s.packetsLost / s.packetsExpected;
      const inflicted = dropped / s.packetsExpected;
      process.stdout.write(`figure: nftables dropped ${dropped} of ${s.packetsExpected} first transmissions (${(100 * inflicted).toFixed(2)}%) and ${droppedRetransmits} retransmissions; ` +
        `client counted ${s.packetsLost} lost (${(100 * measured).toFixed(2)}%), ${s.frames} frames complete, ${s.framesDropped} dropped\n`);
      expect(dropped).toBeGreaterThan(0);
      expect(Math.abs(measured - inflicted)).toBeLessThan(0.01);
      // Seq-based counting misses only drops after the last datagram received.
      expect(s.packetsLost).toBeLessThanOrEqual(dropped);
      expect(dropped - s.packetsLost).toBeLessThanOrEqual(3);
    } finally {
      spawnSync('ip', ['netns', 'exec', ns.client, 'nft', 'delete', 'table', 'inet', 'fcloss']);
    }
  });
});
