import dgram from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { FramecastClient } from '../client/client.ts';
import { LossyRelay } from './helpers/lossy-relay.ts';
import { Proc, startBroker } from './helpers/procs.ts';

/**
 * Requests that never give up (PROTOCOL.md §5.1): 100 client starts, each through a link of its own
 * that loses 20% of datagrams both ways (handshake, SUBSCRIBE, ACK and MEDIA alike), to a real
 * broker process with a real producer. Every start must end subscribed. The clients are the
 * client program's FramecastClient on real sockets in this process, ten at once: 100 child
 * processes would spend most of a minute starting TypeScript. Version 1: 8 of 163 never subscribed.
 */
const STARTS = 100;
const AT_ONCE = 10;
const LOSS = 0.2;

async function startOne(brokerPort: number, seed: number): Promise<number> {
  const relay = await LossyRelay.start({ upstreamPort: brokerPort, dropRate: LOSS, upDropRate: LOSS, duplicateRate: 0, reorderRate: 0, delayMs: 0, reorderDelayMs: 0, seed });
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => socket.connect(relay.port, '127.0.0.1', () => r())));
  const client = new FramecastClient({
    socket, clock: () => performance.now(),
    options: { heartbeatIntervalMs: 1000, leaseIntervals: 3, maxDatagramBytes: 1200, latencyMs: 120 },
  });
  socket.on('message', (m) => client.link.handleDatagram(m));
  try {
    const startedMs = performance.now();
    const subscribed = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const sub = client.subscriptions.get(0x1aaa99);
        reject(new Error(`client ${seed} not subscribed after 30 s: session ${client.link.session === null ? 'none' : 'open'}, ` +
          `reachable ${client.link.reachable}, subscription ${sub === undefined ? 'none' : `active ${sub.active} waiting ${sub.waiting} run ${sub.run !== null}`}`));
      }, 30_000);
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      // Accepted by its first SUBSCRIBE, by asking again, or by subscribing again in a new session
      // (the broker may end a session whose heartbeats this loss kept from it).
      client.on('accepted', (sub) => sub.id === 0x1aaa99 && done());
      void client.subscribe(0x1aaa99).then((r) => r.ok && done());
    });
    client.start();
    await subscribed;
    return performance.now() - startedMs;
  } finally {
    client.close();
    socket.close();
    relay.close();
  }
}

describe('requests that never give up (PROTOCOL.md §5.1)', () => {
  it(`${STARTS} client starts through 20% loss both ways: every one subscribes`, async () => {
    const broker = await startBroker();
    const producer = new Proc('producer/main.ts', ['--id', '1AAA99', '--broker', broker.address], { LOG_LEVEL: 'info' });
    await producer.waitFor(/"msg":"announced"/);
    const times: number[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < STARTS) times.push(await startOne(broker.port, 1000 + next++));
    };
    await Promise.all(Array.from({ length: AT_ONCE }, worker));
    times.sort((a, b) => a - b);
    const pct = (p: number): number => times[Math.min(times.length - 1, Math.floor(p * times.length))];
    process.stdout.write(`figure: ${STARTS} client starts through ${100 * LOSS}% loss both ways: all subscribed; time to subscribe median ${pct(0.5).toFixed(0)} ms, ` +
      `p90 ${pct(0.9).toFixed(0)} ms, max ${times[times.length - 1].toFixed(0)} ms\n`);
    expect(times).toHaveLength(STARTS);
  }, 240_000);
});
