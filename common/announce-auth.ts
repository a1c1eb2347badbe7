import { createHmac, timingSafeEqual } from 'node:crypto';
import { ANNOUNCE_AUTH_BYTES, ANNOUNCE_AUTH_OFFSET } from '../protocol/constants.ts';

const MAC_OFFSET = ANNOUNCE_AUTH_OFFSET + 4;
const MAC_END = ANNOUNCE_AUTH_OFFSET + ANNOUNCE_AUTH_BYTES;

/** The auth field a producer puts in ANNOUNCE before signing: wall-clock seconds, MAC zeroed. */
export function announceAuthPlaceholder(wallMs: number): Buffer {
  const auth = Buffer.alloc(ANNOUNCE_AUTH_BYTES);
  auth.writeUInt32BE(Math.floor(wallMs / 1000) >>> 0, 0);
  return auth;
}

function mac(datagram: Buffer, secret: string): Buffer {
  const copy = Buffer.from(datagram);
  copy.fill(0, MAC_OFFSET, MAC_END);
  return createHmac('sha256', secret).update(copy).digest();
}

/** Signs an encoded ANNOUNCE in place: HMAC-SHA256 over the whole datagram, MAC bytes zeroed (PROTOCOL.md §4.1). */
export function signAnnounce(datagram: Buffer, secret: string): void {
  mac(datagram, secret).copy(datagram, MAC_OFFSET);
}

/** Checks an ANNOUNCE's signature and that it was made within `windowMs` of `wallMs`. */
export function verifyAnnounce(datagram: Buffer, secret: string, wallMs: number, windowMs: number): boolean {
  if (datagram.length < MAC_END || datagram[ANNOUNCE_AUTH_OFFSET - 1] !== ANNOUNCE_AUTH_BYTES) return false;
  const signedMs = datagram.readUInt32BE(ANNOUNCE_AUTH_OFFSET) * 1000;
  if (Math.abs(wallMs - signedMs) > windowMs) return false;
  return timingSafeEqual(mac(datagram, secret), datagram.subarray(MAC_OFFSET, MAC_END));
}
