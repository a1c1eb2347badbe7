import { describe, expect, it } from 'vitest';
import { FrameOpener, FrameSealer, isFrameKey, passphraseKey, type FrameIdentity } from '../protocol/frame-seal.ts';
import { FRAME_GCM_TAG_BYTES, FRAME_SIGNATURE_BYTES } from '../protocol/constants.ts';

const id: FrameIdentity = { producerId: 0x1aaa99, epoch: 7, track: 0, frameNo: 3, timestampMs: 250 };
const jpeg = Buffer.concat([Buffer.from('ffd8ffe0', 'hex'), Buffer.alloc(5000, 0x42), Buffer.from('ffd9', 'hex')]);
const PASS = 'correct horse battery';

describe('frames signed end to end (PROTOCOL.md §3.7)', () => {
  it('verifies the producer\'s frame and gives its bytes back unchanged', () => {
    const sealer = new FrameSealer({ producerId: id.producerId, passphrase: null });
    const sealed = sealer.seal(id, jpeg);
    expect(sealed.length).toBe(jpeg.length + FRAME_SIGNATURE_BYTES);
    const opener = new FrameOpener({ frameKey: sealer.publicKey, encrypted: false, passKey: null });
    expect(opener.verify(id, sealed)).toBe(true);
    expect(opener.open(id, sealed)).toEqual({ ok: true, data: jpeg });
    expect(isFrameKey(sealer.publicKey)).toBe(true);
  });

  it('refuses a changed byte, another frame\'s identity, and another run\'s key', () => {
    const sealer = new FrameSealer({ producerId: id.producerId, passphrase: null });
    const sealed = sealer.seal(id, jpeg);
    const opener = new FrameOpener({ frameKey: sealer.publicKey, encrypted: false, passKey: null });
    const flipped = Buffer.from(sealed);
    flipped[100] ^= 1;
    expect(opener.verify(id, flipped)).toBe(false);
    for (const other of [{ ...id, frameNo: 4 }, { ...id, epoch: 8 }, { ...id, track: 1 }, { ...id, timestampMs: 251 }, { ...id, producerId: 2 }]) {
      expect(opener.verify(other, sealed)).toBe(false);
    }
    const otherRun = new FrameOpener({ frameKey: new FrameSealer({ producerId: id.producerId, passphrase: null }).publicKey, encrypted: false, passKey: null });
    expect(otherRun.verify(id, sealed)).toBe(false);
    expect(opener.verify(id, sealed.subarray(0, 10))).toBe(false);
  });

  it('encrypts with a passphrase: no plaintext on the wire, opened only with the same passphrase', () => {
    const sealer = new FrameSealer({ producerId: id.producerId, passphrase: PASS });
    expect(sealer.encrypted).toBe(true);
    const sealed = sealer.seal(id, jpeg);
    expect(sealed.length).toBe(jpeg.length + FRAME_GCM_TAG_BYTES + FRAME_SIGNATURE_BYTES);
    expect(sealed.includes(Buffer.alloc(64, 0x42))).toBe(false);
    const right = new FrameOpener({ frameKey: sealer.publicKey, encrypted: true, passKey: passphraseKey(PASS, id.producerId) });
    expect(right.verify(id, sealed)).toBe(true);
    expect(right.open(id, sealed)).toEqual({ ok: true, data: jpeg });
    const wrong = new FrameOpener({ frameKey: sealer.publicKey, encrypted: true, passKey: passphraseKey('another passphrase', id.producerId) });
    expect(wrong.verify(id, sealed)).toBe(true); // the signature is over the ciphertext: anyone can check it
    expect(wrong.open(id, sealed)).toEqual({ ok: false, why: 'undecryptable' });
    const none = new FrameOpener({ frameKey: sealer.publicKey, encrypted: true, passKey: null });
    expect(none.open(id, sealed)).toEqual({ ok: false, why: 'encrypted' });
    // The same passphrase gives another producer ID another key.
    const otherId = new FrameOpener({ frameKey: sealer.publicKey, encrypted: true, passKey: passphraseKey(PASS, 2) });
    expect(otherId.open(id, sealed)).toEqual({ ok: false, why: 'undecryptable' });
  });

  it('never repeats a ciphertext: each frame and each run has its own nonce or key', () => {
    const a = new FrameSealer({ producerId: id.producerId, passphrase: PASS });
    const b = new FrameSealer({ producerId: id.producerId, passphrase: PASS });
    const body = (s: Buffer): Buffer => s.subarray(0, 64);
    expect(body(a.seal(id, jpeg)).equals(body(a.seal({ ...id, frameNo: 4 }, jpeg)))).toBe(false);
    expect(body(a.seal(id, jpeg)).equals(body(b.seal(id, jpeg)))).toBe(false);
  });

  it('refuses keys that are not Ed25519 public keys', () => {
    expect(isFrameKey(Buffer.alloc(31))).toBe(false);
    expect(() => new FrameOpener({ frameKey: Buffer.alloc(5), encrypted: false, passKey: null })).toThrow();
  });
});
