import dgram from 'node:dgram';
import { MEDIA_HEADER_BYTES, MediaFlag, MediaOffset, MessageType, Role, Track, writeMediaToken } from '../protocol/index.ts';
import { FrameSealer } from '../protocol/frame-seal.ts';
import { sealForBroker, type PeerSessionState } from '../session/peer-state.ts';
import { benchDatagram, isFramecast, isOk, openSession, SEND_TIME_OFFSET, sessionRequest, sharedNowMs, stamp, type RelayKind } from './wire.ts';

/**
 * Synthetic producers for the benchmark, run as a child process with IPC: one socket per
 * producer ID (an ID belongs to its address, PROTOCOL.md §5.3), announced as a producer does,
 * then sending real MEDIA datagrams at an exact rate, round robin over the producers.
 *
 * With `frameDatagrams` (the tree mode), each producer sends whole frames of that many
 * datagrams, signed with its run's Ed25519 key as a producer signs them (PROTOCOL.md §3.7):
 * an edge releases only frames whose signature verifies. The send time is then written into
 * every fragment before the frame is signed, so the latency measured includes the signing.
 */
interface Init { kind: RelayKind; port: number; producerIds: number[]; bytes: number; frameDatagrams?: number }

const POOL = 4096;
let init: Init;
const sockets: dgram.Socket[] = [];
let pool: Buffer[] = [];
const seqs: number[] = [];
const frameNos: number[] = [];
const sessions: (PeerSessionState | undefined)[] = [];
const sealers: FrameSealer[] = [];
const metadata = { title: 'bench', video: { codec: 'mjpeg', width: 2, height: 2, fps: 12 }, audio: null };
/** Time spent signing frames in the last run, and how many. */
let signMs = 0;
let signed = 0;

async function announce(s: dgram.Socket, producerId: number, frameKey: Buffer): Promise<PeerSessionState> {
  const session = await openSession(s, init.port);
  await sessionRequest(s, init.port, session, { type: MessageType.ANNOUNCE, producerId, requestId: 1, epoch: 1, frameKey, auth: Buffer.alloc(0), metadata }, isOk(1));
  return session;
}

let slot = 0;
function next(): Buffer {
  const d = pool[slot];
  slot = (slot + 1) % POOL;
  return d;
}

/** When this source started: frames' media timestamps count from it, across trials. */
const startedMs = sharedNowMs();

/** Producer p's next frame of `frameDatagrams` datagrams, stamped now and signed; sent at once. */
function sendFrame(p: number): number {
  const count = init.frameDatagrams!;
  const per = init.bytes - MEDIA_HEADER_BYTES;
  const frameBytes = count * per;
  const frameNo = frameNos[p]++;
  const now = sharedNowMs();
  const timestampMs = Math.floor(now - startedMs) >>> 0;
  const producerId = init.producerIds[p];
  const parts: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const d = next();
    d.writeUInt32BE(producerId, MediaOffset.PRODUCER_ID);
    d.writeUInt16BE(i, MediaOffset.FRAG_INDEX);
    d.writeUInt16BE(count, MediaOffset.FRAG_COUNT);
    d.writeUInt32BE(seqs[p]++ >>> 0, MediaOffset.SEQ);
    d.writeUInt32BE(frameNo >>> 0, MediaOffset.FRAME_NO);
    d.writeUInt32BE(timestampMs, MediaOffset.TIMESTAMP_MS);
    d.writeUInt32BE(frameBytes, MediaOffset.FRAME_BYTES);
    d.writeUInt32BE(i * per, MediaOffset.FRAG_OFFSET);
    d[MediaOffset.FLAGS] = MediaFlag.KEYFRAME;
    const token = sessions[p]?.keys.mediaToken;
    if (token !== undefined) writeMediaToken(d, token);
    d.writeDoubleLE(now, SEND_TIME_OFFSET);
    parts.push(d);
  }
  // The body is everything but the signature's 64 bytes at the end of the last fragment.
  const t0 = performance.now();
  const body = Buffer.concat(parts.map((d) => d.subarray(MEDIA_HEADER_BYTES)), frameBytes - 64);
  const sealed = sealers[p].seal({ producerId, epoch: 1, track: Track.VIDEO, frameNo, timestampMs }, body);
  sealed.copy(parts[count - 1], init.bytes - 64, frameBytes - 64);
  signMs += performance.now() - t0;
  signed++;
  for (const d of parts) sockets[p].send(d, init.port, '127.0.0.1');
  return count;
}

/** Sends `rate` datagrams a second for `ms`, in batches so the pace holds at any rate. */
function run(rate: number, ms: number): Promise<number[]> {
  const sent = init.producerIds.map(() => 0);
  const n = init.producerIds.length;
  let total = 0;
  let frames = 0;
  const start = performance.now();
  signMs = 0;
  signed = 0;
  return new Promise((resolve) => {
    const tick = (): void => {
      const elapsed = performance.now() - start;
      const dueTotal = Math.min(Math.floor((Math.min(elapsed, ms) * rate) / 1000), total + 4096);
      const due = dueTotal - total;
      if (init.frameDatagrams !== undefined) {
        // Whole frames, round robin over the producers, until the datagrams due are sent.
        while (total < dueTotal) {
          const p = frames++ % n;
          const k = sendFrame(p);
          sent[p] += k;
          total += k;
        }
      } else {
        for (let i = 0; i < due; i++) {
          const p = total % n;
          const d = next();
          stamp(d, init.producerIds[p], seqs[p]++, sessions[p]?.keys.mediaToken);
          sockets[p].send(d, init.port, '127.0.0.1');
          sent[p]++;
          total++;
        }
      }
      if (elapsed >= ms) resolve(sent);
      // Behind: go on at once. On time: sleep until the next millisecond, so the subscribers
      // sharing this core run between batches (spinning would show as their latency).
      else if (due >= 4096) setImmediate(tick);
      else setTimeout(tick, 1);
    };
    tick();
  });
}

// The harness gone (killed, or crashed): nothing left to serve.
process.on('disconnect', () => process.exit(0));
process.on('message', (raw: { cmd: string } & Record<string, unknown>) => {
  void (async () => {
    switch (raw.cmd) {
      case 'init': {
        init = raw as unknown as Init;
        if (init.frameDatagrams !== undefined && (init.frameDatagrams * (init.bytes - MEDIA_HEADER_BYTES) <= 64 + 8 || init.frameDatagrams > POOL / 4)) {
          throw new Error(`bench/source.ts: frames of ${init.frameDatagrams} datagrams of ${init.bytes} B cannot carry a signature and a send time`);
        }
        pool = Array.from({ length: POOL }, () => benchDatagram(init.producerIds[0], init.bytes));
        for (const id of init.producerIds) {
          const s = dgram.createSocket('udp4');
          await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
          s.setSendBufferSize(4 * 1024 * 1024);
          sockets.push(s);
          seqs.push(0);
          frameNos.push(0);
          const sealer = new FrameSealer({ producerId: id, passphrase: null });
          sealers.push(sealer);
          sessions.push(isFramecast(init.kind) ? await announce(s, id, sealer.publicKey) : undefined);
        }
        if (isFramecast(init.kind)) {
          // Producers' leases live on MEDIA, and on heartbeats between trials.
          setInterval(() => sockets.forEach((s, i) => s.send(sealForBroker(sessions[i]!, { type: MessageType.HEARTBEAT, producerId: init.producerIds[i], requestId: 0, role: Role.PRODUCER }), init.port, '127.0.0.1')), 1000).unref();
        }
        process.send!({ cmd: 'ready' });
        return;
      }
      case 'run': {
        const sent = await run(raw.rate as number, raw.ms as number);
        process.send!({ cmd: 'ran', sent, signUs: signed === 0 ? 0 : Math.round((signMs * 1000) / signed) });
        return;
      }
      case 'exit':
        process.exit(0);
    }
  })();
});
