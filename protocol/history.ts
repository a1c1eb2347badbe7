import { mediaEpoch, mediaSeq } from './media-header.ts';

/**
 * One circular byte log that every producer's recent datagrams are copied into, for
 * retransmission on NAK (PROTOCOL.md §3.6). Copying once per datagram, rather than keeping the
 * received Buffers, lets those die young (holding thousands alive lengthened every garbage
 * collection); one log for all producers, rather than one each, bounds the memory of them all
 * and keeps the copies sequential in memory. Allocated on first use.
 */
export class DatagramLog {
  readonly size: number;
  #slab: Buffer | null = null;
  /** Bytes ever appended; a record is intact while written − start ≤ size (its bytes not written over). */
  #written = 0;

  constructor(bytes: number) {
    this.size = bytes;
  }

  /** Bytes of memory held (0 until the first append). */
  get bytesHeld(): number {
    return this.#slab === null ? 0 : this.size;
  }

  /** Copies `msg` in; returns where it starts, for `read`. Never wraps a record. */
  append(msg: Buffer): number {
    const slab = (this.#slab ??= Buffer.allocUnsafeSlow(this.size));
    let at = this.#written % this.size;
    if (at + msg.length > this.size) {
      this.#written += this.size - at;
      at = 0;
    }
    slab.set(msg, at); // (Buffer#copy would allocate a view per call)
    const start = this.#written;
    this.#written += msg.length;
    return start;
  }

  /** The record at `start`, if not overwritten since: a view, valid until the next append. */
  read(start: number, length: number): Buffer | null {
    if (this.#slab === null || this.#written - start > this.size || start + length > this.#written) return null;
    const at = start % this.size;
    return this.#slab.subarray(at, at + length);
  }
}

/**
 * One producer's index into the log: per track, by sequence number, where each recent datagram
 * starts, its length and arrival time (PROTOCOL.md §3.6). Allocated while the producer streams.
 * Pure: time is passed in.
 */
export class RetransmitHistory {
  readonly #log: DatagramLog;
  readonly #mask: number;
  /** Per track (video, audio), per slot (seq & mask): seq + 1 (0: empty), start in the log, length, arrival time. */
  #seq: [Float64Array, Float64Array] | null = null;
  #start: [Float64Array, Float64Array] | null = null;
  #len: [Uint32Array, Uint32Array] | null = null;
  #time: [Float64Array, Float64Array] | null = null;
  #lastPutMs = -Infinity;

  /** `slots` per track is rounded up to a power of two. */
  constructor(slots: number, log: DatagramLog) {
    let size = 1;
    while (size < slots) size *= 2;
    this.#mask = size - 1;
    this.#log = log;
  }

  /** Slots per track. */
  get capacity(): number {
    return this.#mask + 1;
  }

  /** Bytes of index held (0 while idle); the datagrams themselves are in the shared log. */
  get bytesHeld(): number {
    return this.#seq === null ? 0 : 2 * (this.#mask + 1) * (8 + 8 + 4 + 8);
  }

  /** Copies in a well-formed MEDIA datagram of `track`. Larger than a quarter of the log: not kept. */
  put(track: number, msg: Buffer, nowMs: number): void {
    if (msg.length > this.#log.size / 4) return;
    if (this.#seq === null) this.#allocate();
    const seq = mediaSeq(msg);
    const i = seq & this.#mask;
    this.#seq![track][i] = seq + 1;
    this.#start![track][i] = this.#log.append(msg);
    this.#len![track][i] = msg.length;
    this.#time![track][i] = nowMs;
    this.#lastPutMs = nowMs;
  }

  /**
   * A copy of the datagram of `track` with this epoch and sequence number, if it arrived at
   * most `maxAgeMs` ago and is still in the log; else null.
   */
  get(track: number, epoch: number, seq: number, nowMs: number, maxAgeMs: number): Buffer | null {
    const i = seq & this.#mask;
    if (this.#seq === null || this.#seq[track][i] !== seq + 1 || nowMs - this.#time![track][i] > maxAgeMs) return null;
    const view = this.#log.read(this.#start![track][i], this.#len![track][i]);
    if (view === null || mediaEpoch(view) !== epoch >>> 0 || mediaSeq(view) !== seq >>> 0) return null;
    return Buffer.from(view);
  }

  /** Lets the index go once nothing in it is younger than `maxAgeMs` (an idle or ended stream). */
  release(nowMs: number, maxAgeMs: number): void {
    if (this.#seq !== null && nowMs - this.#lastPutMs > maxAgeMs) this.clear();
  }

  clear(): void {
    this.#seq = this.#start = this.#time = null;
    this.#len = null;
  }

  #allocate(): void {
    const n = this.#mask + 1;
    this.#seq = [new Float64Array(n), new Float64Array(n)];
    this.#start = [new Float64Array(n), new Float64Array(n)];
    this.#len = [new Uint32Array(n), new Uint32Array(n)];
    this.#time = [new Float64Array(n), new Float64Array(n)];
  }
}
