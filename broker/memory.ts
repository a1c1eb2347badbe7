import type { BrokerOptions } from './options.ts';

/**
 * The broker's one memory ceiling (PROTOCOL.md §5.3): everything peers can make it hold is
 * bounded, and the bounds add up to at most `maxMemoryBytes`. The tables (sessions, producers,
 * rate tracking) are bounded by their counts, so each is charged its worst case up front; the
 * loss-recovery log and the send queues have fixed sizes; the instant-join caches get the rest,
 * enforced as frames arrive (CacheBudget).
 */

/**
 * Worst case per session: keys, replay window, path probe, kept welcome, client entry and
 * rate buckets (bench/memory.ts measures about 2 KiB of heap and 5 KiB of RSS for an idle
 * subscriber), plus one subscriber entry per allowed subscription.
 */
export const SESSION_BYTES = 6 * 1024;
export const SUBSCRIPTION_BYTES = 512;
/** A connected socket per client (--connected-sockets, fan-out threads): about 5 KiB each. */
export const PEER_SOCKET_BYTES = 8 * 1024;
/** A channel besides its history index and cache: presence, metadata, replay windows, subscriber array. */
export const CHANNEL_BYTES = 8 * 1024;
/** One source IP tracked by the handshake rate limiter. */
export const RATE_ENTRY_BYTES = 256;
/** The fan-out threads' shared ring (fanout-threads.ts). */
export const FANOUT_RING_BYTES = 16 * 1024 * 1024;

export interface MemoryPlan {
  readonly ceilingBytes: number;
  readonly sessionsBytes: number;
  readonly channelsBytes: number;
  readonly rateTableBytes: number;
  readonly historyBytes: number;
  readonly sendQueueBytes: number;
  /** What is left for the instant-join caches of all producers together. */
  readonly cacheBytes: number;
}

/** Splits the ceiling; null with the reason when the limits alone need more than it. */
export function planMemory(o: BrokerOptions): MemoryPlan | { readonly error: string } {
  const perSession = SESSION_BYTES + o.maxSubscriptionsPerClient * SUBSCRIPTION_BYTES +
    (o.connectedSockets || o.fanoutThreads > 0 ? PEER_SOCKET_BYTES : 0);
  const sessionsBytes = o.maxSessions * perSession;
  // A streaming producer's history index: per track and slot, seq, start, length, arrival time.
  let slots = 1;
  while (slots < o.historyDatagrams) slots *= 2;
  const channelsBytes = o.maxProducers * (CHANNEL_BYTES + (o.latencyMs > 0 ? 2 * slots * 28 : 0));
  const rateTableBytes = o.maxRateTrackedAddresses * RATE_ENTRY_BYTES;
  const historyBytes = o.latencyMs > 0 ? o.historyBytes : 0;
  const sendQueueBytes = o.maxSendQueueBytes + (o.fanoutThreads > 0 ? FANOUT_RING_BYTES : 0);
  const fixed = sessionsBytes + channelsBytes + rateTableBytes + historyBytes + sendQueueBytes;
  const cacheBytes = o.maxMemoryBytes - fixed;
  if (cacheBytes < o.maxCacheBytesPerProducer) {
    const mib = (n: number): string => `${Math.ceil(n / 2 ** 20)} MiB`;
    return {
      error: `the memory ceiling (${mib(o.maxMemoryBytes)}) is below what the limits need: ` +
        `${mib(sessionsBytes)} for ${o.maxSessions} sessions, ${mib(channelsBytes)} for ${o.maxProducers} producers, ` +
        `${mib(rateTableBytes + historyBytes + sendQueueBytes)} for rate tracking, loss-recovery history and send queues, ` +
        `and at least ${mib(o.maxCacheBytesPerProducer)} of instant-join cache: raise it or lower those limits`,
    };
  }
  return { ceilingBytes: o.maxMemoryBytes, sessionsBytes, channelsBytes, rateTableBytes, historyBytes, sendQueueBytes, cacheBytes };
}

/** One channel's share of the cache, as the budget sees it. */
export interface CacheHolder {
  /** Bytes its cached and arriving frames hold. */
  readonly cacheBytes: number;
  /** Lets its cache go (the budget needs the room); returns the bytes freed. */
  evictCache(): number;
}

/**
 * The instant-join caches of all channels together: at most `limitBytes`, and at most
 * `perProducerBytes` each. When the total is full, the channel holding the most is let go
 * first, so a producer holding no more than its fair share keeps its cache however much others
 * try to hold (PROTOCOL.md §5.3).
 */
export class CacheBudget {
  readonly limitBytes: number;
  readonly perProducerBytes: number;
  #used = 0;
  readonly #holders = new Set<CacheHolder>();
  evictions = 0;

  constructor(limitBytes: number, perProducerBytes: number) {
    this.limitBytes = limitBytes;
    this.perProducerBytes = perProducerBytes;
  }

  get usedBytes(): number {
    return this.#used;
  }

  /** Takes `bytes` more for `holder`; false when they do not fit even after evicting larger holders. */
  charge(holder: CacheHolder, bytes: number): boolean {
    if (holder.cacheBytes + bytes > this.perProducerBytes) return false;
    while (this.#used + bytes > this.limitBytes) {
      let largest: CacheHolder | null = null;
      for (const h of this.#holders) if (h !== holder && (largest === null || h.cacheBytes > largest.cacheBytes)) largest = h;
      // Nobody else holds more than this one will: it does not get the room.
      if (largest === null || largest.cacheBytes <= holder.cacheBytes + bytes) return false;
      largest.evictCache();
      this.evictions++;
    }
    this.#used += bytes;
    if (holder.cacheBytes === 0) this.#holders.add(holder);
    return true;
  }

  /** Gives `bytes` back; a holder that holds nothing more is forgotten. */
  release(holder: CacheHolder, bytes: number): void {
    this.#used -= bytes;
    if (holder.cacheBytes === 0) this.#holders.delete(holder);
  }
}
