import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { literalFirstLookup } from './net.ts';

/**
 * A UDP socket connected to the broker: the kernel then delivers only the broker's datagrams,
 * and an ICMP port-unreachable surfaces as an error instead of silence.
 */
export async function connectToBroker(host: string, port: number, localPort = 0): Promise<dgram.Socket> {
  const family = isIP(host) === 6 || (isIP(host) === 0 && host.includes(':')) ? 'udp6' : 'udp4';
  const socket = dgram.createSocket({ type: family, lookup: literalFirstLookup });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(localPort, () => {
      socket.connect(port, host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
  }).catch((err: NodeJS.ErrnoException) => {
    socket.close();
    throw new Error(`cannot reach broker ${host}:${port}: ${err.code ?? err.message}`);
  });
  return socket;
}
