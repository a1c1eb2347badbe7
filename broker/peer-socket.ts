import dgram from 'node:dgram';
import { literalFirstLookup } from '../common/net.ts';

/** A socket of the broker's own port connected to one client (PeerSockets, fan-out threads). */
export interface PeerSocket {
  readonly socket: dgram.Socket;
  /** Bound and connected: sends need no address. Until then, a few microseconds, it can send nothing. */
  readonly ready: boolean;
  close(): void;
}

/**
 * Opens a socket bound to the broker's port with SO_REUSEADDR and connected to `to`. The kernel
 * hands that client's datagrams to it rather than to the broker's shared socket, and what it sends
 * leaves from the same port, so NAT and address validation see one peer (docs/SCALING.md).
 */
export function openPeerSocket(o: {
  readonly type: 'udp4' | 'udp6';
  readonly host: string;
  readonly port: number;
  readonly to: { readonly address: string; readonly port: number };
  readonly onMessage: (msg: Buffer, rinfo: dgram.RemoteInfo) => void;
  /** `ready`: whether it was open (a send error) or still opening (bind or connect failed). */
  readonly onError: (err: Error, ready: boolean) => void;
  readonly onReady?: () => void;
}): PeerSocket {
  const socket = dgram.createSocket({ type: o.type, reuseAddr: true, lookup: literalFirstLookup });
  let ready = false;
  let closed = false;
  socket.on('message', o.onMessage);
  socket.on('error', (err) => o.onError(err, ready));
  socket.bind(o.port, o.host, () => {
    if (closed) return;
    socket.connect(o.to.port, o.to.address, () => {
      if (closed) return;
      ready = true;
      o.onReady?.();
    });
  });
  return {
    socket,
    get ready() {
      return ready;
    },
    close() {
      closed = true;
      ready = false;
      socket.close();
    },
  };
}
