/**
 * The ring the broker's main thread writes and its fan-out threads read (docs/SCALING.md): one
 * ordered stream of media datagrams and of the changes to who watches what, in shared memory.
 * Pure: no threads, sockets or clocks here, so one thread can test it whole.
 *
 * Every reader reads every entry. The writer never overwrites an entry a reader has not passed,
 * and says so (write returns false) instead of waiting. A reader copies what it needs before it
 * moves on, so a send the kernel queues never reads a slot that was written again.
 */

/** What an entry carries. */
export const RingEntryKind = {
  /** A MEDIA datagram for every subscriber of `channel`. */
  MEDIA: 0,
  /** A client for reader `target`: the payload is `port address` in ASCII; `peer` names it from now on. */
  OPEN: 1,
  CLOSE: 2,
  SUBSCRIBE: 3,
  UNSUBSCRIBE: 4,
} as const;
export type RingEntryKind = (typeof RingEntryKind)[keyof typeof RingEntryKind];

/** The shared memory of one ring; postMessage it to each reader's thread. */
export interface RingMemory {
  readonly readers: number;
  /** Int32: [0] entries written; [1 + r] entries reader r has passed; [1 + R + r] bytes its sockets hold queued; [1 + 2R + r] its send errors. */
  readonly control: SharedArrayBuffer;
  /** Int32 per slot: offset, length, kind, channel, peer, target. */
  readonly slots: SharedArrayBuffer;
  /** Float64 per slot: where its payload starts, counted in bytes ever written (for backlogs). */
  readonly starts: SharedArrayBuffer;
  readonly data: SharedArrayBuffer;
}

export interface RingOptions {
  readonly readers: number;
  /** Entries the ring holds; a power of two. */
  readonly slots: number;
  /** Payload bytes the ring holds. */
  readonly bytes: number;
}

const FIELDS = 6;
const OFFSET = 0;
const LENGTH = 1;
const KIND = 2;
const CHANNEL = 3;
const PEER = 4;
const TARGET = 5;

export function allocateRing(o: RingOptions): RingMemory {
  if (!Number.isInteger(Math.log2(o.slots))) throw new RangeError(`ring slots must be a power of two, not ${o.slots}`);
  return {
    readers: o.readers,
    control: new SharedArrayBuffer(4 * (1 + 3 * o.readers)),
    slots: new SharedArrayBuffer(4 * FIELDS * o.slots),
    starts: new SharedArrayBuffer(8 * o.slots),
    data: new SharedArrayBuffer(o.bytes),
  };
}

/**
 * The main thread's end. Entry counts are int32 and wrap (after 2^31 entries, about 1.5 hours at
 * 400k/s): every comparison is a wrapped difference.
 */
export class RingWriter {
  readonly #control: Int32Array;
  readonly #slots: Int32Array;
  readonly #starts: Float64Array;
  readonly #data: Uint8Array;
  readonly #mask: number;
  readonly #readers: number;
  #written: number;
  /** Bytes ever written, padding at the end of the data included. */
  #total = 0;

  /** `firstEntry`: where counting starts (tests start near 2^31 to cross the wrap). */
  constructor(memory: RingMemory, firstEntry = 0) {
    this.#control = new Int32Array(memory.control);
    this.#slots = new Int32Array(memory.slots);
    this.#starts = new Float64Array(memory.starts);
    this.#data = new Uint8Array(memory.data);
    this.#mask = this.#starts.length - 1;
    this.#readers = memory.readers;
    this.#written = firstEntry | 0;
    Atomics.store(this.#control, 0, this.#written);
    for (let r = 0; r < this.#readers; r++) Atomics.store(this.#control, 1 + r, this.#written);
  }

  /** The largest payload one entry may carry. */
  get maxPayloadBytes(): number {
    return this.#data.length >>> 2;
  }

  /**
   * Appends an entry and wakes the readers; false when a reader is so far behind that the ring
   * has no room (the caller drops media, and queues changes to send again).
   */
  write(kind: RingEntryKind, channel: number, peer: number, target: number, payload: Uint8Array): boolean {
    const len = payload.length;
    if (len > this.maxPayloadBytes) throw new RangeError(`a ring entry holds at most ${this.maxPayloadBytes} bytes, not ${len}`);
    const oldest = this.#oldestUnread();
    if (oldest !== -1 && ((this.#written - oldest) | 0) > this.#mask) return false;
    const capacity = this.#data.length;
    let at = this.#total % capacity;
    let start = this.#total;
    if (at + len > capacity) {
      start += capacity - at; // the tail is too short: skip it
      at = 0;
    }
    if (oldest !== -1 && start + len - this.#starts[oldest & this.#mask] > capacity) return false;
    this.#data.set(payload, at);
    const i = (this.#written & this.#mask) * FIELDS;
    const s = this.#slots;
    s[i + OFFSET] = at;
    s[i + LENGTH] = len;
    s[i + KIND] = kind;
    s[i + CHANNEL] = channel | 0;
    s[i + PEER] = peer;
    s[i + TARGET] = target;
    this.#starts[this.#written & this.#mask] = start;
    this.#total = start + len;
    this.#written = (this.#written + 1) | 0;
    Atomics.store(this.#control, 0, this.#written);
    Atomics.notify(this.#control, 0);
    return true;
  }

  /** Bytes written and not yet passed by the slowest reader (the skipped tail of the data included). */
  unreadBytes(): number {
    let worst = 0;
    for (let r = 0; r < this.#readers; r++) {
      const read = Atomics.load(this.#control, 1 + r);
      if (read !== this.#written) worst = Math.max(worst, this.#total - this.#starts[read & this.#mask]);
    }
    return worst;
  }

  /** The most bytes one reader reported its sockets hold queued (the kernel would not take them yet). */
  queuedBytes(): number {
    let worst = 0;
    for (let r = 0; r < this.#readers; r++) worst = Math.max(worst, Atomics.load(this.#control, 1 + this.#readers + r));
    return worst;
  }

  /** Send errors the readers counted, all together. */
  sendErrors(): number {
    let n = 0;
    for (let r = 0; r < this.#readers; r++) n += Atomics.load(this.#control, 1 + 2 * this.#readers + r);
    return n;
  }

  /** The first entry some reader has not passed; -1 when all are passed. */
  #oldestUnread(): number {
    let oldest = -1;
    let most = 0;
    for (let r = 0; r < this.#readers; r++) {
      const read = Atomics.load(this.#control, 1 + r);
      const behind = (this.#written - read) | 0;
      if (behind > most) {
        most = behind;
        oldest = read;
      }
    }
    return oldest;
  }
}

/** One entry as a reader sees it; valid until the reader's next `next()`. */
export interface RingEntry {
  kind: RingEntryKind;
  channel: number;
  peer: number;
  target: number;
  offset: number;
  length: number;
}

/** A fan-out thread's end: entries in order, each seen once. */
export class RingReader {
  readonly #control: Int32Array;
  readonly #slots: Int32Array;
  readonly #mask: number;
  readonly #index: number;
  readonly #readers: number;
  readonly data: Buffer;
  #read: number;
  readonly #entry: RingEntry = { kind: 0, channel: 0, peer: 0, target: 0, offset: 0, length: 0 };

  constructor(memory: RingMemory, index: number) {
    this.#control = new Int32Array(memory.control);
    this.#slots = new Int32Array(memory.slots);
    this.#mask = this.#slots.length / FIELDS - 1;
    this.#index = index;
    this.#readers = memory.readers;
    this.data = Buffer.from(memory.data);
    this.#read = Atomics.load(this.#control, 1 + index);
  }

  /** The next entry, or null when it has read everything written. Passing the previous one frees it. */
  next(): RingEntry | null {
    if (this.#read === Atomics.load(this.#control, 0)) return null;
    const i = (this.#read & this.#mask) * FIELDS;
    const s = this.#slots;
    const e = this.#entry;
    e.offset = s[i + OFFSET];
    e.length = s[i + LENGTH];
    e.kind = s[i + KIND] as RingEntryKind;
    e.channel = s[i + CHANNEL] >>> 0;
    e.peer = s[i + PEER];
    e.target = s[i + TARGET];
    return e;
  }

  /** Frees the entry `next()` returned: the writer may reuse its slot and bytes. */
  done(): void {
    this.#read = (this.#read + 1) | 0;
    Atomics.store(this.#control, 1 + this.#index, this.#read);
  }

  /**
   * Entries passed so far. Once `next()` returned null, wait (Atomics.waitAsync on `control`,
   * index 0) while the written count still equals this: no entry can slip in between.
   */
  get position(): number {
    return this.#read;
  }

  /** The control words; index 0 is the written count, for Atomics.wait / waitAsync. */
  get control(): Int32Array {
    return this.#control;
  }

  /** What this reader's sockets hold queued, and its send errors, for the writer to read. */
  report(queuedBytes: number, sendErrors: number): void {
    Atomics.store(this.#control, 1 + this.#readers + this.#index, Math.min(queuedBytes, 0x7fffffff));
    Atomics.store(this.#control, 1 + 2 * this.#readers + this.#index, sendErrors | 0);
  }
}
