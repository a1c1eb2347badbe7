import { Packr, Unpackr } from 'msgpackr';
import { clearMediaToken, MediaOffset, writeMediaToken, mediaFragCount, mediaFragIndex, mediaFrameBytes, mediaFragOffset, mediaTrack } from './media-header.ts';
import {
  CONTROL_HEADER_BYTES, MAGIC, MAX_UDP_PAYLOAD_BYTES, MEDIA_HEADER_BYTES, MessageType, Role, Status, Track, VERSION,
  GoodbyeReason, NoticeEvent, MIN_HELLO_BYTES, TOKEN_BYTES, ANNOUNCE_AUTH_BYTES, NAK_FIXED_BYTES, NAK_RANGE_BYTES,
  MAX_NAK_RANGES, MAX_NAK_RANGE_LENGTH, RECEIVER_REPORT_BYTES, RECEIVER_REPORT_BYTES_WITHOUT_AUDIENCE, PUBLIC_KEY_BYTES, TAG_BYTES,
  SESSION_ID_OFFSET, PACKET_NUMBER_OFFSET, REQUEST_ID_OFFSET, PATH_NONCE_BYTES, FRAME_KEY_BYTES, NOTICE_ONLINE_BODY_BYTES, NOTICE_FLAG_ENCRYPTED, HEARTBEAT_BODY_BYTES, SESSION_UNKNOWN_BODY_BYTES,
} from './constants.ts';
import { ProtocolError, ProtocolErrorCode as E } from './errors.ts';
import {
  checkInt, isRecord, parseProducerInfo, parseStreamMetadata, type ProducerInfo, type StreamMetadata,
} from './metadata.ts';

// Records and other msgpackr extensions are off: bodies are plain msgpack any peer can read (PROTOCOL.md §4).
// variableMapSize: the smallest map header (fixmap), so sizes are what PROTOCOL.md gives.
const packr = new Packr({ useRecords: false, encodeUndefinedAsNil: true, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

/** A MEDIA datagram: one fragment of one frame of one track (PROTOCOL.md §3). */
export interface MediaMessage {
  readonly type: typeof MessageType.MEDIA;
  readonly producerId: number;
  readonly epoch: number;
  readonly track: Track;
  readonly flags: number;
  readonly fragIndex: number;
  readonly fragCount: number;
  readonly seq: number;
  readonly frameNo: number;
  readonly timestampMs: number;
  readonly frameBytes: number;
  readonly fragOffset: number;
  /** A view into the datagram, not a copy. */
  readonly payload: Buffer;
}

/**
 * Every control message: the header fields (PROTOCOL.md §4.0). `sessionId` 0 (or absent) is a
 * handshake datagram with no tag; any other is sealed by the session layer, which writes
 * `packetNo` and the tag into the encoded datagram.
 */
interface Control {
  readonly producerId: number;
  readonly requestId: number;
  readonly sessionId?: number;
  readonly packetNo?: number;
}
export interface AnnounceMessage extends Control {
  readonly type: typeof MessageType.ANNOUNCE;
  readonly epoch: number;
  /** The run's Ed25519 public key: every frame of this epoch is signed with it (PROTOCOL.md §3.7). */
  readonly frameKey: Buffer;
  /** Empty, or ANNOUNCE_AUTH_BYTES proving the ID's secret within this session (PROTOCOL.md §4.1). */
  readonly auth: Buffer;
  readonly metadata: StreamMetadata;
}
export interface SubscribeMessage extends Control { readonly type: typeof MessageType.SUBSCRIBE }
export interface UnsubscribeMessage extends Control { readonly type: typeof MessageType.UNSUBSCRIBE }
export interface AckDetail {
  readonly message?: string;
  readonly metadata?: StreamMetadata;
  readonly online?: boolean;
  readonly heartbeatIntervalMs?: number;
  readonly leaseMs?: number;
  /** With status VALIDATE: the token to echo in HELLO (PROTOCOL.md §4.9). */
  readonly token?: Buffer;
  /** With status OK to a HELLO: the broker's ephemeral X25519 public key (PROTOCOL.md §4.9). */
  readonly publicKey?: Buffer;
  /** With status OK to a SUBSCRIBE: the producer's current run, and the key its frames are signed with (PROTOCOL.md §3.7). */
  readonly epoch?: number;
  readonly frameKey?: Buffer;
  /** With status REDIRECT: `host:port` of the edge to subscribe at (PROTOCOL.md §5.5). */
  readonly redirect?: string;
}
export interface AckMessage extends Control {
  readonly type: typeof MessageType.ACK;
  readonly status: Status;
  readonly ackedType: MessageType;
  readonly detail: AckDetail;
}
export interface ListMessage extends Control { readonly type: typeof MessageType.LIST }
export interface ListReplyMessage extends Control {
  readonly type: typeof MessageType.LIST_REPLY;
  readonly producers: readonly ProducerInfo[];
  /** More producers are live than fit in one datagram. */
  readonly truncated: boolean;
}
export interface GoodbyeMessage extends Control { readonly type: typeof MessageType.GOODBYE; readonly reason: GoodbyeReason }
export interface HeartbeatMessage extends Control { readonly type: typeof MessageType.HEARTBEAT; readonly role: Role }
/** PRODUCER_ONLINE also names the run now live, and its frame key (PROTOCOL.md §4.8, §3.7). */
export type NoticeMessage = Control & { readonly type: typeof MessageType.NOTICE } & (
  | { readonly event: typeof NoticeEvent.PRODUCER_ONLINE; readonly epoch: number; readonly frameKey: Buffer; readonly encrypted: boolean }
  | { readonly event: typeof NoticeEvent.PRODUCER_OFFLINE | typeof NoticeEvent.PRODUCER_ENDED }
);
export interface StatsMessage extends Control { readonly type: typeof MessageType.STATS }
/** A peer opening a session: empty token first, then the broker's token echoed, with its ephemeral key (PROTOCOL.md §4.9). */
export interface HelloMessage extends Control {
  readonly type: typeof MessageType.HELLO;
  readonly token: Buffer;
  /** The peer's ephemeral X25519 public key, raw 32 bytes. */
  readonly publicKey: Buffer;
}
/** The broker asking a session's new address to prove it receives (PROTOCOL.md §4.12), and the answer. */
export interface PathChallengeMessage extends Control { readonly type: typeof MessageType.PATH_CHALLENGE; readonly nonce: Buffer }
export interface PathResponseMessage extends Control { readonly type: typeof MessageType.PATH_RESPONSE; readonly nonce: Buffer }
/**
 * The broker holds no session of that ID (it restarted, or the session lapsed): untagged, so a
 * peer only takes it as a reason to open a new session, never to drop the one it has (PROTOCOL.md §4.13).
 */
export interface SessionUnknownMessage extends Control { readonly type: typeof MessageType.SESSION_UNKNOWN; readonly unknownSessionId: number }
/** A run of missing sequence numbers on one track: first, and how many. */
export interface SeqRange { readonly first: number; readonly count: number }
/** A client asking the broker to send missing datagrams again (PROTOCOL.md §4.10). */
export interface NakMessage extends Control {
  readonly type: typeof MessageType.NAK;
  readonly epoch: number;
  readonly track: Track;
  readonly ranges: readonly SeqRange[];
}
/** A client's view of one subscription's quality, about once a second (PROTOCOL.md §4.11). */
export interface ReceiverReport {
  /** Share of datagrams lost since the previous report, in 1/256 (RFC 3550 §6.4.1). */
  readonly fractionLost: number;
  readonly cumulativeLost: number;
  /** Datagrams expected so far (first transmissions). */
  readonly expected: number;
  /** Interarrival jitter, RFC 3550 §6.4.1, in microseconds. */
  readonly jitterUs: number;
  readonly framesComplete: number;
  readonly framesDropped: number;
  readonly retransmitsReceived: number;
  /** The viewers this report speaks for (PROTOCOL.md §4.11): 1 for a client, an edge's whole audience of the stream; 1 when left out. */
  readonly audience?: number;
}
export interface ReceiverReportMessage extends Control, ReceiverReport { readonly type: typeof MessageType.RECEIVER_REPORT }
export interface StatsReplyMessage extends Control {
  readonly type: typeof MessageType.STATS_REPLY;
  readonly stats: Readonly<Record<string, number>>;
}

/** EDGE (PROTOCOL.md §5.5): an edge tells its upstream broker it is one, and with `advertise`, where viewers reach it and its load. */
export interface EdgeMessage extends Control {
  readonly type: typeof MessageType.EDGE;
  /** Viewers it serves now. */
  readonly load: number;
  /** With `advertise`: HMAC of the edge secret over the session binding and `advertise`; else empty. */
  readonly auth: Buffer;
  /** `host:port` where viewers reach it, or '' (an edge not to be redirected to, only not redirected). */
  readonly advertise: string;
}

export type ControlMessage =
  | EdgeMessage | AnnounceMessage | SubscribeMessage | UnsubscribeMessage | AckMessage | ListMessage | ListReplyMessage
  | GoodbyeMessage | HeartbeatMessage | NoticeMessage | StatsMessage | StatsReplyMessage | HelloMessage
  | NakMessage | ReceiverReportMessage | PathChallengeMessage | PathResponseMessage | SessionUnknownMessage;
export type Message = MediaMessage | ControlMessage;

/** Fields of a message to encode: everything but what the encoder derives. */
export type MediaFields = Omit<MediaMessage, 'type'> & {
  /** The producer's session media token (PROTOCOL.md §3.1); zeros when absent. */
  readonly token?: Buffer;
};

const STATUS_VALUES = new Set<number>(Object.values(Status));
const TYPE_VALUES = new Set<number>(Object.values(MessageType));
const NOTICE_VALUES = new Set<number>(Object.values(NoticeEvent));
const ROLE_VALUES = new Set<number>(Object.values(Role));
const REASON_VALUES = new Set<number>(Object.values(GoodbyeReason));
const MAX_STATS_KEYS = 256;

function writeHeader(buf: Buffer, type: MessageType, producerId: number): void {
  buf.writeUInt16BE(MAGIC, 0);
  buf[2] = VERSION;
  buf[3] = type;
  buf.writeUInt32BE(producerId >>> 0, 4);
}

function checkLimit(bytes: number, maxBytes: number): void {
  if (bytes > maxBytes) {
    throw new ProtocolError(E.TOO_LARGE, `message of ${bytes} bytes exceeds the limit of ${maxBytes}`);
  }
}

/** Encodes one MEDIA datagram; refuses output larger than `maxBytes` (PROTOCOL.md §3). */
export function encodeMedia(m: MediaFields, maxBytes = MAX_UDP_PAYLOAD_BYTES): Buffer {
  checkLimit(MEDIA_HEADER_BYTES + m.payload.length, maxBytes);
  const buf = Buffer.allocUnsafe(MEDIA_HEADER_BYTES + m.payload.length);
  writeHeader(buf, MessageType.MEDIA, m.producerId);
  const o = MediaOffset;
  buf.writeUInt32BE(m.epoch >>> 0, o.EPOCH);
  buf[o.TRACK] = m.track;
  buf[o.FLAGS] = m.flags;
  buf.writeUInt16BE(m.fragIndex, o.FRAG_INDEX);
  buf.writeUInt16BE(m.fragCount, o.FRAG_COUNT);
  buf.writeUInt16BE(0, o.FRAG_COUNT + 2);
  buf.writeUInt32BE(m.seq >>> 0, o.SEQ);
  buf.writeUInt32BE(m.frameNo >>> 0, o.FRAME_NO);
  buf.writeUInt32BE(m.timestampMs >>> 0, o.TIMESTAMP_MS);
  buf.writeUInt32BE(m.frameBytes, o.FRAME_BYTES);
  buf.writeUInt32BE(m.fragOffset, o.FRAG_OFFSET);
  if (m.token === undefined) clearMediaToken(buf);
  else writeMediaToken(buf, m.token);
  m.payload.copy(buf, MEDIA_HEADER_BYTES);
  return buf;
}

function controlBody(m: ControlMessage): Buffer {
  switch (m.type) {
    case MessageType.ANNOUNCE: {
      if (m.frameKey.length !== FRAME_KEY_BYTES) throw new ProtocolError(E.BAD_FIELD, `ANNOUNCE frameKey must be ${FRAME_KEY_BYTES} bytes`);
      const head = Buffer.allocUnsafe(4 + FRAME_KEY_BYTES + 1);
      head.writeUInt32BE(m.epoch >>> 0, 0);
      m.frameKey.copy(head, 4);
      head[4 + FRAME_KEY_BYTES] = m.auth.length;
      return Buffer.concat([head, m.auth, packr.pack(m.metadata)]);
    }
    case MessageType.ACK: {
      const head = Buffer.from([m.status, m.ackedType]);
      return Object.keys(m.detail).length === 0 ? head : Buffer.concat([head, packr.pack(m.detail)]);
    }
    case MessageType.LIST_REPLY:
      return packr.pack({ producers: m.producers, truncated: m.truncated });
    case MessageType.GOODBYE:
      return Buffer.from([m.reason]);
    case MessageType.HEARTBEAT: {
      const body = Buffer.alloc(HEARTBEAT_BODY_BYTES);
      body[0] = m.role;
      return body;
    }
    case MessageType.HELLO: {
      // Token length, token, public key, then zeros up to MIN_HELLO_BYTES (PROTOCOL.md §4.9).
      const body = Buffer.alloc(Math.max(1 + m.token.length + PUBLIC_KEY_BYTES, MIN_HELLO_BYTES - CONTROL_HEADER_BYTES));
      body[0] = m.token.length;
      m.token.copy(body, 1);
      m.publicKey.copy(body, 1 + m.token.length);
      return body;
    }
    case MessageType.PATH_CHALLENGE:
    case MessageType.PATH_RESPONSE:
      return Buffer.from(m.nonce);
    case MessageType.EDGE: {
      const advertise = Buffer.from(m.advertise, 'utf8');
      if (advertise.length > MAX_ADVERTISE_BYTES) throw new ProtocolError(E.BAD_FIELD, `EDGE advertise longer than ${MAX_ADVERTISE_BYTES} bytes`);
      if (m.auth.length !== 0 && m.auth.length !== ANNOUNCE_AUTH_BYTES) throw new ProtocolError(E.BAD_FIELD, `EDGE auth must be 0 or ${ANNOUNCE_AUTH_BYTES} bytes`);
      const head = Buffer.allocUnsafe(5);
      head.writeUInt32BE(m.load >>> 0, 0);
      head[4] = m.auth.length;
      return Buffer.concat([head, m.auth, advertise]);
    }
    case MessageType.SESSION_UNKNOWN: {
      const body = Buffer.allocUnsafe(SESSION_UNKNOWN_BODY_BYTES);
      body.writeUInt32BE(m.unknownSessionId >>> 0, 0);
      return body;
    }
    case MessageType.NOTICE: {
      if (m.event !== NoticeEvent.PRODUCER_ONLINE) return Buffer.from([m.event]);
      if (m.frameKey.length !== FRAME_KEY_BYTES) throw new ProtocolError(E.BAD_FIELD, `NOTICE frameKey must be ${FRAME_KEY_BYTES} bytes`);
      const body = Buffer.allocUnsafe(NOTICE_ONLINE_BODY_BYTES);
      body[0] = m.event;
      body[1] = m.encrypted ? NOTICE_FLAG_ENCRYPTED : 0;
      body.writeUInt32BE(m.epoch >>> 0, 2);
      m.frameKey.copy(body, 6);
      return body;
    }
    case MessageType.STATS_REPLY:
      return packr.pack(m.stats);
    case MessageType.NAK: {
      const body = Buffer.allocUnsafe(NAK_FIXED_BYTES + NAK_RANGE_BYTES * m.ranges.length);
      body.writeUInt32BE(m.epoch >>> 0, 0);
      body[4] = m.track;
      body[5] = m.ranges.length;
      let o = NAK_FIXED_BYTES;
      for (const r of m.ranges) {
        body.writeUInt32BE(r.first >>> 0, o);
        body.writeUInt16BE(r.count, o + 4);
        o += NAK_RANGE_BYTES;
      }
      return body;
    }
    case MessageType.RECEIVER_REPORT: {
      const body = Buffer.allocUnsafe(RECEIVER_REPORT_BYTES);
      body[0] = m.fractionLost;
      body[1] = 0;
      body.writeUInt32BE(m.cumulativeLost >>> 0, 2);
      body.writeUInt32BE(m.expected >>> 0, 6);
      body.writeUInt32BE(m.jitterUs >>> 0, 10);
      body.writeUInt32BE(m.framesComplete >>> 0, 14);
      body.writeUInt32BE(m.framesDropped >>> 0, 18);
      body.writeUInt32BE(m.retransmitsReceived >>> 0, 22);
      body.writeUInt32BE((m.audience ?? 1) >>> 0, 26);
      return body;
    }
    case MessageType.SUBSCRIBE:
    case MessageType.UNSUBSCRIBE:
    case MessageType.LIST:
    case MessageType.STATS:
      return Buffer.alloc(0);
  }
}

/**
 * Encodes one control message; refuses output larger than `maxBytes` (PROTOCOL.md §4). A message
 * of a session (sessionId not 0) gets room for its tag, zeroed: the session layer seals it.
 */
export function encodeControl(m: ControlMessage, maxBytes = MAX_UDP_PAYLOAD_BYTES): Buffer {
  const body = controlBody(m);
  const sessionId = m.sessionId ?? 0;
  const tagBytes = sessionId === 0 ? 0 : TAG_BYTES;
  const bytes = CONTROL_HEADER_BYTES + body.length + tagBytes;
  checkLimit(bytes, maxBytes);
  const buf = Buffer.alloc(bytes);
  writeHeader(buf, m.type, m.producerId);
  buf.writeUInt32BE(sessionId >>> 0, SESSION_ID_OFFSET);
  buf.writeUInt32BE((m.packetNo ?? 0) >>> 0, PACKET_NUMBER_OFFSET);
  buf.writeUInt32BE(m.requestId >>> 0, REQUEST_ID_OFFSET);
  body.copy(buf, CONTROL_HEADER_BYTES);
  return buf;
}

/** Encodes any message. */
export function encode(m: Message, maxBytes = MAX_UDP_PAYLOAD_BYTES): Buffer {
  return m.type === MessageType.MEDIA ? encodeMedia(m, maxBytes) : encodeControl(m, maxBytes);
}

/**
 * Validates a MEDIA datagram's header without allocating, for the broker's hot path.
 * Returns null when it is well formed, else the code `decode` would throw (PROTOCOL.md §3.2).
 */
export function checkMedia(buf: Buffer): E | null {
  const payloadBytes = buf.length - MEDIA_HEADER_BYTES;
  if (payloadBytes < 0) return E.TOO_SHORT;
  if (mediaTrack(buf) > Track.AUDIO) return E.BAD_TRACK;
  // Byte reads, not readUInt*BE: this runs for every datagram a producer sends.
  const fragIndex = mediaFragIndex(buf);
  const fragCount = mediaFragCount(buf);
  if (fragCount === 0 || fragIndex >= fragCount) return E.BAD_FRAGMENT;
  const frameBytes = mediaFrameBytes(buf);
  const fragOffset = mediaFragOffset(buf);
  if (fragOffset + payloadBytes > frameBytes) return E.BAD_LENGTH;
  // Every fragment carries at least one byte, so a frame cannot claim more fragments than bytes.
  if (payloadBytes === 0 || fragCount > frameBytes) return E.BAD_LENGTH;
  if (fragIndex === fragCount - 1 ? fragOffset + payloadBytes !== frameBytes : fragOffset + payloadBytes >= frameBytes) {
    return E.BAD_LENGTH;
  }
  return null;
}

/** An edge's advertised address, `host:port` (PROTOCOL.md §5.5). */
const MAX_ADVERTISE_BYTES = 261;

const MEDIA_ERROR_TEXT: Record<string, string> = {
  [E.TOO_SHORT]: `MEDIA datagram shorter than its ${MEDIA_HEADER_BYTES}-byte header`,
  [E.BAD_TRACK]: 'MEDIA track is neither video (0) nor audio (1)',
  [E.BAD_FRAGMENT]: 'MEDIA fragment index is not below a non-zero fragment count',
  [E.BAD_LENGTH]: 'MEDIA fragment offset and length do not fit the frame size',
};

function unpackBody(buf: Buffer, start: number, what: string): unknown {
  if (start >= buf.length) throw new ProtocolError(E.BAD_BODY, `${what} has no msgpack body`);
  try {
    return unpackr.unpack(buf.subarray(start));
  } catch {
    throw new ProtocolError(E.BAD_BODY, `${what} body is not valid msgpack`);
  }
}

function needBody(buf: Buffer, bytes: number, what: string): void {
  if (buf.length !== CONTROL_HEADER_BYTES + bytes) {
    throw new ProtocolError(E.BAD_LENGTH, `${what} body must be ${bytes} bytes, got ${buf.length - CONTROL_HEADER_BYTES}`);
  }
}

function oneByte(buf: Buffer, allowed: Set<number>, what: string): number {
  needBody(buf, 1, what);
  const v = buf[CONTROL_HEADER_BYTES];
  if (!allowed.has(v)) throw new ProtocolError(E.BAD_FIELD, `${what} value ${v} is not defined`);
  return v;
}

function decodeAckDetail(buf: Buffer): AckDetail {
  if (buf.length === CONTROL_HEADER_BYTES + 2) return {};
  const raw = unpackBody(buf, CONTROL_HEADER_BYTES + 2, 'ACK');
  if (!isRecord(raw)) throw new ProtocolError(E.BAD_BODY, 'ACK detail must be a map');
  const detail: { -readonly [K in keyof AckDetail]: AckDetail[K] } = {};
  if (raw.message !== undefined) {
    if (typeof raw.message !== 'string' || raw.message.length > 500) throw new ProtocolError(E.BAD_FIELD, 'ACK message must be a short string');
    detail.message = raw.message;
  }
  if (raw.metadata !== undefined) detail.metadata = parseStreamMetadata(raw.metadata);
  if (raw.online !== undefined) {
    if (typeof raw.online !== 'boolean') throw new ProtocolError(E.BAD_FIELD, 'ACK online must be a boolean');
    detail.online = raw.online;
  }
  if (raw.heartbeatIntervalMs !== undefined) detail.heartbeatIntervalMs = checkInt(raw.heartbeatIntervalMs, 'heartbeatIntervalMs', 1, 3_600_000);
  if (raw.leaseMs !== undefined) detail.leaseMs = checkInt(raw.leaseMs, 'leaseMs', 1, 3_600_000);
  if (raw.token !== undefined) {
    if (!(raw.token instanceof Uint8Array) || raw.token.length !== TOKEN_BYTES) throw new ProtocolError(E.BAD_FIELD, `ACK token must be ${TOKEN_BYTES} bytes`);
    detail.token = Buffer.from(raw.token);
  }
  if (raw.publicKey !== undefined) {
    if (!(raw.publicKey instanceof Uint8Array) || raw.publicKey.length !== PUBLIC_KEY_BYTES) throw new ProtocolError(E.BAD_FIELD, `ACK publicKey must be ${PUBLIC_KEY_BYTES} bytes`);
    detail.publicKey = Buffer.from(raw.publicKey);
  }
  if (raw.epoch !== undefined) detail.epoch = checkInt(raw.epoch, 'ACK epoch', 0, 0xffffffff);
  if (raw.frameKey !== undefined) {
    if (!(raw.frameKey instanceof Uint8Array) || raw.frameKey.length !== FRAME_KEY_BYTES) throw new ProtocolError(E.BAD_FIELD, `ACK frameKey must be ${FRAME_KEY_BYTES} bytes`);
    detail.frameKey = Buffer.from(raw.frameKey);
  }  if (raw.redirect !== undefined) {
    if (typeof raw.redirect !== 'string' || raw.redirect.length > MAX_ADVERTISE_BYTES) throw new ProtocolError(E.BAD_FIELD, 'ACK redirect must be a short host:port');
    detail.redirect = raw.redirect;
  }

  return detail;
}

function decodeControl(whole: Buffer, type: MessageType, producerId: number): ControlMessage {
  if (whole.length < CONTROL_HEADER_BYTES) {
    throw new ProtocolError(E.TOO_SHORT, `control message shorter than its ${CONTROL_HEADER_BYTES}-byte header`);
  }
  const sessionId = whole.readUInt32BE(SESSION_ID_OFFSET);
  if (sessionId !== 0 && whole.length < CONTROL_HEADER_BYTES + TAG_BYTES) {
    throw new ProtocolError(E.TOO_SHORT, `session message shorter than its header and ${TAG_BYTES}-byte tag`);
  }
  // The tag is checked by the session layer before anything is decoded (PROTOCOL.md §2.2); the body ends before it.
  const buf = sessionId === 0 ? whole : whole.subarray(0, whole.length - TAG_BYTES);
  const requestId = buf.readUInt32BE(REQUEST_ID_OFFSET);
  const base = { producerId, requestId, sessionId, packetNo: buf.readUInt32BE(PACKET_NUMBER_OFFSET) };
  switch (type) {
    case MessageType.ANNOUNCE: {
      if (buf.length < CONTROL_HEADER_BYTES + 6 + FRAME_KEY_BYTES) throw new ProtocolError(E.TOO_SHORT, 'ANNOUNCE body shorter than its epoch, frame key, auth length and metadata');
      const epoch = buf.readUInt32BE(CONTROL_HEADER_BYTES);
      const frameKey = Buffer.from(buf.subarray(CONTROL_HEADER_BYTES + 4, CONTROL_HEADER_BYTES + 4 + FRAME_KEY_BYTES));
      const authBytes = buf[CONTROL_HEADER_BYTES + 4 + FRAME_KEY_BYTES];
      if (authBytes !== 0 && authBytes !== ANNOUNCE_AUTH_BYTES) throw new ProtocolError(E.BAD_FIELD, `ANNOUNCE auth must be 0 or ${ANNOUNCE_AUTH_BYTES} bytes, not ${authBytes}`);
      const authStart = CONTROL_HEADER_BYTES + 5 + FRAME_KEY_BYTES;
      const auth = buf.subarray(authStart, authStart + authBytes);
      if (auth.length !== authBytes) throw new ProtocolError(E.TOO_SHORT, 'ANNOUNCE cut short in its auth field');
      const metadata = parseStreamMetadata(unpackBody(buf, authStart + authBytes, 'ANNOUNCE'));
      return { type, ...base, epoch, frameKey, auth, metadata };
    }
    case MessageType.SUBSCRIBE:
    case MessageType.UNSUBSCRIBE:
    case MessageType.LIST:
    case MessageType.STATS:
      needBody(buf, 0, 'this message');
      return { type, ...base } as ControlMessage;
    case MessageType.ACK: {
      if (buf.length < CONTROL_HEADER_BYTES + 2) throw new ProtocolError(E.TOO_SHORT, 'ACK body shorter than status and type');
      const status = buf[CONTROL_HEADER_BYTES];
      const ackedType = buf[CONTROL_HEADER_BYTES + 1];
      if (!STATUS_VALUES.has(status)) throw new ProtocolError(E.BAD_FIELD, `ACK status ${status} is not defined`);
      if (!TYPE_VALUES.has(ackedType)) throw new ProtocolError(E.BAD_FIELD, `ACK acknowledges unknown type 0x${ackedType.toString(16)}`);
      return { type, ...base, status: status as Status, ackedType: ackedType as MessageType, detail: decodeAckDetail(buf) };
    }
    case MessageType.LIST_REPLY: {
      const raw = unpackBody(buf, CONTROL_HEADER_BYTES, 'LIST_REPLY');
      if (!isRecord(raw) || !Array.isArray(raw.producers) || typeof raw.truncated !== 'boolean') {
        throw new ProtocolError(E.BAD_BODY, 'LIST_REPLY body must be {producers: [...], truncated: bool}');
      }
      const producers = raw.producers.map((p, i) => parseProducerInfo(p, `producers[${i}]`));
      return { type, ...base, producers, truncated: raw.truncated };
    }
    case MessageType.GOODBYE:
      return { type, ...base, reason: oneByte(buf, REASON_VALUES, 'GOODBYE reason') as GoodbyeReason };
    case MessageType.HEARTBEAT: {
      // Role and reserved bytes, so that a PATH_CHALLENGE it draws is never larger (PROTOCOL.md §4.7).
      needBody(buf, HEARTBEAT_BODY_BYTES, 'HEARTBEAT');
      const role = buf[CONTROL_HEADER_BYTES];
      if (!ROLE_VALUES.has(role)) throw new ProtocolError(E.BAD_FIELD, `HEARTBEAT role value ${role} is not defined`);
      return { type, ...base, role: role as Role };
    }
    case MessageType.HELLO: {
      if (buf.length < MIN_HELLO_BYTES) throw new ProtocolError(E.BAD_LENGTH, `HELLO must be padded to at least ${MIN_HELLO_BYTES} bytes`);
      const len = buf[CONTROL_HEADER_BYTES];
      if (len !== 0 && len !== TOKEN_BYTES) throw new ProtocolError(E.BAD_FIELD, `HELLO token must be 0 or ${TOKEN_BYTES} bytes, not ${len}`);
      const keyAt = CONTROL_HEADER_BYTES + 1 + len;
      return { type, ...base, token: buf.subarray(CONTROL_HEADER_BYTES + 1, keyAt), publicKey: buf.subarray(keyAt, keyAt + PUBLIC_KEY_BYTES) };
    }
    case MessageType.EDGE: {
      const b = CONTROL_HEADER_BYTES;
      if (buf.length < b + 5) throw new ProtocolError(E.TOO_SHORT, 'EDGE body shorter than its load and auth length');
      const authBytes = buf[b + 4];
      if (authBytes !== 0 && authBytes !== ANNOUNCE_AUTH_BYTES) throw new ProtocolError(E.BAD_FIELD, `EDGE auth must be 0 or ${ANNOUNCE_AUTH_BYTES} bytes, not ${authBytes}`);
      const auth = buf.subarray(b + 5, b + 5 + authBytes);
      if (auth.length !== authBytes) throw new ProtocolError(E.TOO_SHORT, 'EDGE cut short in its auth field');
      const advertise = buf.subarray(b + 5 + authBytes);
      if (advertise.length > MAX_ADVERTISE_BYTES || (advertise.length > 0) !== (authBytes > 0)) throw new ProtocolError(E.BAD_FIELD, 'EDGE advertise must be short, and proven by auth when given');
      return { type, ...base, load: buf.readUInt32BE(b), auth, advertise: advertise.toString('utf8') };
    }
    case MessageType.PATH_CHALLENGE:
    case MessageType.PATH_RESPONSE:
      needBody(buf, PATH_NONCE_BYTES, 'PATH_CHALLENGE/PATH_RESPONSE');
      return { type, ...base, nonce: buf.subarray(CONTROL_HEADER_BYTES) } as ControlMessage;
    case MessageType.SESSION_UNKNOWN:
      needBody(buf, SESSION_UNKNOWN_BODY_BYTES, 'SESSION_UNKNOWN');
      return { type, ...base, unknownSessionId: buf.readUInt32BE(CONTROL_HEADER_BYTES) };
    case MessageType.NOTICE: {
      if (buf[CONTROL_HEADER_BYTES] !== NoticeEvent.PRODUCER_ONLINE || buf.length === CONTROL_HEADER_BYTES) {
        const event = oneByte(buf, NOTICE_VALUES, 'NOTICE event') as typeof NoticeEvent.PRODUCER_OFFLINE | typeof NoticeEvent.PRODUCER_ENDED;
        return { type, ...base, event };
      }
      needBody(buf, NOTICE_ONLINE_BODY_BYTES, 'NOTICE PRODUCER_ONLINE');
      const flags = buf[CONTROL_HEADER_BYTES + 1];
      if ((flags & ~NOTICE_FLAG_ENCRYPTED) !== 0) throw new ProtocolError(E.BAD_FIELD, `NOTICE flags 0x${flags.toString(16)} has undefined bits`);
      const epoch = buf.readUInt32BE(CONTROL_HEADER_BYTES + 2);
      const frameKey = Buffer.from(buf.subarray(CONTROL_HEADER_BYTES + 6, CONTROL_HEADER_BYTES + NOTICE_ONLINE_BODY_BYTES));
      return { type, ...base, event: NoticeEvent.PRODUCER_ONLINE, epoch, frameKey, encrypted: (flags & NOTICE_FLAG_ENCRYPTED) !== 0 };
    }
    case MessageType.STATS_REPLY: {
      const raw = unpackBody(buf, CONTROL_HEADER_BYTES, 'STATS_REPLY');
      if (!isRecord(raw)) throw new ProtocolError(E.BAD_BODY, 'STATS_REPLY body must be a map');
      const keys = Object.keys(raw);
      if (keys.length > MAX_STATS_KEYS) throw new ProtocolError(E.BAD_BODY, 'STATS_REPLY has too many counters');
      const stats: Record<string, number> = {};
      for (const k of keys) {
        const v = raw[k];
        if (typeof v !== 'number' || !Number.isFinite(v)) throw new ProtocolError(E.BAD_FIELD, `STATS_REPLY counter ${k} is not a number`);
        stats[k] = v;
      }
      return { type, ...base, stats };
    }
    case MessageType.NAK: {
      if (buf.length < CONTROL_HEADER_BYTES + NAK_FIXED_BYTES) throw new ProtocolError(E.TOO_SHORT, 'NAK body shorter than epoch, track and range count');
      const b = CONTROL_HEADER_BYTES;
      const track = buf[b + 4];
      const n = buf[b + 5];
      if (track > Track.AUDIO) throw new ProtocolError(E.BAD_TRACK, `NAK track ${track} is neither video (0) nor audio (1)`);
      if (n === 0 || n > MAX_NAK_RANGES) throw new ProtocolError(E.BAD_FIELD, `NAK must carry 1 to ${MAX_NAK_RANGES} ranges, not ${n}`);
      needBody(buf, NAK_FIXED_BYTES + NAK_RANGE_BYTES * n, 'NAK');
      const ranges: SeqRange[] = new Array(n);
      for (let i = 0, o = b + NAK_FIXED_BYTES; i < n; i++, o += NAK_RANGE_BYTES) {
        const count = buf.readUInt16BE(o + 4);
        if (count === 0 || count > MAX_NAK_RANGE_LENGTH) throw new ProtocolError(E.BAD_FIELD, `NAK range of ${count} datagrams (1 to ${MAX_NAK_RANGE_LENGTH})`);
        ranges[i] = { first: buf.readUInt32BE(o), count };
      }
      return { type, ...base, epoch: buf.readUInt32BE(b), track: track as Track, ranges };
    }
    case MessageType.RECEIVER_REPORT: {
      // The audience field is optional: a report without it speaks for one viewer.
      if (buf.length !== CONTROL_HEADER_BYTES + RECEIVER_REPORT_BYTES_WITHOUT_AUDIENCE) needBody(buf, RECEIVER_REPORT_BYTES, 'RECEIVER_REPORT');
      const b = CONTROL_HEADER_BYTES;
      return {
        type, ...base, fractionLost: buf[b], cumulativeLost: buf.readUInt32BE(b + 2), expected: buf.readUInt32BE(b + 6),
        jitterUs: buf.readUInt32BE(b + 10), framesComplete: buf.readUInt32BE(b + 14), framesDropped: buf.readUInt32BE(b + 18),
        retransmitsReceived: buf.readUInt32BE(b + 22), audience: buf.length > CONTROL_HEADER_BYTES + 26 ? buf.readUInt32BE(b + 26) : 1,
      };
    }
    default:
      throw new ProtocolError(E.UNKNOWN_TYPE, `unknown message type 0x${(type as number).toString(16)}`);
  }
}

/** Decodes one datagram. Throws only ProtocolError (PROTOCOL.md §6). The payload of MEDIA is a view, not a copy. */
export function decode(buf: Buffer): Message {
  if (buf.length < 4) throw new ProtocolError(E.TOO_SHORT, `datagram of ${buf.length} bytes is shorter than the 4-byte preamble`);
  if (buf.readUInt16BE(0) !== MAGIC) throw new ProtocolError(E.BAD_MAGIC, 'not a Framecast datagram (bad magic)');
  if (buf[2] !== VERSION) throw new ProtocolError(E.BAD_VERSION, `unsupported protocol version ${buf[2]}`);
  const type = buf[3] as MessageType;
  if (!TYPE_VALUES.has(type)) throw new ProtocolError(E.UNKNOWN_TYPE, `unknown message type 0x${(type as number).toString(16)}`);
  if (buf.length < 8) throw new ProtocolError(E.TOO_SHORT, 'datagram shorter than the 8-byte common header');
  const producerId = buf.readUInt32BE(4);
  if (type !== MessageType.MEDIA) return decodeControl(buf, type, producerId);
  const err = checkMedia(buf);
  if (err !== null) throw new ProtocolError(err, MEDIA_ERROR_TEXT[err]);
  const o = MediaOffset;
  return {
    type,
    producerId,
    epoch: buf.readUInt32BE(o.EPOCH),
    track: buf[o.TRACK] as Track,
    flags: buf[o.FLAGS],
    fragIndex: buf.readUInt16BE(o.FRAG_INDEX),
    fragCount: buf.readUInt16BE(o.FRAG_COUNT),
    seq: buf.readUInt32BE(o.SEQ),
    frameNo: buf.readUInt32BE(o.FRAME_NO),
    timestampMs: buf.readUInt32BE(o.TIMESTAMP_MS),
    frameBytes: buf.readUInt32BE(o.FRAME_BYTES),
    fragOffset: buf.readUInt32BE(o.FRAG_OFFSET),
    payload: buf.subarray(MEDIA_HEADER_BYTES),
  };
}

/** Reads the type byte of a datagram already known to start with our magic and version. */
export function peekType(buf: Buffer): number {
  return buf.length >= 4 && buf.readUInt16BE(0) === MAGIC && buf[2] === VERSION ? buf[3] : -1;
}
