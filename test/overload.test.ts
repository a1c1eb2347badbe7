import { execFileSync, spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { encode, MessageType, Role, Status, Track } from '../protocol/index.ts';
import { MediaOffset } from '../protocol/media-header.ts';
import { Proc, startBroker } from './helpers/procs.ts';
import { brokerStats, sessionPeer, type RawPeer } from './helpers/udp.ts';

/**
 * Overload without collapse (PROTOCOL.md §3.5): a producer sends several times what the
 * broker can forward to its 100 subscribers, for 20 s. Media is what gets shed, never the control
 * that keeps sessions alive. The 100 subscribers are sessions on 127.0.0.5 in this process; an
 * nftables rule drops the MEDIA the broker sends them (after the broker has paid for sending it),
 * so that reading it costs this process nothing and the broker alone is the bottleneck.
 * Version 1: every subscriber's lease lapsed within seconds.
 */
const cannot: string | null = process.getuid?.() !== 0 ? 'needs root, for nftables'
  : spawnSync('nft', ['--version']).status !== 0 ? 'nft (nftables) is not installed' : null;
const TABLE = `fc_flood_${process.pid}`;
const VIEWERS = 100;
const ID = 0xf100d;
const FLOOD_PER_SECOND = 20_000;
const FLOOD_MS = 20_000;
const metadata = { title: 'flood', video: { codec: 'mjpeg', width: 2, height: 2, fps: 12 }, audio: null };

afterEach(() => {
  spawnSync('nft', ['delete', 'table', 'ip', TABLE]);
});

/** Sends FLOOD_PER_SECOND single-datagram frames of 1000 bytes a second for `ms`, with the producer session's media token. */
let stopFlood = false;
afterEach(() => {
  stopFlood = true;
});
function flood(producer: RawPeer & { session: { keys: { mediaToken: Buffer } } }, ms: number): Promise<number> {
  stopFlood = false;
  const template = encode({
    type: MessageType.MEDIA, producerId: ID, epoch: 1, track: Track.VIDEO, flags: 1, fragIndex: 0, fragCount: 1, seq: 0,
    frameNo: 0, timestampMs: 0, frameBytes: 1000, fragOffset: 0, payload: Buffer.alloc(1000, 0x42),
  });
  producer.session.keys.mediaToken.copy(template, MediaOffset.TOKEN);
  let sent = 0;
  const start = performance.now();
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      const elapsed = Math.min(performance.now() - start, ms);
      for (const due = Math.floor((elapsed * FLOOD_PER_SECOND) / 1000); sent < due; sent++) {
        const d = Buffer.from(template);
        d.writeUInt32BE(sent, MediaOffset.SEQ);
        d.writeUInt32BE(sent, MediaOffset.FRAME_NO);
        producer.sendRaw(d);
      }
      if (elapsed >= ms || stopFlood) {
        clearInterval(timer);
        resolve(sent);
      }
    }, 2);
  });
}

describe.skipIf(cannot !== null)(`overload without collapse${cannot === null ? '' : ` (skipped: ${cannot})`}`, () => {
  it('a producer at several times what the broker can forward to 100 subscribers for 20 s: no lease lapses, a new client subscribes within 2 s, the shedding is counted', async () => {
    execFileSync('nft', ['-f', '-'], {
      input: `table ip ${TABLE} {\n chain out {\n  type filter hook output priority 0; policy accept;\n  ip daddr 127.0.0.5 udp sport != 0 @th,88,8 0x01 drop\n }\n}\n`,
    });
    const broker = await startBroker([], { LOG_LEVEL: 'info' });
    const producer = await sessionPeer(broker.port);
    producer.send({ type: MessageType.ANNOUNCE, producerId: ID, requestId: 1, epoch: 1, frameKey: Buffer.alloc(32, 1), auth: Buffer.alloc(0), metadata });
    await producer.next((m) => m.type === MessageType.ACK && m.requestId === 1 && m.status === Status.OK);
    const viewers: RawPeer[] = [];
    for (let i = 0; i < VIEWERS; i++) {
      const v = await sessionPeer(broker.port, '127.0.0.5');
      v.send({ type: MessageType.SUBSCRIBE, producerId: ID, requestId: 2, epoch: 0 } as never);
      await v.next((m) => m.type === MessageType.ACK && m.requestId === 2 && m.status === Status.OK);
      viewers.push(v);
    }
    // Consent: a heartbeat a second from every viewer, each asking for an answer.
    let hbId = 100;
    const asked = new Map<RawPeer, number[]>();
    const beat = setInterval(() => {
      hbId++;
      for (const v of viewers) {
        v.send({ type: MessageType.HEARTBEAT, producerId: 0, requestId: hbId, role: Role.CLIENT });
        asked.set(v, [...(asked.get(v) ?? []), hbId]);
      }
      producer.send({ type: MessageType.HEARTBEAT, producerId: ID, requestId: hbId, role: Role.PRODUCER });
    }, 1000);
    // A client that is already running, idle: how long does a SUBSCRIBE take in the middle of the flood?
    const late = new Proc('client/main.ts', ['--broker', broker.address]);
    late.write('help');
    await late.waitFor(/subscribe/);
    try {
      const flooding = flood(producer, FLOOD_MS);
      await new Promise((r) => setTimeout(r, FLOOD_MS / 2));
      const askedMs = performance.now();
      late.write(`subscribe ${ID.toString(16).toUpperCase()}`);
      await late.waitFor(/^subscribed to F100D/, 10_000).catch(async (err: Error) => {
        const st = await brokerStats(producer, 76);
        throw new Error(`${err.message}\nbroker: ${JSON.stringify(st)}\n${broker.proc.stderrLines.slice(-10).join('\n')}`);
      });
      const subscribeMs = performance.now() - askedMs;
      const sent = await flooding;
      await new Promise((r) => setTimeout(r, 1500)); // the last heartbeats' answers
      const stats = await brokerStats(producer, 77);
      // Every heartbeat answered OK within its session: none NOT_REGISTERED, none unanswered but the last.
      let answered = 0;
      let refused = 0;
      let unanswered = 0;
      for (const v of viewers) {
        const acks = v.got.filter((m) => m.type === MessageType.ACK && m.ackedType === MessageType.HEARTBEAT);
        answered += acks.filter((m) => m.type === MessageType.ACK && m.status === Status.OK).length;
        refused += acks.filter((m) => m.type === MessageType.ACK && m.status !== Status.OK).length;
        const ids = new Set(acks.map((m) => (m as { requestId: number }).requestId));
        unanswered += (asked.get(v) ?? []).filter((id) => !ids.has(id as number)).length;
      }
      const lapsed = broker.proc.stderrLines.filter((l) => l.includes('"reason":"lease"')).length;
      process.stdout.write(`figure: overload: ${sent} datagrams in ${FLOOD_MS / 1000} s (${FLOOD_PER_SECOND}/s) to ${VIEWERS} subscribers; broker took ${stats.mediaIn} of them and forwarded ${stats.mediaIn - stats.framesShed} (each a frame), ` +
        `shed ${stats.framesShed} frames (${stats.framesShedBusy} while busy), ${stats.receiveBufferDrops} dropped in its receive buffers; ` +
        `heartbeats ${answered} answered OK, ${refused} refused, ${unanswered} unanswered; ${lapsed} leases lapsed; a new SUBSCRIBE answered in ${subscribeMs.toFixed(0)} ms\n`);
      expect(lapsed).toBe(0);
      expect(refused).toBe(0);
      expect(stats.clientsExpired).toBe(0);
      expect(stats.framesShed).toBeGreaterThan(0);
      expect(subscribeMs).toBeLessThan(2000);
    } finally {
      clearInterval(beat);
    }
  }, 90_000);
});
