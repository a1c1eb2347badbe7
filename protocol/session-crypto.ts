import {
  createHash, createHmac, createPublicKey, createSecretKey, diffieHellman, generateKeyPairSync, hkdfSync,
  timingSafeEqual, type KeyObject,
} from 'node:crypto';
import {
  ANNOUNCE_AUTH_BYTES, MEDIA_TOKEN_BYTES, PACKET_NUMBER_OFFSET, PUBLIC_KEY_BYTES, SESSION_ID_OFFSET, TAG_BYTES,
} from './constants.ts';

/**
 * The cryptography of a session (PROTOCOL.md §2.2, §4.9): an ephemeral X25519 exchange, keys
 * derived with HKDF-SHA256, and an HMAC-SHA256 tag (first 16 bytes) over every control datagram.
 * Pure: no clock, no socket.
 */

/** DER prefix of an X25519 SubjectPublicKeyInfo; the raw key follows it (RFC 8410). */
const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');
const HKDF_SALT = Buffer.from('framecast v2 session');
const KEY_MATERIAL_BYTES = 32 + 32 + MEDIA_TOKEN_BYTES;

export interface EphemeralKey {
  readonly privateKey: KeyObject;
  /** Raw 32 bytes, as they travel in HELLO and in the broker's answer. */
  readonly publicKey: Buffer;
}

/** A fresh X25519 key pair, one per handshake. */
export function generateEphemeralKey(): EphemeralKey {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const der = publicKey.export({ format: 'der', type: 'spki' });
  return { privateKey, publicKey: Buffer.from(der.subarray(der.length - PUBLIC_KEY_BYTES)) };
}

/** What both ends of a session hold once the handshake is done. */
export interface SessionKeys {
  /** Tags datagrams from the peer (producer, client) to the broker. */
  readonly peerToBroker: KeyObject;
  /** Tags datagrams from the broker to the peer. */
  readonly brokerToPeer: KeyObject;
  /** Proves a producer's MEDIA to the broker, which zeroes it before forwarding (PROTOCOL.md §3.1). */
  readonly mediaToken: Buffer;
  /** SHA-256 of both public keys and the session ID: what a producer secret is bound to (PROTOCOL.md §4.1). */
  readonly binding: Buffer;
}

/**
 * Derives a session's keys (PROTOCOL.md §4.9): HKDF-SHA256 over the X25519 shared secret, with
 * both public keys and the session ID as info, so each session has keys of its own.
 */
export function deriveSessionKeys(args: {
  own: EphemeralKey; otherPublicKey: Buffer; peerPublicKey: Buffer; brokerPublicKey: Buffer; sessionId: number;
}): SessionKeys | null {
  if (args.otherPublicKey.length !== PUBLIC_KEY_BYTES) return null;
  let shared: Buffer;
  try {
    const other = createPublicKey({ key: Buffer.concat([X25519_SPKI_PREFIX, args.otherPublicKey]), format: 'der', type: 'spki' });
    shared = diffieHellman({ privateKey: args.own.privateKey, publicKey: other });
  } catch {
    return null; // not a usable X25519 key
  }
  // An all-zero shared secret means a low-order public key (RFC 7748 §6.1): refuse it.
  if (shared.every((b) => b === 0)) return null;
  const id = Buffer.allocUnsafe(4);
  id.writeUInt32BE(args.sessionId >>> 0, 0);
  const info = Buffer.concat([args.peerPublicKey, args.brokerPublicKey, id]);
  const okm = Buffer.from(hkdfSync('sha256', shared, HKDF_SALT, info, KEY_MATERIAL_BYTES));
  return {
    peerToBroker: createSecretKey(okm.subarray(0, 32)),
    brokerToPeer: createSecretKey(okm.subarray(32, 64)),
    mediaToken: Buffer.from(okm.subarray(64, 64 + MEDIA_TOKEN_BYTES)),
    binding: createHash('sha256').update(info).digest(),
  };
}

function tagOf(datagram: Buffer, key: KeyObject): Buffer {
  return createHmac('sha256', key).update(datagram.subarray(0, datagram.length - TAG_BYTES)).digest();
}

/**
 * Seals an encoded session datagram in place (PROTOCOL.md §2.2): writes its session ID and
 * packet number, then the tag over everything before it.
 */
export function seal(datagram: Buffer, sessionId: number, packetNo: number, key: KeyObject): Buffer {
  datagram.writeUInt32BE(sessionId >>> 0, SESSION_ID_OFFSET);
  datagram.writeUInt32BE(packetNo >>> 0, PACKET_NUMBER_OFFSET);
  tagOf(datagram, key).copy(datagram, datagram.length - TAG_BYTES, 0, TAG_BYTES);
  return datagram;
}

/** Whether a session datagram's tag is right; constant time. */
export function verifyTag(datagram: Buffer, key: KeyObject): boolean {
  if (datagram.length < TAG_BYTES) return false;
  const want = tagOf(datagram, key).subarray(0, TAG_BYTES);
  return timingSafeEqual(want, datagram.subarray(datagram.length - TAG_BYTES));
}

/** The auth field of an ANNOUNCE for an ID with a secret: bound to this session, so no copy works in another (PROTOCOL.md §4.1). */
export function announceAuth(secret: string, binding: Buffer, producerId: number): Buffer {
  const id = Buffer.allocUnsafe(4);
  id.writeUInt32BE(producerId >>> 0, 0);
  return createHmac('sha256', secret).update('framecast announce\n').update(binding).update(id).digest().subarray(0, ANNOUNCE_AUTH_BYTES);
}

/** An edge's proof of the shared edge secret (PROTOCOL.md §5.5), bound to its session and to the address it advertises. */
export function edgeAuth(secret: string, binding: Buffer, advertise: string): Buffer {
  return createHmac('sha256', secret).update('framecast edge\n').update(binding).update(advertise).digest().subarray(0, ANNOUNCE_AUTH_BYTES);
}

export function verifyEdgeAuth(auth: Buffer, secret: string, binding: Buffer, advertise: string): boolean {
  return auth.length === ANNOUNCE_AUTH_BYTES && timingSafeEqual(edgeAuth(secret, binding, advertise), auth);
}

export function verifyAnnounceAuth(auth: Buffer, secret: string, binding: Buffer, producerId: number): boolean {
  return auth.length === ANNOUNCE_AUTH_BYTES && timingSafeEqual(announceAuth(secret, binding, producerId), auth);
}

/**
 * Refuses replays (PROTOCOL.md §2.2), as IPsec's anti-replay window does (RFC 4303 §3.4.3):
 * the highest number seen and a bitmap of the `size` numbers below it. A number below the window
 * or seen before is refused. Numbers are 32-bit and compared in serial arithmetic (RFC 1982), so
 * a MEDIA seq may wrap.
 */
export class ReplayWindow {
  readonly #bits: Uint32Array;
  readonly #size: number;
  #highest = 0;
  #started = false;

  constructor(size = 64) {
    this.#size = Math.max(32, Math.ceil(size / 32) * 32);
    this.#bits = new Uint32Array(this.#size / 32);
  }

  /** Accepts `n` once (and records it), or refuses it. */
  accept(n: number): boolean {
    const ahead = (n - this.#highest) | 0;
    if (!this.#started || ahead > 0) {
      if (!this.#started || ahead >= this.#size) this.#bits.fill(0);
      else for (let i = 1; i <= ahead; i++) this.#clear((this.#highest + i) >>> 0);
      this.#started = true;
      this.#highest = n >>> 0;
      this.#set(n);
      return true;
    }
    if (-ahead >= this.#size) return false;
    if (this.#has(n)) return false;
    this.#set(n);
    return true;
  }

  #has(n: number): boolean {
    const i = (n >>> 0) % this.#size;
    return (this.#bits[i >>> 5] & (1 << (i & 31))) !== 0;
  }
  #set(n: number): void {
    const i = (n >>> 0) % this.#size;
    this.#bits[i >>> 5] |= 1 << (i & 31);
  }
  #clear(n: number): void {
    const i = (n >>> 0) % this.#size;
    this.#bits[i >>> 5] &= ~(1 << (i & 31));
  }
}
