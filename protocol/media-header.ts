import { MEDIA_TOKEN_BYTES, MediaFlag, MessageType } from './constants.ts';

/**
 * Where each field of a MEDIA header sits (PROTOCOL.md §3.1), and allocation-free readers for
 * the paths that look at a datagram without decoding it: the broker's hot path, its cache and
 * history, the bench and the test relays. The codec decodes the same offsets.
 */
export const MediaOffset = {
  TYPE: 3,
  PRODUCER_ID: 4,
  EPOCH: 8,
  TRACK: 12,
  FLAGS: 13,
  FRAG_INDEX: 14,
  FRAG_COUNT: 16,
  SEQ: 20,
  FRAME_NO: 24,
  TIMESTAMP_MS: 28,
  FRAME_BYTES: 32,
  FRAG_OFFSET: 36,
  TOKEN: 40,
} as const;

/** A big-endian 32-bit field, read with byte operations (this runs per datagram). */
function u32(d: Buffer, at: number): number {
  return ((d[at] << 24) | (d[at + 1] << 16) | (d[at + 2] << 8) | d[at + 3]) >>> 0;
}
function u16(d: Buffer, at: number): number {
  return (d[at] << 8) | d[at + 1];
}

export const isMedia = (d: Buffer): boolean => d.length > MediaOffset.TYPE && d[MediaOffset.TYPE] === MessageType.MEDIA;
export const mediaProducerId = (d: Buffer): number => u32(d, MediaOffset.PRODUCER_ID);
export const mediaEpoch = (d: Buffer): number => u32(d, MediaOffset.EPOCH);
export const mediaTrack = (d: Buffer): number => d[MediaOffset.TRACK];
export const mediaFragIndex = (d: Buffer): number => u16(d, MediaOffset.FRAG_INDEX);
export const mediaFragCount = (d: Buffer): number => u16(d, MediaOffset.FRAG_COUNT);
export const mediaSeq = (d: Buffer): number => u32(d, MediaOffset.SEQ);
export const mediaFrameNo = (d: Buffer): number => u32(d, MediaOffset.FRAME_NO);
export const mediaTimestampMs = (d: Buffer): number => u32(d, MediaOffset.TIMESTAMP_MS);
export const mediaFrameBytes = (d: Buffer): number => u32(d, MediaOffset.FRAME_BYTES);
export const mediaFragOffset = (d: Buffer): number => u32(d, MediaOffset.FRAG_OFFSET);
/** The first fragment of its frame. */
export const isFrameStart = (d: Buffer): boolean => d[MediaOffset.FRAG_INDEX] === 0 && d[MediaOffset.FRAG_INDEX + 1] === 0;
export const isRetransmit = (d: Buffer): boolean => (d[MediaOffset.FLAGS] & MediaFlag.RETRANSMIT) !== 0;
/** Flags a datagram (a copy of its own: the flag marks only it) as sent again on NAK (PROTOCOL.md §3.6). */
export function markRetransmit(d: Buffer): void {
  d[MediaOffset.FLAGS] |= MediaFlag.RETRANSMIT;
}
/**
 * Clears the flag, in place: a repair from upstream goes on to viewers as an ordinary datagram,
 * so their loss figures count their own link only (PROTOCOL.md §3.6).
 */
export function clearRetransmit(d: Buffer): void {
  d[MediaOffset.FLAGS] &= ~MediaFlag.RETRANSMIT;
}
/** The producer's session media token (PROTOCOL.md §3.1), as two 32-bit words. */
export const mediaTokenHi = (d: Buffer): number => u32(d, MediaOffset.TOKEN);
export const mediaTokenLo = (d: Buffer): number => u32(d, MediaOffset.TOKEN + 4);
export function writeMediaToken(d: Buffer, token: Buffer): void {
  token.copy(d, MediaOffset.TOKEN, 0, MEDIA_TOKEN_BYTES);
}
/** Zeroes the token before a datagram goes to viewers, in place (no copy). */
export function clearMediaToken(d: Buffer): void {
  // Byte stores: Buffer#fill validates its arguments in JavaScript first, several times the cost.
  for (let i = MediaOffset.TOKEN; i < MediaOffset.TOKEN + MEDIA_TOKEN_BYTES; i++) d[i] = 0;
}
