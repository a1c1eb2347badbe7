import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { encode, MessageType, Role, Status, Track } from '../protocol/index.ts';
import { Proc, startBroker } from './helpers/procs.ts';
import { sessionPeer } from './helpers/udp.ts';

/** Resident memory of a process, from /proc (Linux). */
function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? 0 : Number(m[1]) * 1024;
}

const CEILING_MB = 64;
/**
 * Received datagrams the broker let go but the collector has not reclaimed yet: V8 collects
 * once external memory has grown by its soft limit (64 MiB) since the last collection, so RSS
 * may run that far above what is held, whatever the ceiling (PROTOCOL.md §5.3).
 */
const GC_SLACK_MB = 64;
const metadata = { title: 'lies', video: { codec: 'mjpeg', width: 2, height: 2, fps: 12 }, audio: null };

describe('the broker\'s memory ceiling, tried by real producers that lie (PROTOCOL.md §5.3)', () => {
  it(`stays within --max-memory-mb ${CEILING_MB} while 30 producers claim 240 MB frames, and an honest producer keeps instant join`, async () => {
    const broker = await startBroker(['--max-memory-mb', String(CEILING_MB), '--max-sessions', '200', '--max-producers', '40']);
    const pid = broker.proc.child.pid!;
    const baseline = rssBytes(pid);
    // The attacker: 30 proven sessions from another address, each announcing an ID of its own.
    const liars = await Promise.all(Array.from({ length: 30 }, async (_, i) => {
      const peer = await sessionPeer(broker.port, '127.0.0.2');
      const id = 0xa00000 + i;
      peer.send({ type: MessageType.ANNOUNCE, producerId: id, requestId: 1, epoch: 1, frameKey: Buffer.alloc(32, 1), auth: Buffer.alloc(0), metadata });
      await peer.next((m) => m.type === MessageType.ACK && m.requestId === 1 && m.status === Status.OK);
      return { peer, id };
    }));
    // Each sends fragments of a frame claiming 4096 fragments of 60 KB (240 MB): 1.2 GB sent in all.
    let peak = baseline;
    const sample = setInterval(() => (peak = Math.max(peak, rssBytes(pid))), 50);
    const payload = Buffer.alloc(60_000 - 48, 7);
    let seq = 0;
    try {
      for (let round = 0; round < 20; round++) {
        for (const l of liars) {
          l.peer.send({ type: MessageType.HEARTBEAT, producerId: l.id, requestId: 0, role: Role.PRODUCER }); // keep the sessions' consent
          for (let i = 0; i < 34; i++) {
            const d = encode({
              type: MessageType.MEDIA, producerId: l.id, epoch: 1, track: Track.VIDEO, flags: 1, fragIndex: round * 34 + i, fragCount: 4096,
              seq: seq++, frameNo: 1, timestampMs: 0, frameBytes: 4096 * payload.length, fragOffset: (round * 34 + i) * payload.length, payload,
            });
            l.peer.session.keys.mediaToken.copy(d, 40);
            l.peer.sendRaw(d);
          }
          await new Promise((r) => setTimeout(r, 2)); // let the broker read rather than its socket drop
        }
      }
      await new Promise((r) => setTimeout(r, 500));
      peak = Math.max(peak, rssBytes(pid));
    } finally {
      clearInterval(sample);
    }
    const stats = await (async () => {
      const l = liars[0].peer;
      l.send({ type: MessageType.STATS, producerId: 0, requestId: 9 });
      const r = await l.next((m) => m.type === MessageType.STATS_REPLY && m.requestId === 9);
      return (r as { stats: Record<string, number> }).stats;
    })();
    process.stdout.write(`memory ceiling: RSS ${Math.round(baseline / 2 ** 20)} MiB before, peak ${Math.round(peak / 2 ** 20)} MiB; ` +
      `media in ${stats.mediaIn}, cache ${Math.round(stats.cacheBytes / 2 ** 20)} of ${Math.round(stats.cacheLimitBytes / 2 ** 20)} MiB, ${stats.cacheEvictions} evictions\n`);
    expect(stats.mediaIn).toBeGreaterThan(6000); // the broker did take in over 350 MB of them
    expect(stats.cacheBytes).toBeLessThanOrEqual(stats.cacheLimitBytes);
    expect(peak - baseline).toBeLessThanOrEqual((CEILING_MB + GC_SLACK_MB) * 2 ** 20);
    // An honest producer and client, admitted while the liars keep their IDs: the first frame comes at once.
    const producer = new Proc('producer/main.ts', ['--id', '1AAA99', '--broker', broker.address, '--rate', '12'], { LOG_LEVEL: 'info' });
    await producer.waitFor(/"msg":"announced"/);
    await new Promise((r) => setTimeout(r, 300));
    const client = new Proc('client/main.ts', ['--broker', broker.address, '--subscribe', '1AAA99', '--duration', '1']);
    const [line] = await client.waitFor(/^\{"type":"summary".*\}$/, 15_000);
    const s = (JSON.parse(line) as { producers: Record<string, { frames: number }> }).producers['1AAA99'];
    expect(s.frames).toBeGreaterThanOrEqual(8);
  }, 60_000);
});
