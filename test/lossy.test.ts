import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MessageType, peekType, splitMjpeg } from '../protocol/index.ts';
import { LossyRelay } from './helpers/lossy-relay.ts';
import { Proc, startBroker } from './helpers/procs.ts';

const sample = splitMjpeg(readFileSync('samples/sample.mjpeg'));

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
      const [line] = await client.waitFor(/^\{"type":"summary".*\}$/, 20_000);
      const s = (JSON.parse(line) as { producers: Record<string, { frames: number; framesDropped: number; packetsLost: number; packetsExpected: number }> }).producers['1AAA99'];

      const idx = splitMjpeg(readFileSync(join(dir, '1AAA99.mjpeg'))).map((f) => sample.findIndex((x) => x.equals(f)));
      expect(idx).toHaveLength(s.frames);
      expect(idx.every((i) => i >= 0)).toBe(true); // never corrupt
      expect(idx.slice(1).every((i, k) => (i - idx[k] + sample.length) % sample.length >= 1)).toBe(true); // never out of order
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
