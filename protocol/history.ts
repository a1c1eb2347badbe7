/** Bytes of a MEDIA header read here (PROTOCOL.md §3.1): epoch at 8, seq at 20. */
const EPOCH_OFFSET = 8;
const SEQ_OFFSET = 20;

/**
 * The broker's short memory of one track's recent MEDIA datagrams, for retransmission on NAK
 * (PROTOCOL.md §3.6). A ring indexed by sequence number holding references to the received
 * datagrams (no copies) with their arrival times. `prune` lets go of what is older than the
 * latency budget, so an idle producer's last datagrams do not stay in memory. Pure: time is
 * passed in.
 */
export class RetransmitHistory {
  readonly #slots: (Buffer | undefined)[];
  readonly #times: Float64Array;
  readonly #mask: number;
  /** Sequence numbers in [#oldest, #newest] may be held; nothing outside. */
  #oldest = 0;
  #newest = -1;
  #held = 0;
  #epoch = -1;

  /** `capacity` is rounded up to a power of two. */
  constructor(capacity: number) {
    let size = 1;
    while (size < capacity) size *= 2;
    this.#slots = new Array(size).fill(undefined);
    this.#times = new Float64Array(size);
    this.#mask = size - 1;
  }

  get capacity(): number {
    return this.#mask + 1;
  }

  /** Datagrams held now. */
  get size(): number {
    return this.#held;
  }

  /** Keeps a reference to `msg` (a well-formed MEDIA datagram) under its sequence number. */
  put(msg: Buffer, nowMs: number): void {
    const seq = msg.readUInt32BE(SEQ_OFFSET);
    const epoch = msg.readUInt32BE(EPOCH_OFFSET);
    if (epoch !== this.#epoch) {
      this.clear(); // a restarted producer numbers from 0 again
      this.#epoch = epoch;
    } else if (seq < this.#oldest) {
      return; // older than anything the ring can still hold
    }
    const i = seq & this.#mask;
    if (this.#slots[i] === undefined) this.#held++;
    this.#slots[i] = msg;
    this.#times[i] = nowMs;
    if (this.#newest < 0) this.#oldest = seq;
    if (seq > this.#newest) {
      this.#newest = seq;
      if (seq - this.#oldest > this.#mask) this.#oldest = seq - this.#mask;
    }
  }

  /**
   * The datagram with this epoch and sequence number, if it arrived at most `maxAgeMs` ago;
   * else null (never held, overwritten, or too old to arrive in time).
   */
  get(epoch: number, seq: number, nowMs: number, maxAgeMs: number): Buffer | null {
    const i = seq & this.#mask;
    const msg = this.#slots[i];
    if (msg === undefined || nowMs - this.#times[i] > maxAgeMs) return null;
    if (msg.readUInt32BE(SEQ_OFFSET) !== seq || msg.readUInt32BE(EPOCH_OFFSET) !== epoch >>> 0) return null;
    return msg;
  }

  /** Lets go of datagrams older than `maxAgeMs`. Amortised O(1) per datagram put. */
  prune(nowMs: number, maxAgeMs: number): void {
    while (this.#held > 0 && this.#oldest <= this.#newest) {
      const i = this.#oldest & this.#mask;
      const msg = this.#slots[i];
      if (msg !== undefined) {
        if (nowMs - this.#times[i] <= maxAgeMs) return;
        this.#slots[i] = undefined;
        this.#held--;
      }
      this.#oldest++;
    }
    if (this.#held === 0) this.#oldest = this.#newest + 1;
  }

  clear(): void {
    this.#slots.fill(undefined);
    this.#held = 0;
    this.#oldest = 0;
    this.#newest = -1;
    this.#epoch = -1;
  }
}
