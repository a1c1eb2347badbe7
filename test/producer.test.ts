import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:dgram';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Producer } from '../producer/producer.ts';
import { loadSource, loadVideo } from '../producer/source.ts';
import { Broker } from '../broker/broker.ts';
import { FRAME_SIGNATURE_BYTES } from '../protocol/constants.ts';
import { decode, MessageType, Track } from '../protocol/index.ts';

afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

/** The producer's socket seam: records datagrams instead of sending them (no network claimed here). */
function recordingSocket(onSend: (b: Buffer) => void): { socket: Socket; sent: Buffer[] } {
  const sent: Buffer[] = [];
  return { sent, socket: { send: (b: Buffer) => { sent.push(b); onSend(b); } } as unknown as Socket };
}

describe('Producer pacing', () => {
  it('sends 720 frames in 60 s at 12 fps (±1), even when timers fire late', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    let forward: (d: Buffer) => void = () => {};
    const { socket, sent } = recordingSocket((d) => forward(d));
    const source = loadSource('samples/sample.mjpeg', 'samples/sample.wav', 12);
    // Every timer fires 5 ms late, as on a busy machine. A producer that sleeps a period after
    // each send would drift to 60000 / 88.3 = 679 frames; scheduling against the clock must not.
    const onTime = globalThis.setTimeout;
    vi.spyOn(globalThis, 'setTimeout').mockImplementation(((fn: () => void, ms?: number) => onTime(fn, (ms ?? 0) + 5)) as never);
    const clock = (): number => Date.now();
    const producer = new Producer({
      socket, clock, source,
      options: { producerId: 0x1aaa99, title: 't', fps: 12, loop: true, maxDatagramBytes: 1200, heartbeatIntervalMs: 1000, leaseIntervals: 3, secret: null, passphrase: null, latencyMs: 120 },
    });
    // Its broker: a real Broker object, fed synchronously, answering into the producer's session.
    const broker = new Broker({ socket: { send: (msg) => producer.link.handleDatagram(msg) }, clock });
    forward = (d) => broker.handleDatagram(Buffer.from(d), { address: '10.0.0.1', port: 4000 });
    producer.start();
    // The handshake and the ANNOUNCE settle through promise chains; setImmediate is not faked.
    for (let i = 0; i < 20 && producer.framesSent === 0; i++) {
      await new Promise((r) => setImmediate(r));
      vi.advanceTimersByTime(0);
    }
    expect(broker.producerCount).toBe(1);
    {
      vi.advanceTimersByTime(60_000);
      const videoFrames = new Set<number>();
      const audioChunks = new Set<number>();
      let audioBytes = 0;
      for (const d of sent) {
        const m = decode(d);
        if (m.type !== MessageType.MEDIA) continue;
        if (m.track === Track.VIDEO) videoFrames.add(m.frameNo);
        else {
          audioBytes += m.payload.length;
          audioChunks.add(m.frameNo);
        }
      }
      expect(Math.abs(videoFrames.size - 720)).toBeLessThanOrEqual(1);
      // 60 s of 8 kHz mu-law; every chunk ends with its signature (PROTOCOL.md §3.7).
      expect(Math.abs(audioBytes - FRAME_SIGNATURE_BYTES * audioChunks.size - 60 * 8000)).toBeLessThanOrEqual(1000);
      producer.stop();
    }
  });
});

const ffmpeg = spawnSync('ffmpeg', ['-version']).status === 0;
describe('Producer sources', () => {
  it.skipIf(!ffmpeg)(`converts a non-MJPEG video through ffmpeg at the requested rate${ffmpeg ? '' : ' (skipped: ffmpeg is not installed)'}`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'framecast-src-'));
    try {
      const mp4 = join(dir, 'clip.mp4');
      const r = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25:duration=2', '-pix_fmt', 'yuv420p', mp4]);
      expect(r.status).toBe(0);
      const frames = loadVideo(mp4, 10);
      expect(Math.abs(frames.length - 20)).toBeLessThanOrEqual(2); // 2 s at 10 fps; ffmpeg may pad the ends
      expect(frames[0].subarray(0, 2).toString('hex')).toBe('ffd8');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('explains a file that is neither MJPEG nor convertible', () => {
    expect(() => loadVideo('samples/sample.wav', 12)).toThrow(/sample\.wav/);
    expect(readFileSync('samples/sample.wav').length).toBeGreaterThan(0);
  });
});
