import { randomBytes, randomInt } from 'node:crypto';
import { mediaTokenHi, mediaTokenLo } from '../protocol/media-header.ts';
import { deriveSessionKeys, generateEphemeralKey, ReplayWindow, type SessionKeys } from '../protocol/session-crypto.ts';
import type { ClientEntry } from './clients.ts';

/** A path a session's peer seems to have moved to, asked to prove it receives (PROTOCOL.md §4.12). */
export interface PathProbe {
  readonly address: string;
  readonly port: number;
  readonly nonce: Buffer;
  readonly sentMs: number;
}

/** One peer's session with the broker (PROTOCOL.md §2.2): its keys, its proven address and its consent. */
export interface PeerSession {
  readonly id: number;
  readonly keys: SessionKeys;
  /** The media token as two 32-bit words, compared on the hot path without allocating. */
  readonly mediaTokenHi: number;
  readonly mediaTokenLo: number;
  /** The proven path: where everything for this session is sent. Changes only by PATH_RESPONSE. */
  address: string;
  port: number;
  /** The source IP it was opened from: what the per-IP limits count (PROTOCOL.md §5.4). */
  readonly ip: string;
  /** Last authenticated datagram on the proven path: consent (PROTOCOL.md §5.2). */
  lastHeardMs: number;
  readonly replay: ReplayWindow;
  nextPacketNo: number;
  /** Set once the session subscribes or lists: the client side of it. */
  client: ClientEntry | null;
  /** Producer IDs this session announced and holds. */
  readonly producerIds: Set<number>;
  /** Control datagrams it may still send now (token bucket), and NAKs apart. */
  controlTokens: number;
  nakTokens: number;
  refillMs: number;
  probe: PathProbe | null;
  /** The answer to the HELLO that opened it, sent again if that HELLO is retried. */
  welcome: Buffer | null;
  /**
   * A producer's socket of the broker's port connected to it (PROTOCOL.md §3.5): its MEDIA waits
   * in a buffer of its own, so however much it sends, clients' control is not dropped with it.
   */
  ingress: { close(): void } | null;
  readonly peerPublicKey: Buffer;
  /**
   * An edge's session (PROTOCOL.md §5.5), once it has said so: never redirected; with a proven
   * `advertise`, where viewers may be redirected, its reported load, and the viewers sent there since.
   */
  edge: { advertise: string | null; load: number; heardMs: number; assigned: number } | null;
}

export interface SessionLimits {
  readonly maxSessions: number;
  readonly maxSessionsPerIp: number;
}

/**
 * The broker's sessions by ID, with counts per source IP. Only a handshake whose address is
 * proven creates one (PROTOCOL.md §4.9), so forged sources cannot fill it.
 */
export class SessionTable {
  readonly #byId = new Map<number, PeerSession>();
  readonly #perIp = new Map<string, number>();
  readonly #limits: SessionLimits;

  constructor(limits: SessionLimits) {
    this.#limits = limits;
  }

  get size(): number {
    return this.#byId.size;
  }

  get(id: number): PeerSession | undefined {
    return this.#byId.get(id);
  }

  values(): IterableIterator<PeerSession> {
    return this.#byId.values();
  }

  /** The session opened from this address with this peer key: a retried HELLO. */
  findRetry(address: string, port: number, peerPublicKey: Buffer): PeerSession | undefined {
    for (const s of this.#byId.values()) {
      if (s.port === port && s.address === address && s.peerPublicKey.equals(peerPublicKey)) return s;
    }
    return undefined;
  }

  /** Why a new session from `ip` cannot be opened now, or null. */
  refusal(ip: string): string | null {
    if (this.#byId.size >= this.#limits.maxSessions) return `the broker holds at most ${this.#limits.maxSessions} sessions`;
    if ((this.#perIp.get(ip) ?? 0) >= this.#limits.maxSessionsPerIp) return `at most ${this.#limits.maxSessionsPerIp} sessions per IP address`;
    return null;
  }

  /**
   * Opens a session for a proven address and a peer's ephemeral key: the broker's own key and
   * the derived keys (PROTOCOL.md §4.9). Null when the peer's key is unusable.
   */
  open(args: { address: string; port: number; peerPublicKey: Buffer; nowMs: number; burst: { control: number; nak: number } }): { session: PeerSession; brokerPublicKey: Buffer } | null {
    let id: number;
    do id = randomInt(1, 0xffffffff); while (this.#byId.has(id));
    const own = generateEphemeralKey();
    const keys = deriveSessionKeys({ own, otherPublicKey: args.peerPublicKey, peerPublicKey: args.peerPublicKey, brokerPublicKey: own.publicKey, sessionId: id });
    if (keys === null) return null;
    const session: PeerSession = {
      id, keys, address: args.address, port: args.port, ip: args.address, lastHeardMs: args.nowMs, replay: new ReplayWindow(),
      mediaTokenHi: keys.mediaToken.readUInt32BE(0), mediaTokenLo: keys.mediaToken.readUInt32BE(4),
      nextPacketNo: 1, client: null, edge: null, producerIds: new Set(), controlTokens: args.burst.control, nakTokens: args.burst.nak, refillMs: args.nowMs,
      probe: null, welcome: null, ingress: null, peerPublicKey: Buffer.from(args.peerPublicKey),
    };
    this.#byId.set(id, session);
    this.#perIp.set(session.ip, (this.#perIp.get(session.ip) ?? 0) + 1);
    return { session, brokerPublicKey: own.publicKey };
  }

  close(s: PeerSession): void {
    if (!this.#byId.delete(s.id)) return;
    const n = (this.#perIp.get(s.ip) ?? 1) - 1;
    if (n <= 0) this.#perIp.delete(s.ip);
    else this.#perIp.set(s.ip, n);
  }
}

/** Whether a MEDIA datagram carries this session's media token (PROTOCOL.md §3.1); no allocation. */
export function hasMediaToken(msg: Buffer, s: PeerSession): boolean {
  return mediaTokenHi(msg) === s.mediaTokenHi && mediaTokenLo(msg) === s.mediaTokenLo;
}

/** A random nonce for PATH_CHALLENGE (PROTOCOL.md §4.12). */
export function pathNonce(): Buffer {
  return randomBytes(8);
}
