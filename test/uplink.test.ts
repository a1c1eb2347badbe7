import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MessageType, peekType } from '../protocol/index.ts';
import { LossyRelay } from './helpers/lossy-relay.ts';
import { Proc, startBroker } from './helpers/procs.ts';
import { expectSampleFramesInOrder, summaryOf } from './helpers/recording.ts';

/**
 * Loss recovery on the uplink (PROTOCOL.md §3.6): the producer reaches the broker
 * through a relay that drops a share of everything it sends (MEDIA, repairs and control alike),
 * as a creator's home connection would; the client may have a lossy link of its own. 15 s at
 * 12 fps (180 frames) each: 99% means at most one frame lost.
 */
async function throughUplink(o: { up: number; down: number; seed: number; producerLatencyMs?: number }) {
  const broker = await startBroker();
  const upRelay = await LossyRelay.start({
    upstreamPort: broker.port, dropRate: 0, duplicateRate: 0, reorderRate: 0, delayMs: 0, reorderDelayMs: 0, seed: o.seed, upDropRate: o.up,
  });
  const downRelay = await LossyRelay.start({
    upstreamPort: broker.port, dropRate: o.down, duplicateRate: 0, reorderRate: 0, delayMs: 0, reorderDelayMs: 0,
    impair: (d) => peekType(d) === MessageType.MEDIA, seed: o.seed + 1,
  });
  const dir = mkdtempSync(join(tmpdir(), 'framecast-uplink-'));
  try {
    const pArgs = ['--id', '1AAA99', '--broker', `127.0.0.1:${upRelay.port}`];
    if (o.producerLatencyMs !== undefined) pArgs.push('--latency-ms', String(o.producerLatencyMs));
    const producer = new Proc('producer/main.ts', pArgs, { LOG_LEVEL: 'info' });
    await producer.waitFor(/"msg":"announced"/, 15_000);
    const client = new Proc('client/main.ts', ['--broker', `127.0.0.1:${downRelay.port}`, '--subscribe', '1AAA99', '--duration', '15', '--record', dir]);
    const s = await summaryOf(client, '1AAA99', 30_000);
    expectSampleFramesInOrder(join(dir, '1AAA99.mjpeg'), s.frames);
    await producer.kill('SIGTERM');
    const stopped = producer.stderrLines.find((l) => l.includes('"msg":"stopped"'));
    const repairs = stopped === undefined ? null : (JSON.parse(stopped) as { repairs: { naks: number; sent: number } }).repairs;
    const upLoss = upRelay.up.mediaFirstDropped / upRelay.up.mediaFirst;
    const downLoss = downRelay.counts.impairableFirst === 0 ? 0 : downRelay.counts.droppedFirst / downRelay.counts.impairableFirst;
    const reported = s.packetsLost / s.packetsExpected;
    const complete = s.frames / (s.frames + s.framesDropped);
    process.stdout.write(`figure: uplink ${(100 * o.up).toFixed(0)}% + downlink ${(100 * o.down).toFixed(0)}%${o.producerLatencyMs === 0 ? ' (producer keeps no history)' : ''}: ` +
      `uplink dropped ${upRelay.up.mediaFirstDropped}/${upRelay.up.mediaFirst} MEDIA (${(100 * upLoss).toFixed(2)}%), producer sent ${repairs?.sent ?? '?'} repairs for ${repairs?.naks ?? '?'} NAKs; ` +
      `downlink dropped ${(100 * downLoss).toFixed(2)}%; client reported ${(100 * reported).toFixed(2)}% loss, ${s.retransmitsReceived} retransmissions; ` +
      `frames ${s.frames} complete, ${s.framesDropped} dropped (${(100 * complete).toFixed(1)}%)\n`);
    return { upLoss, downLoss, reported, complete, s, repairs };
  } finally {
    upRelay.close();
    downRelay.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('loss on the producer-to-broker link is repaired (PROTOCOL.md §3.6)', () => {
  // The four runs at once (each its own broker, producer, relays and client, at 12 fps): the
  // figures are the same as one after another, in a quarter of the time.
  it('1% and 5% uplink loss: at least 99% of frames, byte-identical, the client reporting only its own clean link; 5% + 5% on its link: at least 98%; a producer keeping no history: not', async () => {
    const [one, five, both, none] = await Promise.all([
      throughUplink({ up: 0.01, down: 0, seed: 0x1234 }),
      throughUplink({ up: 0.05, down: 0, seed: 0x2345 }),
      throughUplink({ up: 0.05, down: 0.05, seed: 0x3456 }),
      throughUplink({ up: 0.05, down: 0, seed: 0x2345, producerLatencyMs: 0 }),
    ]);
    expect(one.upLoss).toBeGreaterThan(0.005);
    expect(one.repairs?.sent).toBeGreaterThan(0);
    expect(one.complete).toBeGreaterThanOrEqual(0.99);
    expect(one.reported).toBeLessThan(0.003);

    expect(five.upLoss).toBeGreaterThan(0.03);
    expect(five.complete).toBeGreaterThanOrEqual(0.99);
    expect(five.reported).toBeLessThan(0.01);

    expect(both.complete).toBeGreaterThanOrEqual(0.98);
    expect(Math.abs(both.reported - both.downLoss)).toBeLessThan(0.01);

    // The test can tell: without the producer's history, 5% uplink loss costs whole frames.
    expect(none.repairs?.sent).toBe(0);
    expect(none.complete).toBeLessThan(0.9);
  }, 60_000);
});
