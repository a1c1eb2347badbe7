import dgram from 'node:dgram';
import { REGISTER, REGISTERED } from './wire.ts';

/**
 * The simplest possible Node relay, the benchmark's yardstick (issue 6): receive a datagram,
 * send the same Buffer to each subscriber of its producer, nothing else. Subscribers register
 * with [0xFF, producer ID (4 bytes)]. With --connected, each subscriber gets a socket of its own
 * bound to the same port (reuseAddr) and connected to it, so a send names no address.
 */
const connected = process.argv.includes('--connected');
type Out = { port: number; address: string; socket: dgram.Socket | null };
const socket = dgram.createSocket({ type: 'udp4', reuseAddr: connected });
const subscribers = new Map<number, Out[]>();
const forward = (msg: Buffer): void => {
  const subs = subscribers.get(msg.readUInt32BE(4));
  if (subs === undefined) return;
  if (connected) for (let i = 0; i < subs.length; i++) subs[i].socket!.send(msg);
  else for (let i = 0; i < subs.length; i++) socket.send(msg, subs[i].port, subs[i].address);
};
socket.on('message', (msg, rinfo) => {
  if (msg[0] !== REGISTER) return forward(msg);
  const id = msg.readUInt32BE(1);
  const list = subscribers.get(id) ?? [];
  const out: Out = { port: rinfo.port, address: rinfo.address, socket: null };
  const done = (): void => {
    list.push(out);
    subscribers.set(id, list);
    socket.send(Buffer.from([REGISTERED]), rinfo.port, rinfo.address);
  };
  if (!connected) return done();
  const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  s.on('message', (m) => { if (m[0] !== REGISTER) forward(m); });
  s.bind(socket.address().port, '127.0.0.1', () => s.connect(rinfo.port, rinfo.address, () => {
    s.setSendBufferSize(4 * 1024 * 1024);
    out.socket = s;
    done();
  }));
});
socket.bind(0, '127.0.0.1', () => {
  socket.setRecvBufferSize(4 * 1024 * 1024);
  socket.setSendBufferSize(4 * 1024 * 1024);
  process.stdout.write(`baseline listening on 127.0.0.1:${socket.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
