import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encode, MediaFlag, MessageType, Track, type MediaMessage } from '../protocol/index.ts';
import { cannotForge, forger } from './helpers/forge.ts';
import { LossyRelay } from './helpers/lossy-relay.ts';
import { freeUdpPort, Proc, startBroker } from './helpers/procs.ts';
import { expectSampleFramesInOrder, summaryOf } from './helpers/recording.ts';
import { brokerStats, sessionPeer } from './helpers/udp.ts';
import { until } from './helpers/until.ts';

const dir = mkdtempSync(join(tmpdir(), 'framecast-edge-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An edge broker (PROTOCOL.md §5.5) of `upstream`, on a free port; with its upstream socket's local port. */
async function startEdge(upstream: string, args: string[] = [], env: Record<string, string> = {}): Promise<{ proc: Proc; port: number; address: string; upstreamPort: number }> {
  const proc = new Proc('broker/main.ts', ['--port', '0', '--host', '127.0.0.1', '--upstream', upstream, ...args], env);
  const [, upstreamPort] = await proc.waitFor(/^edge of .* from local ports (\d+)/);
  const [, port] = await proc.waitFor(/broker listening on [^:]+:(\d+)/);
  return { proc, port: Number(port), address: `127.0.0.1:${port}`, upstreamPort: Number(upstreamPort) };
}

/** What `list` at a broker shows for an ID: online or offline, and its viewers; null when not listed. */
async function listed(broker: string, id: string): Promise<{ online: boolean; viewers: number } | null> {
  const c = new Proc('client/main.ts', ['--broker', broker]);
  c.child.stdin.end('list\n');
  await c.exited;
  const m = c.stdoutLines.map((l) => new RegExp(`^\\s+${id}\\s+(online|offline)\\s+(\\d+) viewer`).exec(l)).find((x) => x !== null);
  return m == null ? null : { online: m[1] === 'online', viewers: Number(m[2]) };
}


describe('edge brokers (PROTOCOL.md §5.5)', () => {
  it('a tree of depth 3: viewers at an edge and at an edge of an edge get the producer\'s frames byte for byte; the origin serves one link per edge and counts the viewers below; the upstream subscription goes after the linger', async () => {
    const origin = await startBroker();
    new Proc('producer/main.ts', ['--id', '1AAA99', '--broker', origin.address, '--title', 'Test card']);
    const edge = await startEdge(origin.address, ['--upstream-linger-s', '1']);
    const deep = await startEdge(edge.address, ['--upstream-linger-s', '1']);
    // The edge of the edge lists what the origin carries, through its upstream.
    expect(await until('the deepest edge lists 1AAA99', () => listed(deep.address, '1AAA99'))).toMatchObject({ online: true });

    const atEdge = new Proc('client/main.ts', ['--broker', edge.address, '--subscribe', '1AAA99', '--record', join(dir, 'edge'), '--duration', '8']);
    const atDeep = new Proc('client/main.ts', ['--broker', deep.address, '--subscribe', '1AAA99', '--record', join(dir, 'deep'), '--duration', '8']);
    const joinedAt = performance.now();
    await atDeep.waitFor(/^1AAA99: frames are arriving/);
    process.stdout.write(`figure: first frame at the edge of an edge ${(performance.now() - joinedAt).toFixed(0)} ms after its client started (the chain subscribed on demand)\n`);
    // One link at the origin (the edge), and the audience reported up the tree: two viewers.
    const countedAt = performance.now();
    await until('the origin counts both viewers', async () => (await listed(origin.address, '1AAA99'))?.viewers === 2);
    expect((await brokerStats(await sessionPeer(origin.port), 3)).subscriptions).toBe(1);
    process.stdout.write(`figure: the origin's list counted the viewers of the edge and of its edge ${((performance.now() - countedAt) / 1000).toFixed(1)} s after the first frame\n`);
    for (const [c, sub] of [[atEdge, 'edge'], [atDeep, 'deep']] as const) {
      const s = await summaryOf(c, '1AAA99');
      expect(s.frames).toBeGreaterThan(40);
      expect(s.framesForged).toBe(0);
      expect(s.packetsLost).toBe(0);
      expectSampleFramesInOrder(join(dir, sub, '1AAA99.mjpeg'), s.frames);
    }
    // Nobody watches any more: after the linger, no edge holds a subscription upstream.
    await until('the origin has no viewer left', async () => (await listed(origin.address, '1AAA99'))?.viewers === 0);
  });

  it('a viewer back within the linger is served without a new upstream subscription; after it, the edge subscribes again; notices pass through', async () => {
    const origin = await startBroker([], { LOG_LEVEL: 'info' });
    const producer = new Proc('producer/main.ts', ['--id', '1AAA99', '--broker', origin.address]);
    const edge = await startEdge(origin.address, ['--upstream-linger-s', '3']);
    const upstreamSubscribes = () => origin.proc.stderrLines.filter((l) => l.includes('"msg":"subscribed"')).length;
    const viewer = new Proc('client/main.ts', ['--broker', edge.address, '--subscribe', '1AAA99']);
    await viewer.waitFor(/^1AAA99: frames are arriving/);
    expect(upstreamSubscribes()).toBe(1);
    viewer.write('unsubscribe 1AAA99');
    await viewer.waitFor(/^unsubscribed from 1AAA99/);
    viewer.write('subscribe 1AAA99'); // within the 3 s linger
    await viewer.waitForNext(/^subscribed to 1AAA99/);
    viewer.write('stats');
    await viewer.waitForNext(/^1AAA99: [\d.]+ fps/);
    expect(upstreamSubscribes()).toBe(1);
    // Past the linger the upstream subscription is gone; the next viewer brings it back.
    viewer.write('unsubscribe 1AAA99');
    await until('the edge unsubscribed upstream', async () => origin.proc.stderrLines.some((l) => l.includes('"msg":"unsubscribed"')));
    viewer.write('subscribe 1AAA99');
    await viewer.waitForNext(/^subscribed to 1AAA99/);
    expect(upstreamSubscribes()).toBe(2);
    // The producer ends its stream at the origin: the viewer at the edge is told.
    await producer.kill('SIGTERM');
    await viewer.waitFor(/^producer 1AAA99 ended its stream \(staying subscribed\)$/);
    void edge;
  });

  it('5% loss on the origin-to-edge link and 5% on the edge-to-client link: each hop repairs its own, and the client gets at least 99% of frames whole', async () => {
    const origin = await startBroker();
    new Proc('producer/main.ts', ['--id', '1AAA99', '--broker', origin.address]);
    const upLink = await LossyRelay.start({ upstreamPort: origin.port, dropRate: 0.05, duplicateRate: 0, reorderRate: 0, delayMs: 0, reorderDelayMs: 0, seed: 11 });
    const edge = await startEdge(`127.0.0.1:${upLink.port}`);
    const downLink = await LossyRelay.start({ upstreamPort: edge.port, dropRate: 0.05, duplicateRate: 0, reorderRate: 0, delayMs: 0, reorderDelayMs: 0, seed: 12 });
    try {
      const viewer = new Proc('client/main.ts', ['--broker', `127.0.0.1:${downLink.port}`, '--subscribe', '1AAA99', '--record', join(dir, 'lossy'), '--duration', '12']);
      const s = await summaryOf(viewer, '1AAA99', 30_000);
      const whole = s.frames / (s.frames + s.framesDropped);
      process.stdout.write(`figure: 5% + 5% loss over two hops: origin-to-edge dropped ${upLink.counts.dropped}/${upLink.counts.impairable}, edge-to-client ${downLink.counts.dropped}/${downLink.counts.impairable}; frames ${s.frames} complete, ${s.framesDropped} dropped (${(100 * whole).toFixed(1)}%); the client reported ${((100 * s.packetsLost) / s.packetsExpected).toFixed(2)}% loss\n`);
      expect(upLink.counts.dropped).toBeGreaterThan(0);
      expect(downLink.counts.dropped).toBeGreaterThan(0);
      expect(whole).toBeGreaterThanOrEqual(0.99);
      expectSampleFramesInOrder(join(dir, 'lossy', '1AAA99.mjpeg'), s.frames);
    } finally {
      upLink.close();
      downLink.close();
    }
  });

  it.skipIf(cannotForge !== null)(`MEDIA forged on the upstream link, in the upstream broker's name, never reaches the edge's viewers${cannotForge ? ` (skipped: ${cannotForge})` : ''}`, async () => {
    const origin = await startBroker();
    new Proc('producer/main.ts', ['--id', '1AAA99', '--broker', origin.address]);
    const edge = await startEdge(origin.address);
    const viewer = new Proc('client/main.ts', ['--broker', edge.address, '--subscribe', '1AAA99', '--duration', '6']);
    await viewer.waitFor(/^1AAA99: frames are arriving/);
    // A fellow viewer at the origin learns what the stream's datagrams look like.
    const spy = await sessionPeer(origin.port);
    spy.send({ type: MessageType.SUBSCRIBE, producerId: 0x1aaa99, requestId: 1 });
    const real = (await spy.next((m) => m.type === MessageType.MEDIA && m.track === Track.VIDEO)) as MediaMessage;
    // 300 frames of its own making, each one datagram, from the origin's address to the edge's upstream port.
    const f = await forger({ address: '127.0.0.1', port: origin.port });
    for (let i = 0; i < 300; i++) {
      const fake = Buffer.alloc(900, i);
      f.send(encode({ ...real, flags: MediaFlag.KEYFRAME, frameNo: real.frameNo + 5 + i, seq: real.seq + 100 + i, fragIndex: 0, fragCount: 1, frameBytes: fake.length, fragOffset: 0, payload: fake }), edge.upstreamPort);
    }
    const s = await summaryOf(viewer, '1AAA99');
    expect(s.framesForged).toBe(0); // not one of them was forwarded to the viewer
    expect(s.frames).toBeGreaterThan(50);
    const probe = await sessionPeer(edge.port);
    const stats = await brokerStats(probe, 7);
    expect(stats.framesForgedUpstream).toBeGreaterThanOrEqual(290);
    // Each forged datagram was received, and counted once more: as a drop. (What the edge holds of
    // a frame still on its way is counted when it is released: at most a frame's datagrams.)
    expect(stats['drop.FC_DROP_UNVERIFIED_FRAME']).toBeGreaterThanOrEqual(290);
    const uncounted = stats.datagramsIn - (stats.mediaIn + stats.controlIn + stats.dropped);
    expect(uncounted).toBeGreaterThanOrEqual(0);
    expect(uncounted).toBeLessThan(50);
    process.stdout.write(`figure: 300 forged frames on the upstream link: ${stats.framesForgedUpstream} refused by the edge, ${s.framesForged} reached its viewer\n`);
  });

  it('producers spread over two origins: an edge given both finds each ID where it is, and lists them all', async () => {
    const a = await startBroker();
    const b = await startBroker();
    new Proc('producer/main.ts', ['--id', '1AAA99', '--broker', a.address]);
    new Proc('producer/main.ts', ['--id', '2BBB88', '--broker', b.address, '--video', 'samples/bars.mjpeg', '--audio', 'samples/bars.wav']);
    const edge = await startEdge(`${a.address},${b.address}`);
    for (const id of ['1AAA99', '2BBB88']) expect(await until(`the edge lists ${id}`, () => listed(edge.address, id))).toMatchObject({ online: true });
    const viewer = new Proc('client/main.ts', ['--broker', edge.address, '--subscribe', '1AAA99', '--subscribe', '2BBB88', '--duration', '4']);
    const [s1, s2] = [await summaryOf(viewer, '1AAA99'), await summaryOf(viewer, '2BBB88')];
    expect(s1.frames).toBeGreaterThan(30);
    expect(s2.frames).toBeGreaterThan(30);
    // Each origin serves the one stream it has, once.
    for (const [o, id] of [[a, '1AAA99'], [b, '2BBB88']] as const) expect(await listed(o.address, id)).toMatchObject({ viewers: 1 });
  });

  it('the redirect: viewers subscribing at the origin are sent to the edges, spread by load, and watch there', async () => {
    const secret = { BROKER_EDGE_SECRET: 'only-our-edges' };
    const origin = await startBroker(['--redirect'], secret);
    new Proc('producer/main.ts', ['--id', '1AAA99', '--broker', origin.address]);
    const ports = [await freeUdpPort(), await freeUdpPort()];
    const edges = await Promise.all(ports.map((p) => startEdge(origin.address, ['--port', String(p), '--advertise', `127.0.0.1:${p}`], secret)));
    const viewers = [1, 2, 3, 4].map(() => new Proc('client/main.ts', ['--broker', origin.address, '--subscribe', '1AAA99']));
    const at = await Promise.all(viewers.map(async (v) => {
      const [, to] = await v.waitFor(/^the broker sent us to the edge (127\.0\.0\.1:\d+): subscribing there$/);
      await v.waitFor(/^1AAA99: frames are arriving/);
      return to;
    }));
    const perEdge = ports.map((p) => at.filter((a) => a === `127.0.0.1:${p}`).length);
    process.stdout.write(`figure: 4 viewers subscribing at the origin were sent ${perEdge.join(' and ')} to the two edges\n`);
    expect(perEdge).toEqual([2, 2]);
    // The origin serves the edges alone; its list counts the viewers behind them.
    expect((await brokerStats(await sessionPeer(origin.port), 4)).subscriptions).toBe(2);
    void edges;
  });

  it('an edge dies (SIGKILL): its viewers, given a list, move to the other edge and frames flow again within 3 s', async () => {
    const origin = await startBroker();
    new Proc('producer/main.ts', ['--id', '1AAA99', '--broker', origin.address]);
    const a = await startEdge(origin.address);
    const b = await startEdge(origin.address);
    const viewers = [1, 2].map(() => new Proc('client/main.ts', ['--broker', `${a.address},${b.address}`, '--subscribe', '1AAA99']));
    for (const v of viewers) await v.waitFor(/^1AAA99: frames are arriving/);
    const killedAt = performance.now();
    await a.proc.kill('SIGKILL');
    const healed = await Promise.all(viewers.map(async (v) => {
      await v.waitFor(/^1AAA99: frames are arriving again after/, 10_000);
      return (performance.now() - killedAt) / 1000;
    }));
    process.stdout.write(`figure: edge killed -> its viewers moved to the other edge, frames again after ${healed.map((t) => t.toFixed(1)).join(' and ')} s\n`);
    for (const t of healed) expect(t).toBeLessThan(3);
  });

  it('an edge whose upstream dies asks the other upstream for what it carried, and its viewers\' frames flow again', async () => {
    const a = await startBroker();
    const b = await startBroker();
    const origins = `${a.address},${b.address}`;
    new Proc('producer/main.ts', ['--id', '1AAA99', '--broker', origins]);
    const edge = await startEdge(origins);
    const viewer = new Proc('client/main.ts', ['--broker', edge.address, '--subscribe', '1AAA99']);
    await viewer.waitFor(/^1AAA99: frames are arriving/);
    const killedAt = performance.now();
    await a.proc.kill('SIGKILL');
    await edge.proc.waitFor(/an upstream broker does not answer: asking the others/, 10_000);
    const movedS = (performance.now() - killedAt) / 1000;
    await viewer.waitFor(/^1AAA99: frames are arriving again after/, 15_000);
    const healedS = (performance.now() - killedAt) / 1000;
    process.stdout.write(`figure: origin killed -> the edge gave it up after ${movedS.toFixed(1)} s; its viewer's frames flowed again after ${healedS.toFixed(1)} s (the producer moved too)\n`);
    expect(movedS).toBeLessThan(3);
    expect(healedS).toBeLessThan(5);
  });
});
