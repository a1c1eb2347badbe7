import { MAX_CODEC_CHARS, MAX_TITLE_CHARS } from './constants.ts';
import { ProtocolError, ProtocolErrorCode } from './errors.ts';

/** What a producer announces about its stream (PROTOCOL.md §4.1). */
export interface VideoInfo {
  readonly codec: string;
  readonly width: number;
  readonly height: number;
  readonly fps: number;
}
export interface AudioInfo {
  readonly codec: string;
  readonly sampleRate: number;
  readonly channels: number;
}
export interface StreamMetadata {
  readonly title: string;
  readonly video: VideoInfo;
  readonly audio: AudioInfo | null;
  /** Frames are encrypted with a passphrase (PROTOCOL.md §3.7); absent means false. */
  readonly encrypted?: boolean;
}
/** One row of a LIST_REPLY (PROTOCOL.md §4.4). */
export interface ProducerInfo {
  readonly id: number;
  readonly online: boolean;
  readonly viewers: number;
  readonly metadata: StreamMetadata;
}

function fail(field: string, why: string): never {
  throw new ProtocolError(ProtocolErrorCode.BAD_FIELD, `${field} ${why}`);
}
function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function str(v: unknown, field: string, max: number): string {
  if (typeof v !== 'string') fail(field, 'must be a string');
  if (v.length > max) fail(field, `longer than ${max} characters`);
  return v;
}
function int(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(field, `must be an integer in ${min}..${max}`);
  return v;
}
function num(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= min || v > max) fail(field, `must be a number in (${min}, ${max}]`);
  return v;
}

/** Checks an untrusted decoded value field by field and returns a clean copy. */
export function parseStreamMetadata(v: unknown, field = 'metadata'): StreamMetadata {
  if (!isRecord(v)) fail(field, 'must be a map');
  const video = v.video;
  if (!isRecord(video)) fail(`${field}.video`, 'must be a map');
  let audio: AudioInfo | null = null;
  if (v.audio !== null && v.audio !== undefined) {
    if (!isRecord(v.audio)) fail(`${field}.audio`, 'must be a map or nil');
    audio = {
      codec: str(v.audio.codec, `${field}.audio.codec`, MAX_CODEC_CHARS),
      sampleRate: int(v.audio.sampleRate, `${field}.audio.sampleRate`, 1, 384_000),
      channels: int(v.audio.channels, `${field}.audio.channels`, 1, 8),
    };
  }
  if (v.encrypted !== undefined && typeof v.encrypted !== 'boolean') fail(`${field}.encrypted`, 'must be a boolean');
  return {
    title: str(v.title, `${field}.title`, MAX_TITLE_CHARS),
    video: {
      codec: str(video.codec, `${field}.video.codec`, MAX_CODEC_CHARS),
      width: int(video.width, `${field}.video.width`, 1, 65535),
      height: int(video.height, `${field}.video.height`, 1, 65535),
      fps: num(video.fps, `${field}.video.fps`, 0, 1000),
    },
    audio,
    ...(v.encrypted === true ? { encrypted: true } : {}),
  };
}

export function parseProducerInfo(v: unknown, field: string): ProducerInfo {
  if (!isRecord(v)) fail(field, 'must be a map');
  if (typeof v.online !== 'boolean') fail(`${field}.online`, 'must be a boolean');
  return {
    id: int(v.id, `${field}.id`, 1, 0xffffffff),
    online: v.online,
    viewers: int(v.viewers, `${field}.viewers`, 0, 0xffffffff),
    metadata: parseStreamMetadata(v.metadata, `${field}.metadata`),
  };
}

export { isRecord, int as checkInt };
