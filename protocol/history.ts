/** Bytes of a MEDIA header read here (PROTOCOL.md §3.1): epoch at 8, seq at 20. */
const EPOCH_OFFSET = 8;
const SEQ_OFFSET = 20;

/**
 * The broker's short memory of one producer's recent MEDIA datagrams, for retransmission on
 * NAK (PROTOCOL.md §3.6). Datagrams are copied into one circular byte log (a single slab,
 * allocated on first use), indexed per track by sequence number, with their arrival times.
 * Copying once per datagram, rather than keeping the received Buffers, lets those die young:
 * holding a thousand of them alive made every garbage collection longer, which showed as
 * milliseconds of added latency in the benchmark (docs/BENCHMARKS.md). Pure: time is passed in.
 */
export class RetransmitHistory {
  readonly #slabBytes: number;
  #slab: Buffer | null = null;
  /** Bytes ever written; a datagram's bytes are intact while written − start ≤ slab size. */
  #written = 0;
  readonly #mask: number;
  /**
   * Per track (video, audio), per slot (seq & mask): seq + 1 (0: empty), absolute start,
   * length, arrival time. Allocated with the slab, on first use.
   */
  #seq: [Float64Array, Float64Array] | null = null;
  #start: [Float64Array, Float64Array] | null = null;
  #len: [Uint32Array, Uint32Array] | null = null;
  #time: [Float64Array, Float64Array] | null = null;
  #lastPutMs = -Infinity;

  /** `slots` per track is rounded up to a power of two; `slabBytes` bounds the bytes held. */
  constructor(slots: number, slabBytes: number) {
    let size = 1;
    while (size < slots) size *= 2;
    this.#mask = size - 1;
    this.#slabBytes = slabBytes;
  }

  /** Slots per track. */
  get capacity(): number {
    return this.#mask + 1;
  }

  /** Bytes of memory held (0 until the first datagram, and after release). */
  get bytesHeld(): number {
    return this.#slab === null ? 0 : this.#slab.length + 2 * (this.#mask + 1) * (8 + 8 + 4 + 8);
  }

  /** Copies in a well-formed MEDIA datagram of `track`. Larger than a quarter of the slab: not kept. */
  put(track: number, msg: Buffer, nowMs: number): void {
    const n = msg.length;
    if (n > this.#slabBytes / 4) return;
    const slab = this.#slab ?? this.#allocate();
    let at = this.#written % this.#slabBytes;
    if (at + n > this.#slabBytes) {
      // Never wrap a datagram: skip to the slab's start.
      this.#written += this.#slabBytes - at;
      at = 0;
    }
    msg.copy(slab, at);
    const seq = msg.readUInt32BE(SEQ_OFFSET);
    const i = seq & this.#mask;
    this.#seq![track][i] = seq + 1;
    this.#start![track][i] = this.#written;
    this.#len![track][i] = n;
    this.#time![track][i] = nowMs;
    this.#written += n;
    this.#lastPutMs = nowMs;
  }

  /**
   * A copy of the datagram of `track` with this epoch and sequence number, if it arrived at
   * most `maxAgeMs` ago and is still held; else null.
   */
  get(track: number, epoch: number, seq: number, nowMs: number, maxAgeMs: number): Buffer | null {
    const i = seq & this.#mask;
    if (this.#slab === null || this.#seq![track][i] !== seq + 1 || nowMs - this.#time![track][i] > maxAgeMs) return null;
    const start = this.#start![track][i];
    const len = this.#len![track][i];
    if (this.#written - start > this.#slabBytes) return null; // overwritten since
    const at = start % this.#slabBytes;
    const view = this.#slab.subarray(at, at + len);
    if (view.readUInt32BE(EPOCH_OFFSET) !== epoch >>> 0 || view.readUInt32BE(SEQ_OFFSET) !== seq >>> 0) return null;
    return Buffer.from(view);
  }

  /** Lets the memory go once nothing held is younger than `maxAgeMs` (an idle or ended stream). */
  release(nowMs: number, maxAgeMs: number): void {
    if (this.#slab !== null && nowMs - this.#lastPutMs > maxAgeMs) this.clear();
  }

  clear(): void {
    this.#slab = null;
    this.#seq = this.#start = this.#time = null;
    this.#len = null;
    this.#written = 0;
  }

  #allocate(): Buffer {
    const n = this.#mask + 1;
    this.#slab = Buffer.allocUnsafeSlow(this.#slabBytes);
    this.#seq = [new Float64Array(n), new Float64Array(n)];
    this.#start = [new Float64Array(n), new Float64Array(n)];
    this.#len = [new Uint32Array(n), new Uint32Array(n)];
    this.#time = [new Float64Array(n), new Float64Array(n)];
    return this.#slab;
  }
}
