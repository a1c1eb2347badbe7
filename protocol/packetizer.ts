import { MEDIA_HEADER_BYTES, MIN_DATAGRAM_BYTES, MAX_UDP_PAYLOAD_BYTES, Track } from './constants.ts';
import { encodeMedia } from './codec.ts';
import { ProtocolError, ProtocolErrorCode } from './errors.ts';
import type { FrameIdentity } from './frame-seal.ts';

export interface PacketizerOptions {
  readonly producerId: number;
  /** Random per producer run; receivers reset their state when it changes (PROTOCOL.md §3.1). */
  readonly epoch: number;
  readonly maxDatagramBytes: number;
  /** Turns a frame into what travels: signed, and encrypted with a passphrase (PROTOCOL.md §3.7). */
  readonly seal?: (f: FrameIdentity, body: Buffer) => Buffer;
}

/**
 * Splits frames into MEDIA datagrams of at most `maxDatagramBytes`, numbering frames and
 * datagrams per track (PROTOCOL.md §3.3). Pure: keeps only its counters.
 */
export class MediaPacketizer {
  readonly #opts: PacketizerOptions;
  readonly #seq = [0, 0];
  readonly #frameNo = [0, 0];
  readonly #maxPayload: number;

  constructor(opts: PacketizerOptions) {
    if (opts.maxDatagramBytes < MIN_DATAGRAM_BYTES || opts.maxDatagramBytes > MAX_UDP_PAYLOAD_BYTES) {
      throw new ProtocolError(ProtocolErrorCode.TOO_LARGE, `maxDatagramBytes must be in ${MIN_DATAGRAM_BYTES}..${MAX_UDP_PAYLOAD_BYTES}`);
    }
    this.#opts = opts;
    this.#maxPayload = opts.maxDatagramBytes - MEDIA_HEADER_BYTES;
  }

  /** Fragments one frame; the datagrams are to be sent in order. */
  packetize(track: Track, body: Buffer, timestampMs: number, flags: number): Buffer[] {
    if (body.length === 0) throw new ProtocolError(ProtocolErrorCode.BAD_LENGTH, 'cannot send an empty frame');
    const { producerId, epoch } = this.#opts;
    const frameNo = this.#frameNo[track];
    const frame = this.#opts.seal?.({ producerId, epoch, track, frameNo, timestampMs }, body) ?? body;
    const fragCount = Math.ceil(frame.length / this.#maxPayload);
    if (fragCount > 0xffff) throw new ProtocolError(ProtocolErrorCode.TOO_LARGE, `frame of ${frame.length} bytes needs more than 65535 fragments`);
    this.#frameNo[track] = (frameNo + 1) >>> 0;
    const out: Buffer[] = new Array(fragCount);
    for (let i = 0; i < fragCount; i++) {
      const fragOffset = i * this.#maxPayload;
      const seq = this.#seq[track];
      this.#seq[track] = (seq + 1) >>> 0;
      out[i] = encodeMedia({
        producerId: this.#opts.producerId,
        epoch: this.#opts.epoch,
        track, flags, fragIndex: i, fragCount, seq, frameNo, timestampMs,
        frameBytes: frame.length, fragOffset,
        payload: frame.subarray(fragOffset, fragOffset + this.#maxPayload),
      });
    }
    return out;
  }
}
