/**
 * Interarrival jitter as RFC 3550 §6.4.1 and §A.8 compute it: the mean deviation of the
 * difference in transit time of consecutive datagrams, smoothed with gain 1/16. Timestamps are
 * the sender's media time in ms; arrival times the receiver's clock in ms. Pure.
 */
export class JitterEstimator {
  #lastTransitMs: number | null = null;
  /** Current estimate, in ms. */
  jitterMs = 0;

  /** Records one first transmission (not a retransmission: its arrival says nothing of the path's jitter). */
  record(timestampMs: number, arrivalMs: number): void {
    const transit = arrivalMs - timestampMs;
    if (this.#lastTransitMs !== null) {
      const d = Math.abs(transit - this.#lastTransitMs);
      this.jitterMs += (d - this.jitterMs) / 16;
    }
    this.#lastTransitMs = transit;
  }

  /** Starts over (a new epoch: a new sender clock). */
  reset(): void {
    this.#lastTransitMs = null;
    this.jitterMs = 0;
  }
}
