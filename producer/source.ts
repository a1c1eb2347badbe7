import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { ConfigError } from '../common/config.ts';
import { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';
import { jpegSize, MjpegStream, splitMjpeg } from '../protocol/mjpeg.ts';
import { parseWav, WavError, type WavAudio } from '../protocol/wav.ts';

/** A sample ready to stream: whole JPEG frames, and optionally an audio track to send beside them. */
export interface MediaSource {
  readonly frames: readonly Buffer[];
  readonly width: number;
  readonly height: number;
  readonly audio: WavAudio | null;
}

function readFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(`cannot read ${what} '${path}': ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * Loads the video as Motion-JPEG. A file that is not MJPEG (.mp4, .mkv, ...) is converted
 * through ffmpeg at the given rate when ffmpeg is on the PATH (optional; PROTOCOL.md is silent
 * on codecs other than MJPEG).
 */
export function loadVideo(path: string, fps: number): Buffer[] {
  const ext = extname(path).toLowerCase();
  let data: Buffer;
  if (ext === '.mjpeg' || ext === '.mjpg' || ext === '.jpg' || ext === '.jpeg') {
    data = readFile(path, 'video');
  } else {
    readFile(path, 'video'); // a clear error for a missing file before trying ffmpeg
    const r = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-i', path, '-an', '-r', String(fps), '-c:v', 'mjpeg', '-q:v', '5', '-f', 'mjpeg', 'pipe:1'], { maxBuffer: 1 << 30 });
    if (r.error) throw new ConfigError(`'${path}' is not Motion-JPEG and ffmpeg is not available to convert it`);
    if (r.status !== 0) throw new ConfigError(`ffmpeg could not convert '${path}': ${r.stderr.toString().trim().split('\n').pop()}`);
    data = r.stdout;
  }
  const frames = splitMjpeg(data);
  if (frames.length === 0) throw new ConfigError(`'${path}' holds no JPEG frames`);
  return frames;
}

export function loadAudio(path: string): WavAudio {
  try {
    return parseWav(readFile(path, 'audio'));
  } catch (err) {
    if (err instanceof WavError) throw new ConfigError(`audio '${path}': ${err.message}`);
    throw err;
  }
}

export function loadSource(videoPath: string, audioPath: string | null, fps: number): MediaSource {
  const frames = loadVideo(videoPath, fps);
  const size = jpegSize(frames[0]) ?? { width: 0, height: 0 };
  if (size.width === 0) throw new ConfigError(`'${videoPath}': first frame has no readable JPEG size`);
  return { frames, ...size, audio: audioPath === null ? null : loadAudio(audioPath) };
}

/** The audio bytes that play during video frame `index` at `fps`, so audio loops in step with video. */
export function audioChunk(audio: WavAudio, index: number, fps: number): Buffer {
  const bytesPerFrame = audio.bytesPerSample * audio.channels;
  const from = Math.floor((index * audio.sampleRate) / fps) * bytesPerFrame;
  const to = Math.floor(((index + 1) * audio.sampleRate) / fps) * bytesPerFrame;
  return audio.data.subarray(Math.min(from, audio.data.length), Math.min(to, audio.data.length));
}

/**
 * A live Motion-JPEG source (`--video -`): frames as a pipe delivers them, e.g. from
 * `ffmpeg -f v4l2 -i /dev/video0 -f mjpeg -`. Emits each whole frame, then `end`.
 */
export class LiveInput extends EventEmitter<{ frame: [jpeg: Buffer]; end: [] }> {
  readonly #stream = new MjpegStream();
  #first: Promise<MediaSource>;

  constructor(input: Readable) {
    super();
    let settle: { resolve: (s: MediaSource) => void; reject: (e: Error) => void } | null = null;
    this.#first = new Promise((resolve, reject) => (settle = { resolve, reject }));
    input.on('data', (chunk: Buffer) => {
      for (const frame of this.#stream.push(chunk)) {
        if (settle !== null) {
          const size = jpegSize(frame);
          if (size === null || size.width === 0) continue; // not a picture we can describe: wait for one
          settle.resolve({ frames: [frame], ...size, audio: null });
          settle = null;
          continue;
        }
        this.emit('frame', frame);
      }
    });
    input.on('end', () => {
      settle?.reject(new ConfigError('standard input ended before a whole JPEG frame arrived (--video - reads Motion-JPEG)'));
      settle = null;
      this.emit('end');
    });
  }

  /** The first whole frame (its size describes the stream); sent once the broker has accepted us. */
  first(): Promise<MediaSource> {
    return this.#first;
  }
}
