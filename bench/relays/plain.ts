import cluster from 'node:cluster';
import dgram from 'node:dgram';
import { mediaProducerId } from '../../protocol/media-header.ts';
import { REGISTER, REGISTERED } from '../wire.ts';

/** A subscriber as a baseline relay keeps it; `socket` is its own connected socket (--connected). */
export type Out = { port: number; address: string; socket: dgram.Socket | null };
/** A registration one cluster worker received, to be made known to all (cluster.ts). */
export type Registration = { id: number; port: number; address: string; origin: number };

/**
 * The simplest possible Node relay, the benchmark's yardstick (issue 6): receive a datagram,
 * send the same Buffer to each subscriber of its producer, nothing else. Subscribers register
 * with [0xFF, producer ID (4 bytes)]. `connected`: each subscriber gets a socket of its own bound
 * to the same port (reuseAddr) and connected to it, so a send names no address. In a cluster
 * worker, registrations go through the primary (cluster.ts) so that every worker knows them.
 */
export function plainRelay(connected: boolean): void {
  const inCluster = cluster.isWorker;
  const socket = dgram.createSocket({ type: 'udp4', reuseAddr: connected });
  const subscribers = new Map<number, Out[]>();
  const forward = (msg: Buffer): void => {
    const subs = subscribers.get(mediaProducerId(msg));
    if (subs === undefined) return;
    if (connected) for (let i = 0; i < subs.length; i++) subs[i].socket!.send(msg);
    else for (let i = 0; i < subs.length; i++) socket.send(msg, subs[i].port, subs[i].address);
  };
  const add = (id: number, out: Out): void => {
    const list = subscribers.get(id) ?? [];
    list.push(out);
    subscribers.set(id, list);
  };
  const answer = (port: number, address: string): void => socket.send(Buffer.from([REGISTERED]), port, address);
  socket.on('message', (msg, rinfo) => {
    if (msg[0] !== REGISTER) return forward(msg);
    const id = msg.readUInt32BE(1);
    if (inCluster) {
      process.send!({ register: { id, port: rinfo.port, address: rinfo.address, origin: cluster.worker!.id } });
      return;
    }
    const out: Out = { port: rinfo.port, address: rinfo.address, socket: null };
    if (!connected) {
      add(id, out);
      return answer(rinfo.port, rinfo.address);
    }
    const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    s.on('message', (m) => { if (m[0] !== REGISTER) forward(m); });
    s.bind(socket.address().port, '127.0.0.1', () => s.connect(rinfo.port, rinfo.address, () => {
      s.setSendBufferSize(4 * 1024 * 1024);
      out.socket = s;
      add(id, out);
      answer(rinfo.port, rinfo.address);
    }));
  });
  if (inCluster) {
    process.on('message', (m: { add?: Registration; key?: string; answer?: Registration }) => {
      if (m.add !== undefined) {
        add(m.add.id, { port: m.add.port, address: m.add.address, socket: null });
        process.send!({ known: m.key });
      }
      if (m.answer !== undefined) answer(m.answer.port, m.answer.address);
    });
  }
  socket.bind(0, '127.0.0.1', () => {
    socket.setRecvBufferSize(4 * 1024 * 1024);
    socket.setSendBufferSize(4 * 1024 * 1024);
    if (inCluster) process.send!({ listening: socket.address().port });
    else process.stdout.write(`baseline listening on 127.0.0.1:${socket.address().port}\n`);
  });
  process.on('SIGTERM', () => process.exit(0));
}
