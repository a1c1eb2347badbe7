import { describe, expect, it } from 'vitest';
import { encodeControl, MessageType, Role, TAG_BYTES } from '../protocol/index.ts';
import {
  announceAuth, deriveSessionKeys, generateEphemeralKey, ReplayWindow, seal, verifyAnnounceAuth, verifyTag,
} from '../protocol/session-crypto.ts';

describe('ReplayWindow (PROTOCOL.md §2.2)', () => {
  it('takes each number once, within the window, in any order, and across the 32-bit wrap', () => {
    const w = new ReplayWindow(64);
    expect([5, 3, 5, 4, 3, 70, 6, 7, 69].map((n) => w.accept(n))).toEqual([true, true, false, true, false, true, false, true, true]);
    const wrap = new ReplayWindow(64);
    expect([0xfffffffe, 0xffffffff, 0, 1, 0xffffffff].map((n) => wrap.accept(n))).toEqual([true, true, true, true, false]);
  });
});

describe('session keys and tags (PROTOCOL.md §4.9)', () => {
  const peer = generateEphemeralKey();
  const broker = generateEphemeralKey();
  const args = { peerPublicKey: peer.publicKey, brokerPublicKey: broker.publicKey, sessionId: 42 };
  const atPeer = deriveSessionKeys({ ...args, own: peer, otherPublicKey: broker.publicKey })!;
  const atBroker = deriveSessionKeys({ ...args, own: broker, otherPublicKey: peer.publicKey })!;

  it('both ends derive the same keys; a datagram sealed by one is proven at the other, and any change fails', () => {
    expect(atPeer.mediaToken.equals(atBroker.mediaToken)).toBe(true);
    expect(atPeer.binding.equals(atBroker.binding)).toBe(true);
    const d = seal(encodeControl({ type: MessageType.HEARTBEAT, producerId: 0, requestId: 1, sessionId: 42, role: Role.CLIENT }), 42, 7, atPeer.peerToBroker);
    expect(verifyTag(d, atBroker.peerToBroker)).toBe(true);
    expect(verifyTag(d, atBroker.brokerToPeer)).toBe(false); // each direction has its own key
    for (const i of [0, 9, 13, 20, d.length - TAG_BYTES, d.length - 1]) {
      const bad = Buffer.from(d);
      bad[i] ^= 1;
      expect(verifyTag(bad, atBroker.peerToBroker)).toBe(false);
    }
  });

  it('another session ID, or a low-order key, gives no usable keys', () => {
    const other = deriveSessionKeys({ ...args, sessionId: 43, own: peer, otherPublicKey: broker.publicKey })!;
    expect(other.mediaToken.equals(atPeer.mediaToken)).toBe(false);
    expect(deriveSessionKeys({ ...args, own: peer, otherPublicKey: Buffer.alloc(32) })).toBeNull();
    expect(deriveSessionKeys({ ...args, own: peer, otherPublicKey: Buffer.alloc(31, 1) })).toBeNull();
  });

  it('a producer secret\'s proof holds in its session only', () => {
    const auth = announceAuth('s3cret', atPeer.binding, 0x1aaa99);
    expect(verifyAnnounceAuth(auth, 's3cret', atBroker.binding, 0x1aaa99)).toBe(true);
    expect(verifyAnnounceAuth(auth, 's3cret', atBroker.binding, 0x1aaa98)).toBe(false);
    const other = deriveSessionKeys({ ...args, sessionId: 43, own: broker, otherPublicKey: peer.publicKey })!;
    expect(verifyAnnounceAuth(auth, 's3cret', other.binding, 0x1aaa99)).toBe(false);
    expect(verifyAnnounceAuth(auth, 'guess', atBroker.binding, 0x1aaa99)).toBe(false);
  });
});
