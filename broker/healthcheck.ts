/**
 * Docker healthcheck: the broker is healthy when it answers a HELLO on its port within a
 * second (the first step of the handshake, PROTOCOL.md §4.9: an ACK VALIDATE, no state kept).
 */
import dgram from 'node:dgram';
import { loadEnv, parsePort } from '../common/config.ts';
import { MessageType } from '../protocol/constants.ts';
import { decode, encodeControl } from '../protocol/codec.ts';
import { PeerHandshake } from '../session/peer-state.ts';

const port = parsePort(loadEnv().BROKER_PORT ?? '5000', 'BROKER_PORT', false);
const socket = dgram.createSocket('udp4');
const done = (healthy: boolean, why: string): never => {
  process.stdout.write(`${healthy ? 'healthy' : 'unhealthy'}: ${why}\n`);
  process.exit(healthy ? 0 : 1);
};
setTimeout(() => done(false, `no answer on udp/${port} within 1 s`), 1000).unref();
socket.on('error', (err) => done(false, err.message));
socket.on('message', (msg) => {
  try {
    if (decode(msg).type === MessageType.ACK) done(true, `broker answered on udp/${port}`);
  } catch {
    // not ours: keep waiting
  }
});
socket.send(encodeControl(new PeerHandshake().hello(1)), port, '127.0.0.1');
