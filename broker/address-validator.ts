import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { TOKEN_BYTES } from '../protocol/constants.ts';

const MAC_BYTES = TOKEN_BYTES - 4;

/**
 * Stateless address validation, as QUIC's Retry and DTLS's HelloVerifyRequest do
 * (PROTOCOL.md §4.9): a token is the issue time and an HMAC over address, port and that
 * time, keyed with a secret made at start. Only the address it was issued to can echo it,
 * and the broker keeps nothing until it is echoed. A restarted broker has a new secret.
 */
export class AddressValidator {
  readonly #secret: Buffer;
  readonly #lifetimeMs: number;

  constructor(opts: { lifetimeMs: number; secret?: Buffer }) {
    this.#secret = opts.secret ?? randomBytes(32);
    this.#lifetimeMs = opts.lifetimeMs;
  }

  mint(address: string, port: number, nowMs: number): Buffer {
    const token = Buffer.allocUnsafe(TOKEN_BYTES);
    const issuedS = Math.floor(nowMs / 1000) >>> 0;
    token.writeUInt32BE(issuedS, 0);
    this.#mac(address, port, issuedS).copy(token, 4);
    return token;
  }

  verify(token: Buffer, address: string, port: number, nowMs: number): boolean {
    if (token.length !== TOKEN_BYTES) return false;
    const issuedS = token.readUInt32BE(0);
    const ageMs = nowMs - issuedS * 1000;
    if (ageMs < -1000 || ageMs > this.#lifetimeMs) return false;
    return timingSafeEqual(this.#mac(address, port, issuedS), token.subarray(4));
  }

  #mac(address: string, port: number, issuedS: number): Buffer {
    return createHmac('sha256', this.#secret).update(`${address}\n${port}\n${issuedS}`).digest().subarray(0, MAC_BYTES);
  }
}
