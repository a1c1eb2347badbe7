import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encode, GoodbyeReason, MediaPacketizer, MessageType, NoticeEvent, Role, Status, Track, type Message } from '../protocol/index.ts';
import { xorshift32 } from './helpers/prng.ts';
import { Proc, startBroker } from './helpers/procs.ts';
import { expectSampleFramesInOrder, SAMPLE_FRAMES as sample, summaryOf } from './helpers/recording.ts';
import { brokerStats, rawPeer, sessionPeer } from './helpers/udp.ts';


function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}
/** Datagrams the kernel dropped for a full receive buffer on a local UDP port (/proc/net/udp "drops"). */
function kernelDrops(port: number): number {
  const hexPort = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols[1]?.endsWith(hexPort)) return Number(cols[cols.length - 1]);
  }
  return 0;
}

/** Deterministic generator of random and mutated datagrams, built with protocol/ (no second encoder). */
function garbage(seed: number): () => Buffer {
  const rand = xorshift32(seed);
  const meta = { title: 'x', video: { codec: 'mjpeg', width: 1, height: 1, fps: 1 }, audio: null };
  const seeds: Buffer[] = [
    ...new MediaPacketizer({ producerId: 0x1aaa99, epoch: 9, maxDatagramBytes: 1200 }).packetize(Track.VIDEO, sample[0], 0, 1),
    ...([
      { type: MessageType.ANNOUNCE, producerId: 0x1aaa99, requestId: 1, epoch: 9, frameKey: Buffer.alloc(32, 1), auth: Buffer.alloc(0), metadata: meta },
      { type: MessageType.SUBSCRIBE, producerId: 0x1aaa99, requestId: 2 },
      { type: MessageType.HEARTBEAT, producerId: 0x1aaa99, requestId: 0, role: Role.PRODUCER },
      { type: MessageType.HELLO, producerId: 0, requestId: 3, token: Buffer.alloc(20, 7), publicKey: Buffer.alloc(32, 9) },
      { type: MessageType.GOODBYE, producerId: 0x1aaa99, requestId: 0, reason: GoodbyeReason.NORMAL },
      { type: MessageType.NOTICE, producerId: 0x1aaa99, requestId: 0, event: NoticeEvent.PRODUCER_ENDED },
      { type: MessageType.ACK, producerId: 0, requestId: 4, status: Status.OK, ackedType: MessageType.HELLO, detail: {} },
    ] as Message[]).map((m) => encode(m)),
  ];
  return () => {
    const kind = rand();
    if (kind < 0.3) {
      const b = Buffer.alloc(Math.floor(rand() * 1400));
      for (let i = 0; i < b.length; i++) b[i] = Math.floor(rand() * 256);
      return b;
    }
    const b = Buffer.from(seeds[Math.floor(rand() * seeds.length)]);
    const flips = 1 + Math.floor(rand() * 6);
    for (let f = 0; f < flips; f++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
    return rand() < 0.3 ? b.subarray(0, Math.floor(rand() * b.length)) : b;
  };
}

describe('hostile input', () => {
  it('survives 200,000 random and mutated datagrams at the broker and the client while a stream flows', async () => {
    // The per-address control rate limit is lifted so that every datagram reaches the decoder.
    const broker = await startBroker(['--max-control-rate', '1000000']);
    const producer = new Proc('producer/main.ts', ['--id', '1AAA99', '--broker', broker.address], { LOG_LEVEL: 'info' });
    await producer.waitFor(/"msg":"announced"/);
    const dir = mkdtempSync(join(tmpdir(), 'framecast-hostile-'));
    try {
      const client = new Proc('client/main.ts', ['--broker', broker.address, '--subscribe', '1AAA99', '--record', dir], { LOG_LEVEL: 'info' });
      const [, clientPort] = await client.waitFor(/"localPort":(\d+)/);
      await client.waitFor(/^1AAA99: frames are arriving/);
      const observer = await sessionPeer(broker.port);
      const before = await brokerStats(observer, 1);
      const rssBefore = rssKiB(broker.proc.child.pid!);
      const dropsBefore = kernelDrops(broker.port);

      const attacker = await rawPeer(broker.port);
      const next = garbage(0xf00d);
      const total = 200_000;
      let toBroker = 0;
      // ~40,000 datagrams a second: hostile, but below what the kernel would shed for us.
      for (let sent = 0; sent < total; sent += 400) {
        for (let i = 0; i < 400; i++) {
          if (i % 4 === 3) attacker.sendRaw(next(), Number(clientPort));
          else {
            attacker.sendRaw(next());
            toBroker++;
          }
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      // Everything sent has been received or shed once a request sent after it is answered. The
      // observer sent no heartbeats, so its lease lapsed: a fresh one proves its address again.
      const after = await brokerStats(await sessionPeer(broker.port), 2);
      const shed = kernelDrops(broker.port) - dropsBefore;
      const rssAfter = rssKiB(broker.proc.child.pid!);

      // Counters add up: every datagram counted exactly once, every garbage datagram accounted for.
      expect(after.datagramsIn).toBe(after.mediaIn + after.controlIn + after.dropped);
      expect(after.datagramsIn - before.datagramsIn).toBeGreaterThanOrEqual(toBroker - shed);
      expect(after.dropped - before.dropped).toBeGreaterThan(toBroker * 0.9 - shed);
      expect(rssAfter - rssBefore).toBeLessThan(64 * 1024); // bounded: no per-garbage state
      process.stdout.write(`figure: hostile ${toBroker} to broker (${shed} shed by the kernel), ${total - toBroker} to client; broker dropped ${after.dropped - before.dropped}, RSS ${rssBefore} -> ${rssAfter} KiB\n`);

      // Both stay up and the stream is unharmed: it still flows, and every frame recorded is a sample frame, in order.
      expect(broker.proc.child.exitCode).toBeNull();
      client.write('stats');
      await client.waitFor(/^1AAA99: .*frames \d+ complete/);
      client.child.stdin.end();
      const s = await summaryOf(client, '1AAA99', 10_000);
      expectSampleFramesInOrder(join(dir, '1AAA99.mjpeg'), s.frames);
      expect(s.frames).toBeGreaterThan(40); // ~5 s at 12 fps
      expect(s.framesDropped).toBeLessThanOrEqual(Math.ceil(s.frames * 0.01));
      process.stdout.write(`figure: stream during the barrage: ${s.frames} frames, ${s.framesDropped} dropped\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
