import type { BrokerCounters } from './counters.ts';

/**
 * What was refused or dropped since the last look, by reason: the broker logs it as one line
 * per interval (main.ts), never a line per datagram, so a flood costs the log nothing more
 * than a quiet minute (PROTOCOL.md §5.4).
 */
export class RefusalReport {
  readonly #counters: BrokerCounters;
  readonly #seen = new Map<string, number>();

  constructor(counters: BrokerCounters) {
    this.#counters = counters;
  }

  /** The counts that grew since the previous call, with their total; null when none did. */
  take(): { readonly total: number; readonly byReason: Readonly<Record<string, number>> } | null {
    let total = 0;
    const byReason: Record<string, number> = {};
    for (const source of [this.#counters.drops, this.#counters.refusals]) {
      for (const [reason, n] of source) {
        const delta = n - (this.#seen.get(reason) ?? 0);
        if (delta === 0) continue;
        this.#seen.set(reason, n);
        byReason[reason] = delta;
        total += delta;
      }
    }
    return total === 0 ? null : { total, byReason };
  }
}
