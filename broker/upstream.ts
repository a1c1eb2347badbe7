import { EventEmitter } from 'node:events';
import type { AckDetail, NakMessage, NoticeMessage, ReceiverReportMessage } from '../protocol/codec.ts';
import { MessageType, Role, Status, STATUS_TEXT } from '../protocol/constants.ts';
import { isMedia } from '../protocol/media-header.ts';
import type { ProducerInfo } from '../protocol/metadata.ts';
import { BrokerSession, DEFAULT_RETRY_INITIAL_MS, type ConnectedSocket } from '../session/broker-session.ts';
import { edgeAuth } from '../protocol/session-crypto.ts';

/** What an edge tells its upstream brokers of itself (PROTOCOL.md §5.5). */
export interface EdgeIdentity {
  /** `host:port` where viewers reach this edge, or null: not to be redirected to. */
  readonly advertise: string | null;
  /** The edge secret that proves `advertise`; null: the address is not sent. */
  readonly secret: string | null;
  /** Viewers this edge serves now. */
  readonly load: () => number;
}

/** What the broker asks of its upstream (an edge, PROTOCOL.md §5.5); tests may pass a double. */
export interface UpstreamLink {
  /** Subscribes upstream to `id` (idempotent) and keeps it until `release`; answers come as events. */
  want(id: number): void;
  /** Unsubscribes upstream from `id`. */
  release(id: number): void;
  list(): Promise<{ readonly producers: readonly ProducerInfo[]; readonly truncated: boolean } | null>;
  nak(nak: NakMessage): void;
}

export interface UpstreamEvents {
  /** (A pool.) One upstream fell silent: what it carried is asked of the others. */
  down: [link: number];
  /** The upstream broker accepted a subscription (at first, or again in a new session): the run to accept. */
  accepted: [id: number, detail: AckDetail];
  /** It does not carry `id` now (asked again until it does, while wanted). */
  notLive: [id: number];
  /** It refused `id` for another reason (a limit): not asked again until wanted anew. */
  refused: [id: number, status: Status, message: string];
  notice: [m: NoticeMessage];
  /** A MEDIA datagram from the upstream broker, as received: the broker gates it before its fan-out. */
  media: [d: Buffer];
}

/**
 * An edge broker's link to its upstream broker (PROTOCOL.md §5.5): a client session of the
 * session layer, subscribed to the IDs the edge's own viewers watch. Every wanted ID is asked
 * for until it is accepted or released; a new session (the upstream restarted, or the link moved
 * to the next upstream of the list) subscribes again to all of them.
 */
export class Upstream extends EventEmitter<UpstreamEvents> implements UpstreamLink {
  readonly link: BrokerSession;
  readonly #wanted = new Set<number>();
  readonly #asking = new Set<number>();
  readonly #heartbeatIntervalMs: number;
  #sessions = 0;
  #closed = false;

  readonly #edge: EdgeIdentity;

  constructor(args: { socket: ConnectedSocket; clock: () => number; heartbeatIntervalMs: number; leaseIntervals: number; maxDatagramBytes: number; edge?: EdgeIdentity }) {
    super();
    this.#heartbeatIntervalMs = args.heartbeatIntervalMs;
    this.#edge = args.edge ?? { advertise: null, secret: null, load: () => 0 };
    this.link = new BrokerSession({
      socket: args.socket, clock: args.clock,
      options: {
        role: Role.CLIENT, producerId: 0, heartbeatIntervalMs: args.heartbeatIntervalMs, leaseIntervals: args.leaseIntervals,
        retryInitialMs: DEFAULT_RETRY_INITIAL_MS, requestAttempts: 5, maxDatagramBytes: args.maxDatagramBytes,
      },
    });
    this.link.on('established', () => {
      // First of all, that this is an edge: an upstream broker that spreads viewers must not redirect it.
      this.announceEdge();
      if (this.#sessions++ === 0) return;
      for (const id of this.#wanted) void this.#ask(id);
    });
    this.link.on('message', (m) => {
      if (m.type === MessageType.NOTICE && this.#wanted.has(m.producerId)) this.emit('notice', m);
    });
  }

  start(): void {
    this.link.start();
  }

  /** A datagram from the upstream socket: MEDIA goes to the broker's gate as it is, the rest to the session. */
  handleDatagram(d: Buffer): void {
    if (isMedia(d)) this.emit('media', d);
    else this.link.handleDatagram(d);
  }

  want(id: number): void {
    if (this.#wanted.has(id)) return;
    this.#wanted.add(id);
    void this.#ask(id);
  }

  release(id: number): void {
    if (!this.#wanted.delete(id)) return;
    this.link.send({ type: MessageType.UNSUBSCRIBE, producerId: id, requestId: 0 });
  }

  async list(): Promise<{ producers: readonly ProducerInfo[]; truncated: boolean } | null> {
    const r = await this.link.request({ type: MessageType.LIST, producerId: 0, requestId: 0 });
    return r?.type === MessageType.LIST_REPLY ? { producers: r.producers, truncated: r.truncated } : null;
  }

  nak(nak: NakMessage): void {
    this.link.send(nak);
  }

  /** EDGE (PROTOCOL.md §5.5): this is an edge, and with an advertised address proven by the edge secret, where viewers reach it and its load. */
  announceEdge(): void {
    const s = this.link.session;
    if (s === null) return;
    const { advertise, secret } = this.#edge;
    const proven = advertise !== null && secret !== null;
    this.link.send({
      type: MessageType.EDGE, producerId: 0, requestId: 0, load: this.#edge.load(),
      advertise: proven ? advertise : '', auth: proven ? edgeAuth(secret, s.keys.binding, advertise) : Buffer.alloc(0),
    });
  }

  close(): void {
    this.#closed = true;
    for (const id of this.#wanted) this.link.send({ type: MessageType.UNSUBSCRIBE, producerId: id, requestId: 0 });
    this.#wanted.clear();
    this.link.close();
  }

  /** Asks until the upstream broker answers: accepted, not live (asked again with backoff), or refused. */
  async #ask(id: number): Promise<void> {
    if (this.#asking.has(id)) return;
    this.#asking.add(id);
    try {
      for (let round = 0; this.#wanted.has(id) && !this.#closed; round++) {
        const r = await this.link.request({ type: MessageType.SUBSCRIBE, producerId: id, requestId: 0 });
        if (!this.#wanted.has(id)) return;
        if (r?.type === MessageType.ACK && r.status === Status.OK) return void this.emit('accepted', id, r.detail);
        if (r?.type === MessageType.ACK && r.status === Status.REDIRECT) {
          // Taken for a viewer (our EDGE was lost on the way): say again what we are, and ask again.
          this.announceEdge();
        } else if (r?.type === MessageType.ACK && r.status !== Status.UNKNOWN_PRODUCER) {
          this.#wanted.delete(id);
          return void this.emit('refused', id, r.status, r.detail.message ?? STATUS_TEXT[r.status]);
        } else if (r !== null) {
          this.emit('notLive', id);
        }
        const delayMs = Math.min(this.#heartbeatIntervalMs, DEFAULT_RETRY_INITIAL_MS * 2 ** round) * (0.5 + Math.random() / 2);
        await this.link.waitOrEstablished(delayMs);
      }
    } finally {
      this.#asking.delete(id);
    }
  }
}

/**
 * An edge's upstream brokers, all at once (PROTOCOL.md §5.5): producers may be spread over
 * several origins, so an ID is asked of every upstream that answers, and the first to accept it
 * carries it here (the others are released). That choice is kept while its link answers; when
 * it falls silent for its lease, every ID it carried is asked of the others again, so a
 * producer that moved to another origin is found there.
 */
export class UpstreamPool extends EventEmitter<UpstreamEvents> implements UpstreamLink {
  readonly links: readonly Upstream[];
  readonly #wanted = new Set<number>();
  /** Which link carries each ID. */
  readonly #owner = new Map<number, Upstream>();
  /** Per ID, the links that said it is not live there. */
  readonly #notLive = new Map<number, Set<Upstream>>();
  readonly #dead = new Set<Upstream>();

  constructor(links: readonly Upstream[]) {
    super();
    this.links = links;
    for (const link of links) {
      link.on('accepted', (id, detail) => this.#accepted(link, id, detail));
      link.on('notLive', (id) => this.#notLiveAt(link, id));
      link.on('refused', (id, status, message) => {
        if (this.#owner.get(id) === link || this.#owner.get(id) === undefined) this.emit('refused', id, status, message);
      });
      link.on('notice', (m) => {
        if (this.#owner.get(m.producerId) === link) this.emit('notice', m);
      });
      link.on('media', (d) => this.emit('media', d));
      link.link.on('unreachable', () => this.#down(link));
      link.link.on('reachable', () => this.#revive(link));
    }
  }

  start(): void {
    for (const link of this.links) link.start();
  }

  want(id: number): void {
    if (this.#wanted.has(id)) return;
    this.#wanted.add(id);
    this.#notLive.set(id, new Set());
    for (const link of this.links) if (!this.#dead.has(link)) link.want(id);
  }

  release(id: number): void {
    this.#wanted.delete(id);
    this.#owner.delete(id);
    this.#notLive.delete(id);
    for (const link of this.links) link.release(id);
  }

  async list(): Promise<{ producers: readonly ProducerInfo[]; truncated: boolean } | null> {
    const replies = await Promise.all(this.links.filter((l) => !this.#dead.has(l)).map((l) => l.list()));
    if (replies.every((r) => r === null)) return null;
    const byId = new Map<number, ProducerInfo>();
    for (const r of replies) for (const p of r?.producers ?? []) if (!byId.has(p.id) || (p.online && !byId.get(p.id)!.online)) byId.set(p.id, p);
    return { producers: [...byId.values()], truncated: replies.some((r) => r?.truncated === true) };
  }

  nak(nak: NakMessage): void {
    this.#owner.get(nak.producerId)?.nak(nak);
  }

  /** Sends an edge's receiver report to the upstream that carries its stream. */
  report(m: ReceiverReportMessage): void {
    this.#owner.get(m.producerId)?.link.send(m);
  }

  close(): void {
    for (const link of this.links) link.close();
  }

  #accepted(link: Upstream, id: number, detail: AckDetail): void {
    if (!this.#wanted.has(id)) return link.release(id);
    const owner = this.#owner.get(id);
    if (owner !== undefined && owner !== link && !this.#dead.has(owner)) return link.release(id); // carried elsewhere
    this.#owner.set(id, link);
    for (const other of this.links) if (other !== link) other.release(id);
    this.emit('accepted', id, detail);
  }

  /** Not live at `link`: the broker hears so once no upstream that answers has it. */
  #notLiveAt(link: Upstream, id: number): void {
    const said = this.#notLive.get(id);
    if (said === undefined || this.#owner.has(id)) return;
    said.add(link);
    if (this.links.every((l) => said.has(l) || this.#dead.has(l))) this.emit('notLive', id);
  }

  /**
   * A link unreachable (silent for its lease) is down: what it carried is asked of the others
   * that answer. With none, it keeps what it carried and asks again when it is back.
   */
  #down(link: Upstream): void {
    if (this.#dead.has(link)) return;
    this.#dead.add(link);
    this.emit('down', this.links.indexOf(link));
    if (this.links.every((l) => this.#dead.has(l))) return;
    for (const [id, owner] of this.#owner) {
      if (owner !== link) continue;
      this.#owner.delete(id);
      this.#notLive.set(id, new Set());
      for (const other of this.links) if (!this.#dead.has(other)) other.want(id);
    }
  }

  /** A link answers again: it is asked for what is wanted and not carried. */
  #revive(link: Upstream): void {
    if (!this.#dead.delete(link)) return;
    for (const id of this.#wanted) if (!this.#owner.has(id)) link.want(id);
  }
}
