interface Bucket {
  tokens: number;
  lastMs: number;
}

/**
 * Token buckets per source address: `ratePerSecond` sustained, bursts up to the same number.
 * Memory is bounded: past `maxTracked` addresses the least recently inserted is forgotten
 * (a forgotten address starts again with a full bucket, which costs at most one burst).
 */
export class RateLimiter {
  readonly #rate: number;
  readonly #maxTracked: number;
  readonly #buckets = new Map<string, Bucket>();

  constructor(opts: { ratePerSecond: number; maxTracked: number }) {
    this.#rate = opts.ratePerSecond;
    this.#maxTracked = opts.maxTracked;
  }

  /** Takes one token for `key`; false when its bucket is empty. `rate`: this call's rate, if not the usual (never lower). */
  allow(key: string, nowMs: number, rate = this.#rate): boolean {
    if (rate < this.#rate) rate = this.#rate;
    let b = this.#buckets.get(key);
    if (b === undefined) {
      if (this.#buckets.size >= this.#maxTracked) this.#buckets.delete(this.#buckets.keys().next().value!);
      b = { tokens: rate, lastMs: nowMs };
      this.#buckets.set(key, b);
    } else {
      b.tokens = Math.min(rate, b.tokens + ((nowMs - b.lastMs) * rate) / 1000);
      b.lastMs = nowMs;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Forgets buckets that have been full for a second or more: they hold nothing to remember. */
  sweep(nowMs: number): void {
    for (const [key, b] of this.#buckets) {
      if (b.tokens + ((nowMs - b.lastMs) * this.#rate) / 1000 >= this.#rate + this.#rate) this.#buckets.delete(key);
    }
  }

  get tracked(): number {
    return this.#buckets.size;
  }
}
