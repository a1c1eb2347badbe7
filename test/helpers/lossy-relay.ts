import dgram from 'node:dgram';
import { isMedia, isRetransmit as flaggedRetransmit } from '../../protocol/index.ts';
import { xorshift32 } from './prng.ts';

function isRetransmit(d: Buffer): boolean {
  return isMedia(d) && d.length > 13 && flaggedRetransmit(d);
}

export interface RelayOptions {
  /** Where datagrams from the client side go (the broker). */
  readonly upstreamPort: number;
  /** Shares of broker-to-client datagrams to drop, duplicate and hold back, 0..1. */
  readonly dropRate: number;
  readonly duplicateRate: number;
  readonly reorderRate: number;
  /** Extra delay of every broker-to-client datagram, and of held-back ones on top. */
  readonly delayMs: number;
  readonly reorderDelayMs: number;
  /** Only datagrams for which this is true are impaired (e.g. MEDIA only). */
  readonly impair?: (datagram: Buffer) => boolean;
  readonly seed: number;
  /** Share of datagrams from the relay's peer to the broker (every type: a lossy uplink) to drop, 0..1; 0 by default. */
  readonly upDropRate?: number;
}

/**
 * A UDP proxy between one peer and the broker, impairing the broker-to-peer path at set rates
 * with a seeded PRNG (and, with `upDropRate`, dropping on the way to the broker), and counting
 * what it did. The client talks to `port` as if it
 * were the broker; the relay talks to the broker from one socket of its own.
 */
export class LossyRelay {
  /** `...First`: of first transmissions only (MEDIA without the RETRANSMIT flag), what a receiver's loss figure measures. */
  readonly counts = { forwarded: 0, dropped: 0, duplicated: 0, reordered: 0, impairable: 0, droppedFirst: 0, impairableFirst: 0, retransmits: 0 };
  /** Towards the broker: datagrams seen, dropped, and of MEDIA first transmissions, seen and dropped. */
  readonly up = { seen: 0, dropped: 0, mediaFirst: 0, mediaFirstDropped: 0 };
  readonly #front = dgram.createSocket('udp4');
  readonly #back = dgram.createSocket('udp4');
  readonly #opts: RelayOptions;
  #client: { address: string; port: number } | null = null;
  readonly #rand: () => number;
  readonly #timers = new Set<NodeJS.Timeout>();

  private constructor(opts: RelayOptions) {
    this.#opts = opts;
    this.#rand = xorshift32(opts.seed);
  }

  static async start(opts: RelayOptions): Promise<LossyRelay> {
    const r = new LossyRelay(opts);
    await Promise.all([r.#front, r.#back].map((s) => new Promise<void>((res) => s.bind(0, '127.0.0.1', () => res()))));
    const upRand = xorshift32(opts.seed ^ 0x5bd1e995);
    r.#front.on('message', (msg, rinfo) => {
      r.#client = { address: rinfo.address, port: rinfo.port };
      const media = isMedia(msg) && !isRetransmit(msg);
      r.up.seen++;
      if (media) r.up.mediaFirst++;
      if ((opts.upDropRate ?? 0) > 0 && upRand() < opts.upDropRate!) {
        r.up.dropped++;
        if (media) r.up.mediaFirstDropped++;
        return;
      }
      r.#back.send(msg, opts.upstreamPort, '127.0.0.1');
    });
    r.#back.on('message', (msg) => r.#toClient(msg));
    return r;
  }

  get port(): number {
    return this.#front.address().port;
  }

  #toClient(msg: Buffer): void {
    const o = this.#opts;
    if (o.impair === undefined || o.impair(msg)) {
      const first = !isRetransmit(msg);
      this.counts.impairable++;
      if (first) this.counts.impairableFirst++;
      else this.counts.retransmits++;
      if (this.#rand() < o.dropRate) {
        this.counts.dropped++;
        if (first) this.counts.droppedFirst++;
        return;
      }
      if (this.#rand() < o.duplicateRate) {
        this.counts.duplicated++;
        this.#later(msg, o.delayMs);
      }
      if (this.#rand() < o.reorderRate) {
        this.counts.reordered++;
        this.#later(msg, o.delayMs + o.reorderDelayMs);
        return;
      }
    }
    this.#later(msg, o.delayMs);
  }

  #later(msg: Buffer, delayMs: number): void {
    const send = (): void => {
      if (this.#client === null) return;
      this.counts.forwarded++;
      this.#front.send(msg, this.#client.port, this.#client.address);
    };
    if (delayMs <= 0) return send();
    const t = setTimeout(() => {
      this.#timers.delete(t);
      send();
    }, delayMs);
    this.#timers.add(t);
  }

  close(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#front.close();
    this.#back.close();
  }
}
