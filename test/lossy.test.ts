import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MessageType, peekType } from '../protocol/index.ts';
import { LossyRelay } from './helpers/lossy-relay.ts';
import { Proc, startBroker } from './helpers/procs.ts';
import { expectSampleFramesInOrder, summaryOf } from './helpers/recording.ts';

describe('through a lossy relay (broker to client)', () => {
  it('with 5% loss, 2% duplicates and 5% reordering: frames are never corrupt or out of order, and the reported loss matches the relay\'s', async () => {
    const broker = await startBroker();
    const producer = new Proc('producer/main.ts', ['--id', '1AAA99', '--broker', broker.address], { LOG_LEVEL: 'info' });
    await producer.waitFor(/"msg":"announced"/);
    const relay = await LossyRelay.start({
      upstreamPort: broker.port, dropRate: 0.05, duplicateRate: 0.02, reorderRate: 0.05, delayMs: 0, reorderDelayMs: 15,
      impair: (d) => peekType(d) === MessageType.MEDIA, seed: 0xbeef,
    });
    const dir = mkdtempSync(join(tmpdir(), 'framecast-lossy-'));
    try {
      const client = new Proc('client/main.ts', ['--broker', `127.0.0.1:${relay.port}`, '--subscribe', '1AAA99', '--duration', '6', '--record', dir]);
      const s = await summaryOf(client, '1AAA99', 20_000);
      expectSampleFramesInOrder(join(dir, '1AAA99.mjpeg'), s.frames);
      const relayLoss = relay.counts.dropped / relay.counts.impairable;
      const reported = s.packetsLost / s.packetsExpected;
      process.stdout.write(`figure: lossy relay dropped ${relay.counts.dropped}/${relay.counts.impairable} (${(100 * relayLoss).toFixed(2)}%), ` +
        `client reported ${(100 * reported).toFixed(2)}%; frames complete ${s.frames}, dropped ${s.framesDropped} (${(100 * s.frames / (s.frames + s.framesDropped)).toFixed(1)}% complete, no recovery yet)\n`);
      expect(relay.counts.dropped).toBeGreaterThan(0);
      expect(Math.abs(reported - relayLoss)).toBeLessThan(0.01);
    } finally {
      relay.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
