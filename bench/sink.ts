import dgram from 'node:dgram';
import { MessageType, Role } from '../protocol/index.ts';
import { sealForBroker, type PeerSessionState } from '../session/peer-state.ts';
import { exchange, HIST_BUCKETS, isFramecast, isMedia, isOk, openSession, REGISTER, REGISTERED, SEND_TIME_OFFSET, sessionRequest, sharedNowMs, type RelayKind } from './wire.ts';

/**
 * Subscriber sockets for the benchmark, run as a child process with IPC. Each socket proves
 * its address and subscribes as a client does (PROTOCOL.md §4.9, §4.2), or registers with the
 * baseline, then counts what it receives and, when asked, its latency.
 */
interface Init { kind: RelayKind; port: number; producerIds: number[] }

const sockets: dgram.Socket[] = [];
const sessions = new Map<dgram.Socket, PeerSessionState>();
let received = 0;
/** Datagrams that took 100 ms or more: too late for a live stream, counted as lost (see csink.c). */
let late = 0;
let measureLatency = false;
const hist = new Uint32Array(HIST_BUCKETS);
let samples = 0;

function onMedia(msg: Buffer): void {
  received++;
  const us = Math.round((sharedNowMs() - msg.readDoubleLE(SEND_TIME_OFFSET)) * 1000);
  if (us >= HIST_BUCKETS) late++;
  if (!measureLatency) return;
  hist[us < 0 ? 0 : us >= HIST_BUCKETS ? HIST_BUCKETS - 1 : us]++;
  samples++;
}

async function join(s: dgram.Socket, init: Init, producerId: number): Promise<void> {
  const port = init.port;
  if (!isFramecast(init.kind)) {
    const reg = Buffer.alloc(5);
    reg[0] = REGISTER;
    reg.writeUInt32BE(producerId, 1);
    await exchange(s, port, reg, (r) => r.length === 1 && r[0] === REGISTERED);
    return;
  }
  const session = await openSession(s, port);
  sessions.set(s, session);
  await sessionRequest(s, port, session, { type: MessageType.SUBSCRIBE, producerId, requestId: 3 }, isOk(3));
}

// The harness gone (killed, or crashed): nothing left to serve.
process.on('disconnect', () => process.exit(0));
process.on('message', (raw: { cmd: string } & Record<string, unknown>) => {
  void (async () => {
    switch (raw.cmd) {
      case 'init': {
        const init = raw as unknown as Init & { cmd: string };
        for (let i = 0; i < init.producerIds.length; i++) {
          const s = dgram.createSocket('udp4');
          await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
          s.setRecvBufferSize(1024 * 1024);
          sockets.push(s);
        }
        // Join 50 at a time: the broker's answers are small, but a thousand at once would be a burst.
        for (let i = 0; i < sockets.length; i += 50) {
          await Promise.all(sockets.slice(i, i + 50).map((s, k) => join(s, init, init.producerIds[i + k])));
        }
        for (const s of sockets) s.on('message', (msg) => { if (isMedia(msg)) onMedia(msg); });
        if (isFramecast(init.kind)) {
          // Consent (PROTOCOL.md §5.2): a sealed heartbeat per session every second.
          const hb = { type: MessageType.HEARTBEAT, producerId: 0, requestId: 0, role: Role.CLIENT } as const;
          setInterval(() => { for (const s of sockets) s.send(sealForBroker(sessions.get(s)!, hb), init.port, '127.0.0.1'); }, 1000).unref();
        }
        process.send!({ cmd: 'ready' });
        return;
      }
      case 'reset':
        received = 0;
        late = 0;
        measureLatency = raw.latency === true;
        hist.fill(0);
        samples = 0;
        process.send!({ cmd: 'reset' });
        return;
      case 'report': {
        const sparse: [number, number][] = [];
        if (samples > 0) for (let i = 0; i < hist.length; i++) if (hist[i] > 0) sparse.push([i, hist[i]]);
        process.send!({ cmd: 'report', received, late, samples, hist: sparse });
        return;
      }
      case 'exit':
        process.exit(0);
    }
  })();
});
