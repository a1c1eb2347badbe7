import dgram from 'node:dgram';
import dns from 'node:dns/promises';
import { isIP } from 'node:net';
import { literalFirstLookup } from './net.ts';

/** Where a broker listens: a name or an address, and a port. */
export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

/**
 * A UDP socket connected to the broker: the kernel then delivers only the broker's datagrams,
 * and an ICMP port-unreachable surfaces as an error instead of silence. A name that does not
 * resolve yet (a broker container not started, a DNS record not there) is not fatal: the
 * socket stays bound, `resolved` is false, and the name is looked up again while the broker
 * does not answer (`followBrokerName`). A local port that cannot be bound is. With several
 * brokers, the socket is connected to the first; `followBrokerName` moves it along the list.
 */
export async function connectToBroker(brokers: readonly Endpoint[], localPort = 0): Promise<{ socket: dgram.Socket; name: BrokerName; resolved: boolean }> {
  const { host } = brokers[0];
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
  const name = new BrokerName(socket, brokers);
  const resolved = isIP(host) !== 0 ? await name.connect(host) : (await name.follow()) !== null;
  return { socket, name, resolved };
}

/** What followBrokerName needs of a session (BrokerSession). */
export interface MovableLink {
  on(event: 'quiet' | 'unreachable', listener: () => void): unknown;
  /** When the broker was last heard from (the session's clock). */
  readonly lastHeardMs: number;
  brokerMoved(): void;
}

export interface FollowOptions {
  /** The broker's name resolves to a new address: the socket follows it. */
  readonly onMoved: (address: string) => void;
  /** The broker in use has not answered for `failoverAfterMs`: the socket moves to the next in the list. */
  readonly onFailover?: (to: Endpoint) => void;
  /**
   * Silence after which the next broker of the list is tried (and after each move, again).
   * Producers and clients use two heartbeat intervals (2 s with the defaults, against a 3 s
   * lease): after a heartbeat goes unanswered the session asks again every quarter interval, so
   * that is four unanswered tries, and one lost answer moves no one.
   */
  readonly failoverAfterMs: number;
  readonly clock?: () => number;
}

/**
 * Keeps the link on a broker that answers (PROTOCOL.md §5.1). At each unanswered heartbeat the
 * broker's name is looked up again; when it moved, the socket follows and the link opens a
 * session there at once. With several brokers, when the one in use has been silent for
 * `failoverAfterMs`, the socket moves to the next in the list, and on along it after each such
 * silence; a new session there makes producers announce and clients resubscribe.
 */
export function followBrokerName(link: MovableLink, name: BrokerName, opts: FollowOptions): void {
  const clock = opts.clock ?? (() => performance.now());
  let movedMs = clock();
  const failover = (): void => {
    if (name.count < 2 || clock() - Math.max(link.lastHeardMs, movedMs) < opts.failoverAfterMs) return;
    movedMs = clock();
    void name.next().then((to) => {
      if (to === null) return;
      opts.onFailover?.(to);
      link.brokerMoved();
    });
  };
  link.on('quiet', () => {
    void name.follow().then((address) => {
      if (address !== null) {
        opts.onMoved(address);
        link.brokerMoved();
      } else {
        failover();
      }
    });
  });
  link.on('unreachable', failover);
}

/**
 * Keeps a socket connected to the broker's name rather than to the address it first had
 * (PROTOCOL.md §5.1): `follow()` looks the name up again and, when it now resolves elsewhere
 * (a recreated container, a rescheduled pod, a changed DNS record), connects the socket there.
 * With a list of brokers, `next()` moves the socket to the next one. The socket keeps its
 * local port. A literal IP address is never looked up.
 */
export class BrokerName {
  readonly #socket: dgram.Socket;
  #brokers: readonly Endpoint[];
  #index = 0;
  #looking = false;

  constructor(socket: dgram.Socket, brokers: readonly Endpoint[]) {
    this.#socket = socket;
    this.#brokers = brokers;
  }

  /** How many brokers there are to move between. */
  get count(): number {
    return this.#brokers.length;
  }

  /** The broker in use. */
  get current(): Endpoint {
    return this.#brokers[this.#index];
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
    const { host } = this.current;
    if (isIP(host) !== 0 || this.#looking) return null;
    this.#looking = true;
    try {
      // A name may stand for several (DNS round robin, a headless Service): the broker moved
      // only when the one in use is no longer among them.
      const family = this.#socket.address().family === 'IPv6' ? 6 : 4;
      const addresses = (await dns.lookup(host, { family, all: true })).map((a) => a.address);
      if (addresses.length === 0 || addresses.includes(this.address)) return null;
      const address = addresses[0];
      return (await this.connect(address)) ? address : null;
    } catch {
      return null; // the name does not resolve now: asked again at the next silence
    } finally {
      this.#looking = false;
    }
  }

  /**
   * Moves the socket to `to`, a broker this one sent us to (an edge, PROTOCOL.md §5.5), put first
   * in the list: if it stops answering, the list goes on as given.
   */
  async redirect(to: Endpoint): Promise<boolean> {
    this.#brokers = [to, ...this.#brokers.filter((b) => b.host !== to.host || b.port !== to.port)];
    this.#index = 0;
    try {
      return await this.connect(isIP(to.host) !== 0 ? to.host : await this.#resolve(to.host));
    } catch {
      return false;
    }
  }

  /** Moves the socket to the next broker of the list; resolves with it, or null when it cannot be reached now (tried again later). */
  async next(): Promise<Endpoint | null> {
    if (this.#brokers.length < 2) return null;
    this.#index = (this.#index + 1) % this.#brokers.length;
    const to = this.current;
    try {
      return (await this.connect(isIP(to.host) !== 0 ? to.host : await this.#resolve(to.host))) ? to : null;
    } catch {
      return null;
    }
  }

  async #resolve(host: string): Promise<string> {
    const family = this.#socket.address().family === 'IPv6' ? 6 : 4;
    return (await dns.lookup(host, { family })).address;
  }

  /** Connects the socket to `address` (an IP) at the current broker's port, leaving any earlier one; false when it cannot. */
  async connect(address: string): Promise<boolean> {
    try {
      this.#socket.disconnect();
    } catch {
      // not connected yet
    }
    return new Promise<boolean>((resolve) => {
      const fail = (): void => resolve(false);
      this.#socket.once('error', fail);
      this.#socket.connect(this.current.port, address, () => {
        this.#socket.off('error', fail);
        resolve(true);
      });
    });
  }
}
