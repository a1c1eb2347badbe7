import {
  createCipheriv, createDecipheriv, createPublicKey, generateKeyPairSync, hkdfSync, scryptSync, sign, verify,
  type KeyObject,
} from 'node:crypto';
import { FRAME_KEY_BYTES, FRAME_SIGNATURE_BYTES, FRAME_GCM_TAG_BYTES } from './constants.ts';

/**
 * Frames signed end to end, and optionally encrypted end to end (PROTOCOL.md §3.7).
 *
 * A producer signs every frame (video frame or audio chunk) with an Ed25519 key of its own run;
 * the public key reaches clients only inside authenticated messages (ANNOUNCE to the broker, the
 * SUBSCRIBE ACK to a client). With a passphrase, the frame is first encrypted with AES-256-GCM
 * under a key derived from the passphrase, the producer ID and the run's public key, so the
 * broker forwards ciphertext it cannot read. Signatures are over the ciphertext: a client checks
 * a frame before it spends anything on decrypting it. One signature per frame, none per datagram.
 * Pure: no clock, no socket.
 */

/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw key follows it (RFC 8410). */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const SIGN_CONTEXT = Buffer.from('framecast frame v2\0');
const PASSPHRASE_SALT = 'framecast passphrase v2\0';
const STREAM_KEY_INFO = Buffer.from('framecast frame encryption');
/** scrypt cost: about 30-60 ms once per stream and viewer, a passphrase guess costs the same. */
const SCRYPT = { N: 1 << 14, r: 8, p: 1 } as const;
/** Bytes of a frame's identity that the signature (and the encryption) covers. */
const CONTEXT_BYTES = SIGN_CONTEXT.length + 17;

/** Which frame of which run: what a signature is bound to, so no frame can pass for another. */
export interface FrameIdentity {
  readonly producerId: number;
  readonly epoch: number;
  readonly track: number;
  readonly frameNo: number;
  readonly timestampMs: number;
}

function context(f: FrameIdentity, into: Buffer): Buffer {
  SIGN_CONTEXT.copy(into, 0);
  let o = SIGN_CONTEXT.length;
  o = into.writeUInt32BE(f.producerId >>> 0, o);
  o = into.writeUInt32BE(f.epoch >>> 0, o);
  o = into.writeUInt8(f.track, o);
  o = into.writeUInt32BE(f.frameNo >>> 0, o);
  into.writeUInt32BE(f.timestampMs >>> 0, o);
  return into;
}

/** AES-GCM nonce: unique per frame of a run (track and frame number); the key is unique per run. */
function nonce(f: FrameIdentity): Buffer {
  const iv = Buffer.alloc(12);
  iv.writeUInt8(f.track, 3);
  iv.writeUInt32BE(f.frameNo >>> 0, 8);
  return iv;
}

/** The key a passphrase gives one producer ID's streams (PROTOCOL.md §3.7); slow on purpose. */
export function passphraseKey(passphrase: string, producerId: number): Buffer {
  return scryptSync(passphrase, PASSPHRASE_SALT + (producerId >>> 0).toString(16), 32, SCRYPT);
}

/** The AES-256-GCM key of one run: the passphrase key, salted with the run's public frame key. */
function streamKey(passKey: Buffer, frameKey: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', passKey, frameKey, STREAM_KEY_INFO, 32));
}

/** A producer's side: a fresh signing key per run, and the encryption key if there is a passphrase. */
export class FrameSealer {
  /** Raw 32-byte Ed25519 public key, sent in ANNOUNCE. */
  readonly publicKey: Buffer;
  readonly encrypted: boolean;
  readonly #privateKey: KeyObject;
  readonly #streamKey: Buffer | null;
  readonly #ctx = Buffer.alloc(CONTEXT_BYTES);

  constructor(args: { producerId: number; passphrase: string | null }) {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const der = publicKey.export({ format: 'der', type: 'spki' });
    this.publicKey = Buffer.from(der.subarray(der.length - FRAME_KEY_BYTES));
    this.#privateKey = privateKey;
    this.encrypted = args.passphrase !== null;
    this.#streamKey = args.passphrase === null ? null : streamKey(passphraseKey(args.passphrase, args.producerId), this.publicKey);
  }

  /** The frame as it travels: the body (encrypted, with its GCM tag, when there is a passphrase), then the signature. */
  seal(f: FrameIdentity, body: Buffer): Buffer {
    const ctx = context(f, this.#ctx);
    let payload = body;
    if (this.#streamKey !== null) {
      const c = createCipheriv('aes-256-gcm', this.#streamKey, nonce(f));
      c.setAAD(ctx);
      payload = Buffer.concat([c.update(body), c.final(), c.getAuthTag()]);
    }
    const signature = sign(null, Buffer.concat([ctx, payload]), this.#privateKey);
    return Buffer.concat([payload, signature]);
  }
}

export type OpenResult =
  | { readonly ok: true; readonly data: Buffer }
  | { readonly ok: false; readonly why: 'forged' | 'undecryptable' | 'encrypted' };

/** A client's side, for one run of one producer: checks signatures and decrypts. */
export class FrameOpener {
  readonly #publicKey: KeyObject;
  readonly #frameKey: Buffer;
  readonly #streamKey: Buffer | null;
  readonly encrypted: boolean;

  /** `passKey`: passphraseKey() of the client's passphrase for this producer ID, or null. Throws on a key that is not Ed25519. */
  constructor(args: { frameKey: Buffer; encrypted: boolean; passKey: Buffer | null }) {
    this.#frameKey = Buffer.from(args.frameKey);
    this.#publicKey = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, args.frameKey]), format: 'der', type: 'spki' });
    this.encrypted = args.encrypted;
    this.#streamKey = args.encrypted && args.passKey !== null ? streamKey(args.passKey, args.frameKey) : null;
  }

  /** Whether this opener is for the run whose public frame key is `frameKey`. */
  isFor(frameKey: Buffer): boolean {
    return this.#frameKey.equals(frameKey);
  }

  /** Whether the frame's signature is the producer's (PROTOCOL.md §3.7). */
  verify(f: FrameIdentity, sealed: Buffer): boolean {
    if (sealed.length <= FRAME_SIGNATURE_BYTES) return false;
    const payloadEnd = sealed.length - FRAME_SIGNATURE_BYTES;
    const ctx = context(f, Buffer.allocUnsafe(CONTEXT_BYTES));
    try {
      return verify(null, Buffer.concat([ctx, sealed.subarray(0, payloadEnd)]), this.#publicKey, sealed.subarray(payloadEnd));
    } catch {
      return false;
    }
  }

  /** The frame's content, from a frame whose signature was verified. */
  open(f: FrameIdentity, sealed: Buffer): OpenResult {
    const payload = sealed.subarray(0, sealed.length - FRAME_SIGNATURE_BYTES);
    if (!this.encrypted) return { ok: true, data: payload };
    if (this.#streamKey === null) return { ok: false, why: 'encrypted' };
    if (payload.length < FRAME_GCM_TAG_BYTES) return { ok: false, why: 'undecryptable' };
    const d = createDecipheriv('aes-256-gcm', this.#streamKey, nonce(f));
    d.setAAD(context(f, Buffer.allocUnsafe(CONTEXT_BYTES)));
    d.setAuthTag(payload.subarray(payload.length - FRAME_GCM_TAG_BYTES));
    try {
      return { ok: true, data: Buffer.concat([d.update(payload.subarray(0, payload.length - FRAME_GCM_TAG_BYTES)), d.final()]) };
    } catch {
      return { ok: false, why: 'undecryptable' };
    }
  }
}

/** Whether `key` is usable as a frame key (32 bytes that Ed25519 accepts). */
export function isFrameKey(key: Buffer): boolean {
  if (key.length !== FRAME_KEY_BYTES) return false;
  try {
    createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, key]), format: 'der', type: 'spki' });
    return true;
  } catch {
    return false;
  }
}
