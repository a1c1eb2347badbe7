import dgram from 'node:dgram';
import { describe, expect, it } from 'vitest';
import type { EventEmitter } from 'node:events';
import { FramecastClient } from '../client/client.ts';
import { Producer } from '../producer/producer.ts';
import { loadSource } from '../producer/source.ts';
import { SAMPLE_FRAMES } from './helpers/recording.ts';
import { startBroker } from './helpers/procs.ts';

async function connected(port: number): Promise<dgram.Socket> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => socket.connect(port, '127.0.0.1', () => r())));
  return socket;
}

/**
 * The client core without a terminal: what it tells its outputs are facts with their data (a
 * frame's producer, number, timestamp and JPEG; audio chunks; online, offline), no sentences.
 * A real broker process, and a real producer and client on sockets in this process.
 */
describe('client core', () => {
  it('emits accepted, each frame with its number, timestamp and JPEG in order, audio chunks, and offline when the producer ends', async () => {
    const broker = await startBroker();
    const pSocket = await connected(broker.port);
    const cSocket = await connected(broker.port);
    const producer = new Producer({
      socket: pSocket, clock: () => performance.now(), source: loadSource('samples/sample.mjpeg', 'samples/sample.wav', 12),
      options: { producerId: 0x1aaa99, title: 'core', fps: 12, loop: true, maxDatagramBytes: 1200, heartbeatIntervalMs: 1000, leaseIntervals: 3, secret: null, passphrase: null, latencyMs: 120 },
    });
    pSocket.on('message', (m) => producer.link.handleDatagram(m));
    const client = new FramecastClient({ socket: cSocket, clock: () => performance.now(), options: { heartbeatIntervalMs: 1000, leaseIntervals: 3, maxDatagramBytes: 1200, latencyMs: 120 } });
    cSocket.on('message', (m) => client.link.handleDatagram(m));
    const facts: string[] = [];
    const frames: { id: number; frameNo: number; timestampMs: number; data: Buffer }[] = [];
    let audio = 0;
    const events = client as unknown as EventEmitter;
    for (const name of ['accepted', 'firstFrame', 'online', 'offline', 'closed']) events.on(name, () => facts.push(name));
    client.on('frame', (sub, f) => frames.push({ id: sub.id, frameNo: f.frameNo, timestampMs: f.timestampMs, data: f.data }));
    client.on('audio', (sub, chunk) => {
      if (sub.id === 0x1aaa99 && chunk.data.length > 0) audio++;
    });
    const ended = new Promise<boolean>((r) => client.on('offline', (_id, e) => r(e)));
    try {
      producer.start();
      client.start();
      await new Promise<void>((r) => producer.once('announced', () => r()));
      expect((await client.subscribe(0x1aaa99)).ok).toBe(true);
      while (frames.length < 30) await new Promise<void>((r) => client.once('frame', () => r()));
      producer.stop();
      expect(await ended).toBe(true);
      client.close();

      expect(facts.slice(0, 2)).toEqual(['accepted', 'firstFrame']);
      expect(facts.slice(-2)).toEqual(['offline', 'closed']);
      expect(audio).toBeGreaterThan(10);
      // Each frame is the sample's, in order; numbers and timestamps rise one period at a time.
      const start = SAMPLE_FRAMES.findIndex((f) => f.equals(frames[1].data));
      expect(start).toBeGreaterThanOrEqual(0);
      for (let i = 1; i < frames.length; i++) {
        expect(frames[i].id).toBe(0x1aaa99);
        expect(frames[i].data.equals(SAMPLE_FRAMES[(start + i - 1) % SAMPLE_FRAMES.length])).toBe(true);
        if (i > 1) {
          expect(frames[i].frameNo).toBe(frames[i - 1].frameNo + 1);
          expect(frames[i].timestampMs - frames[i - 1].timestampMs).toBeCloseTo(1000 / 12, -1);
        }
      }
    } finally {
      producer.stop();
      client.close();
      pSocket.close();
      cSocket.close();
    }
  });
});
