/** How far back duplicates are recognised: datagrams older than this behind the highest count as new. */
const DUPLICATE_WINDOW = 4096;

/**
 * Counts datagrams lost on one track from its sequence numbers, the way RTP receivers do
 * (RFC 3550 §6.4.1, §A.3): expected = highest - first + 1, lost = expected - received.
 * Unlike plain RFC 3550, duplicates are recognised (within DUPLICATE_WINDOW) and not counted as
 * received, so they cannot hide losses. A new epoch starts a new count and keeps the totals. Pure.
 */
export class LossCounter {
  #epoch: number | null = null;
  #base = 0;
  #highest = 0;
  #received = 0;
  #lostBefore = 0;
  #expectedBefore = 0;
  /** seq + 1 at index seq % DUPLICATE_WINDOW, for every seq seen in the window. */
  readonly #seen = new Uint32Array(DUPLICATE_WINDOW);
  duplicates = 0;

  /** Records one datagram's sequence number. */
  record(epoch: number, seq: number): void {
    if (epoch !== this.#epoch) {
      this.#lostBefore = this.lost;
      this.#expectedBefore = this.expected;
      this.#epoch = epoch;
      this.#seen.fill(0);
      this.#base = seq;
      this.#highest = seq;
      this.#received = 0;
    }
    const slot = seq % DUPLICATE_WINDOW;
    if (this.#seen[slot] === ((seq + 1) >>> 0)) {
      this.duplicates++;
      return;
    }
    this.#seen[slot] = (seq + 1) >>> 0;
    this.#received++;
    if (seq > this.#highest) this.#highest = seq;
    // A late one older than the first seen extends the window backwards.
    if (seq < this.#base) this.#base = seq;
  }

  /** The next datagram starts a new count (a verified jump past the window); totals are kept. */
  restart(): void {
    this.#lostBefore = this.lost;
    this.#expectedBefore = this.expected;
    this.#epoch = null;
  }

  get expected(): number {
    return this.#expectedBefore + (this.#epoch === null ? 0 : this.#highest - this.#base + 1);
  }

  get lost(): number {
    if (this.#epoch === null) return this.#lostBefore;
    return this.#lostBefore + Math.max(0, this.#highest - this.#base + 1 - this.#received);
  }
}
