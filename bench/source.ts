import dgram from 'node:dgram';
import { MessageType, Role } from '../protocol/index.ts';
import { sealForBroker, type PeerSessionState } from '../session/peer-state.ts';
import { benchDatagram, isOk, openSession, sessionRequest, stamp, type RelayKind } from './wire.ts';

/**
 * Synthetic producers for the benchmark, run as a child process with IPC: one socket per
 * producer ID (an ID belongs to its address, PROTOCOL.md §5.3), announced as a producer does,
 * then sending real MEDIA datagrams at an exact rate, round robin over the producers.
 */
interface Init { kind: RelayKind; port: number; producerIds: number[]; bytes: number }

const POOL = 4096;
let init: Init;
const sockets: dgram.Socket[] = [];
let pool: Buffer[] = [];
const seqs: number[] = [];
const sessions: (PeerSessionState | undefined)[] = [];
const metadata = { title: 'bench', video: { codec: 'mjpeg', width: 2, height: 2, fps: 12 }, audio: null };

async function announce(s: dgram.Socket, producerId: number): Promise<PeerSessionState> {
  const session = await openSession(s, init.port);
  await sessionRequest(s, init.port, session, { type: MessageType.ANNOUNCE, producerId, requestId: 1, epoch: 1, frameKey: Buffer.alloc(32, 1), auth: Buffer.alloc(0), metadata }, isOk(1));
  return session;
}

/** Sends `rate` datagrams a second for `ms`, in batches so the pace holds at any rate. */
function run(rate: number, ms: number): Promise<number[]> {
  const sent = init.producerIds.map(() => 0);
  const n = init.producerIds.length;
  let total = 0;
  let slot = 0;
  const start = performance.now();
  return new Promise((resolve) => {
    const tick = (): void => {
      const elapsed = performance.now() - start;
      const due = Math.min(Math.floor((Math.min(elapsed, ms) * rate) / 1000), total + 4096) - total;
      for (let i = 0; i < due; i++) {
        const p = total % n;
        const d = pool[slot];
        slot = (slot + 1) % POOL;
        stamp(d, init.producerIds[p], seqs[p]++, sessions[p]?.keys.mediaToken);
        sockets[p].send(d, init.port, '127.0.0.1');
        sent[p]++;
        total++;
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
        pool = Array.from({ length: POOL }, () => benchDatagram(init.producerIds[0], init.bytes));
        for (const id of init.producerIds) {
          const s = dgram.createSocket('udp4');
          await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
          s.setSendBufferSize(4 * 1024 * 1024);
          sockets.push(s);
          seqs.push(0);
          sessions.push(init.kind.startsWith('broker') ? await announce(s, id) : undefined);
        }
        if (init.kind.startsWith('broker')) {
          // Producers' leases live on MEDIA, and on heartbeats between trials.
          setInterval(() => sockets.forEach((s, i) => s.send(sealForBroker(sessions[i]!, { type: MessageType.HEARTBEAT, producerId: init.producerIds[i], requestId: 0, role: Role.PRODUCER }), init.port, '127.0.0.1')), 1000).unref();
        }
        process.send!({ cmd: 'ready' });
        return;
      }
      case 'run': {
        const sent = await run(raw.rate as number, raw.ms as number);
        process.send!({ cmd: 'ran', sent });
        return;
      }
      case 'exit':
        process.exit(0);
    }
  })();
});
