import dgram from 'node:dgram';
import dns from 'node:dns/promises';
import { isIP } from 'node:net';
import { literalFirstLookup } from './net.ts';

/**
 * A UDP socket connected to the broker: the kernel then delivers only the broker's datagrams,
 * and an ICMP port-unreachable surfaces as an error instead of silence. A name that does not
 * resolve yet (a broker container not started, a DNS record not there) is not fatal: the
 * socket stays bound, `resolved` is false, and the name is looked up again while the broker
 * does not answer (`followBrokerName`). A local port that cannot be bound is.
 */
export async function connectToBroker(host: string, port: number, localPort = 0): Promise<{ socket: dgram.Socket; name: BrokerName; resolved: boolean }> {
  const family = isIP(host) === 6 || (isIP(host) === 0 && host.includes(':')) ? 'udp6' : 'udp4';
  const socket = dgram.createSocket({ type: family, lookup: literalFirstLookup });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(localPort, () => {
      socket.off('error', reject);
      resolve();
    });
  }).catch((err: NodeJS.ErrnoException) => {
    socket.close();
    throw new Error(`cannot bind UDP port ${localPort}: ${err.code ?? err.message}`);
  });
  const name = new BrokerName(socket, host, port);
  const resolved = isIP(host) !== 0 ? await name.connect(host) : (await name.follow()) !== null;
  return { socket, name, resolved };
}

/** What followBrokerName needs of a session (BrokerSession). */
export interface MovableLink {
  on(event: 'quiet', listener: () => void): unknown;
  brokerMoved(): void;
}

/**
 * Each time a heartbeat goes unanswered, looks the broker's name up again; when it moved, the
 * socket follows and the link opens a session there at once (PROTOCOL.md §5.1).
 */
export function followBrokerName(link: MovableLink, name: BrokerName, onMoved: (address: string) => void): void {
  link.on('quiet', () => {
    void name.follow().then((address) => {
      if (address === null) return;
      onMoved(address);
      link.brokerMoved();
    });
  });
}

/**
 * Keeps a socket connected to the broker's name rather than to the address it first had
 * (PROTOCOL.md §5.1): `follow()` looks the name up again and, when it now resolves elsewhere
 * (a recreated container, a rescheduled pod, a changed DNS record), connects the socket there.
 * The socket keeps its local port. A literal IP address is never looked up.
 */
export class BrokerName {
  readonly #socket: dgram.Socket;
  readonly #host: string;
  readonly #port: number;
  #looking = false;

  constructor(socket: dgram.Socket, host: string, port: number) {
    this.#socket = socket;
    this.#host = host;
    this.#port = port;
  }

  /** The address the socket is connected to now. */
  get address(): string {
    try {
      return this.#socket.remoteAddress().address;
    } catch {
      return '';
    }
  }

  /** Resolves with the new address when the socket was moved to one, else null (same address, a literal, a failed lookup). */
  async follow(): Promise<string | null> {
    if (isIP(this.#host) !== 0 || this.#looking) return null;
    this.#looking = true;
    try {
      const family = this.#socket.address().family === 'IPv6' ? 6 : 4;
      const { address } = await dns.lookup(this.#host, { family });
      if (address === this.address) return null;
      return (await this.connect(address)) ? address : null;
    } catch {
      return null; // the name does not resolve now: asked again at the next silence
    } finally {
      this.#looking = false;
    }
  }

  /** Connects the socket to `address` (an IP), leaving any earlier one; false when it cannot. */
  async connect(address: string): Promise<boolean> {
    try {
      this.#socket.disconnect();
    } catch {
      // not connected yet
    }
    return new Promise<boolean>((resolve) => {
      const fail = (): void => resolve(false);
      this.#socket.once('error', fail);
      this.#socket.connect(this.#port, address, () => {
        this.#socket.off('error', fail);
        resolve(true);
      });
    });
  }
}
