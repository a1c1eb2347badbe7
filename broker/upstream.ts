import { EventEmitter } from 'node:events';
import type { AckDetail, NakMessage, NoticeMessage } from '../protocol/codec.ts';
import { MessageType, Role, Status, STATUS_TEXT } from '../protocol/constants.ts';
import { isMedia } from '../protocol/media-header.ts';
import type { ProducerInfo } from '../protocol/metadata.ts';
import { BrokerSession, DEFAULT_RETRY_INITIAL_MS, type ConnectedSocket } from '../session/broker-session.ts';

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

  constructor(args: { socket: ConnectedSocket; clock: () => number; heartbeatIntervalMs: number; leaseIntervals: number; maxDatagramBytes: number }) {
    super();
    this.#heartbeatIntervalMs = args.heartbeatIntervalMs;
    this.link = new BrokerSession({
      socket: args.socket, clock: args.clock,
      options: {
        role: Role.CLIENT, producerId: 0, heartbeatIntervalMs: args.heartbeatIntervalMs, leaseIntervals: args.leaseIntervals,
        retryInitialMs: DEFAULT_RETRY_INITIAL_MS, requestAttempts: 5, maxDatagramBytes: args.maxDatagramBytes,
      },
    });
    this.link.on('established', () => {
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

  get wanted(): ReadonlySet<number> {
    return this.#wanted;
  }

  async list(): Promise<{ producers: readonly ProducerInfo[]; truncated: boolean } | null> {
    const r = await this.link.request({ type: MessageType.LIST, producerId: 0, requestId: 0 });
    return r?.type === MessageType.LIST_REPLY ? { producers: r.producers, truncated: r.truncated } : null;
  }

  nak(nak: NakMessage): void {
    this.link.send(nak);
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
        if (r?.type === MessageType.ACK && r.status !== Status.UNKNOWN_PRODUCER) {
          this.#wanted.delete(id);
          return void this.emit('refused', id, r.status, r.detail.message ?? STATUS_TEXT[r.status]);
        }
        if (r !== null) this.emit('notLive', id);
        const delayMs = Math.min(this.#heartbeatIntervalMs, DEFAULT_RETRY_INITIAL_MS * 2 ** round) * (0.5 + Math.random() / 2);
        await this.link.waitOrEstablished(delayMs);
      }
    } finally {
      this.#asking.delete(id);
    }
  }
}
