/** Wire constants. PROTOCOL.md §2 is the normative description of every value here. */

/** "FC" in ASCII: the first two bytes of every Framecast datagram (PROTOCOL.md §2). */
export const MAGIC = 0x4643;
export const VERSION = 2;

/** Bytes before the payload of a MEDIA datagram (PROTOCOL.md §3). */
export const MEDIA_HEADER_BYTES = 48;
/** Where a producer's session media token sits in MEDIA; the broker zeroes it before forwarding (PROTOCOL.md §3.1). */
export const MEDIA_TOKEN_OFFSET = 40;
export const MEDIA_TOKEN_BYTES = 8;
/**
 * Bytes before the body of every control message: common header, session ID, packet number,
 * request ID (PROTOCOL.md §4.0).
 */
export const CONTROL_HEADER_BYTES = 20;
export const SESSION_ID_OFFSET = 8;
export const PACKET_NUMBER_OFFSET = 12;
export const REQUEST_ID_OFFSET = 16;
/** The authentication tag that ends every control datagram of a session (PROTOCOL.md §2.2). */
export const TAG_BYTES = 16;
/** X25519 public keys travel raw (RFC 7748). */
export const PUBLIC_KEY_BYTES = 32;
/** A producer run's Ed25519 public key, raw (RFC 8032), and the signature that ends every frame (PROTOCOL.md §3.7). */
export const FRAME_KEY_BYTES = 32;
export const FRAME_SIGNATURE_BYTES = 64;
/** AES-256-GCM tag after an encrypted frame's ciphertext (PROTOCOL.md §3.7). */
export const FRAME_GCM_TAG_BYTES = 16;


/** Largest UDP payload over IPv4 (65535 - 20 IP - 8 UDP). */
export const MAX_UDP_PAYLOAD_BYTES = 65507;
/** Default datagram size: fits a 1280-byte IPv6 minimum MTU with room for tunnels. */
export const DEFAULT_MAX_DATAGRAM_BYTES = 1200;
/** Smallest configurable datagram: a header plus a useful payload. */
export const MIN_DATAGRAM_BYTES = 256;

export const MessageType = {
  MEDIA: 0x01,
  ANNOUNCE: 0x10,
  SUBSCRIBE: 0x11,
  UNSUBSCRIBE: 0x12,
  ACK: 0x13,
  LIST: 0x14,
  LIST_REPLY: 0x15,
  GOODBYE: 0x16,
  HEARTBEAT: 0x17,
  NOTICE: 0x18,
  STATS: 0x19,
  STATS_REPLY: 0x1a,
  HELLO: 0x1b,
  NAK: 0x1c,
  RECEIVER_REPORT: 0x1d,
  PATH_CHALLENGE: 0x1e,
  PATH_RESPONSE: 0x1f,
  SESSION_UNKNOWN: 0x20,
  EDGE: 0x21,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

export const Track = { VIDEO: 0, AUDIO: 1 } as const;
export type Track = (typeof Track)[keyof typeof Track];

/** MEDIA flag bits (PROTOCOL.md §3.1). */
export const MediaFlag = {
  /** The frame decodes on its own (every MJPEG frame and audio chunk does). */
  KEYFRAME: 0x01,
  /** Sent again by the broker in answer to a NAK (PROTOCOL.md §3.6); not counted as network loss recovered. */
  RETRANSMIT: 0x02,
} as const;

/** NAK body: epoch, track, range count, then ranges of (first seq, count) (PROTOCOL.md §4.10). */
export const NAK_FIXED_BYTES = 6;
export const NAK_RANGE_BYTES = 6;
/** Ranges in one NAK, and datagrams one range may ask for. */
export const MAX_NAK_RANGES = 64;
export const MAX_NAK_RANGE_LENGTH = 1024;
/** RECEIVER_REPORT body size (PROTOCOL.md §4.11): with the audience it speaks for; without it (26), one viewer. */
export const RECEIVER_REPORT_BYTES = 30;
export const RECEIVER_REPORT_BYTES_WITHOUT_AUDIENCE = 26;

/** ACK status codes (PROTOCOL.md §4.3). */
export const Status = {
  OK: 0,
  UNKNOWN_PRODUCER: 1,
  LIMIT_REACHED: 2,
  BAD_REQUEST: 3,
  NOT_REGISTERED: 4,
  ID_TAKEN: 5,
  NOT_SUBSCRIBED: 6,
  VALIDATE: 7,
  AUTH_FAILED: 8,
  REDIRECT: 9,
} as const;
export type Status = (typeof Status)[keyof typeof Status];

export const STATUS_TEXT: Record<Status, string> = {
  [Status.OK]: 'ok',
  [Status.UNKNOWN_PRODUCER]: 'no such producer is live',
  [Status.LIMIT_REACHED]: 'limit reached',
  [Status.BAD_REQUEST]: 'bad request',
  [Status.NOT_REGISTERED]: 'not registered with this broker',
  [Status.ID_TAKEN]: 'producer ID is owned by another address',
  [Status.NOT_SUBSCRIBED]: 'not subscribed',
  [Status.VALIDATE]: 'echo the token to prove this address receives',
  [Status.AUTH_FAILED]: 'this producer ID needs a valid secret',
  [Status.REDIRECT]: 'subscribe at the edge named in the answer',
};

/** ANNOUNCE auth: HMAC-SHA256(secret, session binding, producer ID) (PROTOCOL.md §4.1). */
export const ANNOUNCE_AUTH_BYTES = 32;

/**
 * A HELLO datagram is padded to at least this size, so the broker's answers to an address it
 * has not validated (a token, or the session's first message) are never larger than what it
 * received (PROTOCOL.md §4.9).
 */
export const MIN_HELLO_BYTES = 256;
/** PATH_CHALLENGE and PATH_RESPONSE carry this many random bytes (PROTOCOL.md §4.12). */
export const PATH_NONCE_BYTES = 8;
/** SESSION_UNKNOWN body: the session ID the broker does not hold (PROTOCOL.md §4.13). */
export const SESSION_UNKNOWN_BODY_BYTES = 4;
/** HEARTBEAT body: role and seven reserved bytes, as large as a PATH_CHALLENGE (PROTOCOL.md §4.7). */
export const HEARTBEAT_BODY_BYTES = 8;
/** Address validation token: 4-byte issue time and 16 bytes of HMAC-SHA256 (PROTOCOL.md §4.9). */
export const TOKEN_BYTES = 20;

/** NOTICE events, broker to client (PROTOCOL.md §4.8). */
export const NoticeEvent = {
  PRODUCER_OFFLINE: 1,
  PRODUCER_ONLINE: 2,
  PRODUCER_ENDED: 3,
} as const;
export type NoticeEvent = (typeof NoticeEvent)[keyof typeof NoticeEvent];
/** NOTICE PRODUCER_ONLINE body: event, flags, epoch, frame key (PROTOCOL.md §4.8); the other events are one byte. */
export const NOTICE_ONLINE_BODY_BYTES = 1 + 1 + 4 + FRAME_KEY_BYTES;
/** NOTICE PRODUCER_ONLINE flags: the run's frames are encrypted (PROTOCOL.md §3.7). */
export const NOTICE_FLAG_ENCRYPTED = 0x01;

/** GOODBYE reasons (PROTOCOL.md §4.6). */
export const GoodbyeReason = {
  NORMAL: 0,
  SHUTDOWN: 1,
} as const;
export type GoodbyeReason = (typeof GoodbyeReason)[keyof typeof GoodbyeReason];

/** Who sends a HEARTBEAT (PROTOCOL.md §4.7). */
export const Role = { PRODUCER: 1, CLIENT: 2 } as const;
export type Role = (typeof Role)[keyof typeof Role];

/** Upper bounds on msgpack bodies' fields, so a peer cannot make us hold large strings. */
export const MAX_TITLE_CHARS = 200;
export const MAX_CODEC_CHARS = 32;
