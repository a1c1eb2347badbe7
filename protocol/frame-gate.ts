import { MEDIA_HEADER_BYTES } from './constants.ts';
import type { FrameIdentity } from './frame-seal.ts';
import {
  mediaEpoch, mediaFragCount, mediaFragIndex, mediaFragOffset, mediaFrameBytes, mediaFrameNo, mediaProducerId, mediaTimestampMs, mediaTrack,
} from './media-header.ts';

/** What holding a frame costs beyond its payload: a slot per part. */
const SLOT_BYTES = 8;

export interface FrameGateOptions {
  /** How long an incomplete frame waits for its missing datagrams (the latency budget). */
  readonly holdMs: number;
  /** Bytes held at most (payloads, and a slot per part); beyond it the oldest incomplete frames are let go. */
  readonly maxBytes: number;
  /** The run's check of a whole frame: its producer's signature (FrameOpener.verify). */
  readonly verify: (frame: FrameIdentity, sealed: Buffer) => boolean;
  /** Told of datagrams taken that will never be released (refused, or parts of a frame dropped), so the caller counts every datagram once. */
  readonly discarded?: (datagrams: number) => void;
}

export interface FrameGateCounters {
  /** Frames whose signature verified, released. */
  framesReleased: number;
  /** Frames whose signature did not verify (forged, or a forged datagram among the real ones): dropped whole. */
  framesForged: number;
  /** Frames still incomplete when their time ran out, or let go for room. */
  framesExpired: number;
  /** Datagrams that contradict their frame (another size, another run, a part out of range), or repeat a part held. */
  datagramsRefused: number;
  /** Datagrams taken that will never be released: the refused ones, and the parts of every frame dropped or forgotten. */
  datagramsDiscarded: number;
}

interface HeldFrame {
  readonly identity: FrameIdentity;
  readonly frameBytes: number;
  readonly parts: (Buffer | undefined)[];
  received: number;
  bytes: number;
  readonly firstSeenMs: number;
}

const NONE: readonly Buffer[] = Object.freeze([]);

/**
 * Lets a stream's MEDIA datagrams through only as whole frames whose producer's signature
 * verifies (PROTOCOL.md §3.7): what a relay that forwards to others (an edge broker) puts before
 * its fan-out, so a datagram forged on its upstream link is never multiplied. A frame's
 * datagrams are held (views, not copies) until its last part arrives, then checked once and
 * released together, in fragment order, byte for byte as received. Pure: the caller gives the time.
 */
export class FrameGate {
  readonly counters: FrameGateCounters = { framesReleased: 0, framesForged: 0, framesExpired: 0, datagramsRefused: 0, datagramsDiscarded: 0 };
  readonly #opts: FrameGateOptions;
  /** Frames being gathered, by track and frame number, oldest first (Map keeps insertion order). */
  readonly #held = new Map<number, HeldFrame>();
  #bytes = 0;

  constructor(opts: FrameGateOptions) {
    this.#opts = opts;
  }

  /** Payload bytes held now. */
  get heldBytes(): number {
    return this.#bytes;
  }

  /**
   * Takes one MEDIA datagram (checked by checkMedia); returns the datagrams it releases: none,
   * or all of a frame that is now whole and verified.
   */
  push(d: Buffer, nowMs: number): readonly Buffer[] {
    const track = mediaTrack(d);
    const frameNo = mediaFrameNo(d);
    const key = track * 0x1_0000_0000 + frameNo;
    const count = mediaFragCount(d);
    const index = mediaFragIndex(d);
    const payload = d.length - MEDIA_HEADER_BYTES;
    let f = this.#held.get(key);
    if (f === undefined) {
      f = {
        identity: { producerId: mediaProducerId(d), epoch: mediaEpoch(d), track, frameNo, timestampMs: mediaTimestampMs(d) },
        frameBytes: mediaFrameBytes(d), parts: new Array<Buffer | undefined>(count), received: 0, bytes: count * SLOT_BYTES, firstSeenMs: nowMs,
      };
      this.#held.set(key, f);
      this.#bytes += f.bytes;
    }
    const id = f.identity;
    if (index >= f.parts.length || count !== f.parts.length || mediaFrameBytes(d) !== f.frameBytes || mediaEpoch(d) !== id.epoch ||
        mediaTimestampMs(d) !== id.timestampMs || f.parts[index] !== undefined ||
        mediaFragOffset(d) + payload > f.frameBytes) {
      this.counters.datagramsRefused++;
      this.#discard(1);
      return NONE;
    }
    f.parts[index] = d;
    f.received++;
    f.bytes += payload;
    this.#bytes += payload;
    if (f.received < f.parts.length) {
      this.#makeRoom();
      return NONE;
    }
    this.#forget(key, f);
    const parts = f.parts as Buffer[];
    const sealed = Buffer.alloc(f.frameBytes);
    for (const p of parts) p.copy(sealed, mediaFragOffset(p), MEDIA_HEADER_BYTES);
    if (f.bytes !== f.frameBytes + parts.length * SLOT_BYTES || !this.#opts.verify(id, sealed)) {
      this.counters.framesForged++;
      this.#discard(f.received);
      return NONE;
    }
    this.counters.framesReleased++;
    return parts;
  }

  /** Lets go of frames whose time ran out. */
  expire(nowMs: number): void {
    for (const [key, f] of this.#held) {
      if (nowMs - f.firstSeenMs <= this.#opts.holdMs) break; // oldest first: the rest are younger
      this.#forget(key, f);
      this.counters.framesExpired++;
      this.#discard(f.received);
    }
  }

  /** Forgets everything held (a new run of the producer, or no one left to send to). */
  clear(): void {
    let held = 0;
    for (const f of this.#held.values()) held += f.received;
    this.#held.clear();
    this.#bytes = 0;
    this.#discard(held);
  }

  #makeRoom(): void {
    for (const [key, f] of this.#held) {
      if (this.#bytes <= this.#opts.maxBytes) return;
      this.#forget(key, f);
      this.counters.framesExpired++;
      this.#discard(f.received);
    }
  }

  #discard(datagrams: number): void {
    if (datagrams === 0) return;
    this.counters.datagramsDiscarded += datagrams;
    this.#opts.discarded?.(datagrams);
  }

  #forget(key: number, f: HeldFrame): void {
    this.#held.delete(key);
    this.#bytes -= f.bytes;
  }
}
