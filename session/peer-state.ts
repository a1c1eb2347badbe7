import { MessageType, SESSION_ID_OFFSET, Status } from '../protocol/constants.ts';
import { decode, encodeControl, type ControlMessage, type HelloMessage, type Message } from '../protocol/codec.ts';
import { isProtocolError } from '../protocol/errors.ts';
import {
  deriveSessionKeys, generateEphemeralKey, ReplayWindow, seal, verifyTag, type EphemeralKey, type SessionKeys,
} from '../protocol/session-crypto.ts';

/**
 * The peer's half of the session protocol (PROTOCOL.md §2.2, §4.9) as plain synchronous steps:
 * the handshake, sealing what the peer sends and opening what the broker sends. BrokerSession
 * drives it over a socket with timers; tests and the benchmark drive it directly.
 */

/** An open session as the peer holds it. */
export interface PeerSessionState {
  readonly id: number;
  readonly keys: SessionKeys;
  readonly replay: ReplayWindow;
  nextPacketNo: number;
}

/** One handshake: an ephemeral key, the HELLOs that carry it, and the check of the broker's answer. */
export class PeerHandshake {
  readonly key: EphemeralKey = generateEphemeralKey();

  /** HELLO without a token (first), or echoing the broker's token (second). */
  hello(requestId: number, token: Buffer = Buffer.alloc(0)): HelloMessage {
    return { type: MessageType.HELLO, producerId: 0, requestId, token, publicKey: this.key.publicKey };
  }

  /**
   * The broker's answer to the echoed token opens the session: ACK OK to HELLO, in a new
   * session, carrying the broker's key. The keys are derived, then its tag is checked. Null when
   * it is not that answer or its tag is wrong.
   */
  open(raw: Buffer, echoRequestId: number): PeerSessionState | null {
    if (raw.length < SESSION_ID_OFFSET + 4) return null;
    const sid = raw.readUInt32BE(SESSION_ID_OFFSET);
    let m: Message;
    try {
      m = decode(raw);
    } catch (err) {
      if (!isProtocolError(err)) throw err;
      return null;
    }
    if (sid === 0 || m.type !== MessageType.ACK || m.ackedType !== MessageType.HELLO || m.status !== Status.OK
      || m.requestId !== echoRequestId || m.detail.publicKey === undefined) return null;
    const keys = deriveSessionKeys({
      own: this.key, otherPublicKey: m.detail.publicKey, peerPublicKey: this.key.publicKey, brokerPublicKey: m.detail.publicKey, sessionId: sid,
    });
    if (keys === null || !verifyTag(raw, keys.brokerToPeer)) return null;
    const state: PeerSessionState = { id: sid, keys, replay: new ReplayWindow(), nextPacketNo: 1 };
    state.replay.accept(m.packetNo ?? 0);
    return state;
  }
}

/** Encodes and seals a message the peer sends within its session. */
export function sealForBroker(s: PeerSessionState, m: ControlMessage, maxBytes = 65507): Buffer {
  const buf = encodeControl({ ...m, sessionId: s.id }, maxBytes);
  return seal(buf, s.id, s.nextPacketNo++, s.keys.peerToBroker);
}

/**
 * Opens a datagram the broker sent within the session: the tag, then the packet number, then
 * the decode. A string is the reason it was dropped.
 */
export function openFromBroker(s: PeerSessionState, raw: Buffer): ControlMessage | string {
  if (!verifyTag(raw, s.keys.brokerToPeer)) return 'FC_DROP_BAD_TAG';
  let m: Message;
  try {
    m = decode(raw);
  } catch (err) {
    if (!isProtocolError(err)) throw err;
    return err.code;
  }
  if (m.type === MessageType.MEDIA) return 'FC_DROP_UNEXPECTED_TYPE';
  if (!s.replay.accept(m.packetNo ?? 0)) return 'FC_DROP_REPLAY';
  return m;
}

/**
 * Opens a session with a broker reached synchronously (a Broker object fed directly, in tests
 * and the benchmark): `feed` hands it a datagram, `lastReply` is what it last sent back.
 */
export function openSessionDirect(feed: (d: Buffer) => void, lastReply: () => Buffer | undefined): PeerSessionState {
  const hs = new PeerHandshake();
  feed(encodeControl(hs.hello(1)));
  const challenge = lastReply();
  const m = challenge === undefined ? null : decode(challenge);
  if (m?.type !== MessageType.ACK || m.detail.token === undefined) throw new Error('the broker sent no token');
  feed(encodeControl(hs.hello(2, m.detail.token)));
  const welcome = lastReply();
  const s = welcome === undefined ? null : hs.open(welcome, 2);
  if (s === null) throw new Error('the broker opened no session');
  return s;
}
