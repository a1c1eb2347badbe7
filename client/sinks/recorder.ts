import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { AudioInfo } from '../../protocol/metadata.ts';
import { formatProducerId } from '../../protocol/ids.ts';
import { wavHeader } from '../../protocol/wav.ts';
import type { FramecastClient } from '../client.ts';

/** Whether ffmpeg runs here (asked once): recordings are then also muxed into one file. */
let ffmpegHere: boolean | null = null;
export function hasFfmpeg(): boolean {
  ffmpegHere ??= spawnSync('ffmpeg', ['-version'], { stdio: 'ignore' }).status === 0;
  return ffmpegHere;
}

/** A byte of silence in each 8-bit WAV codec; 16-bit PCM is silent at 0. */
const SILENCE: Record<string, number> = { pcm_mulaw: 0xff, pcm_alaw: 0xd5 };

/**
 * Writes one producer's stream to DIR/<ID>.mjpeg (its JPEG frames in order, playable by ffplay
 * and VLC) and DIR/<ID>.wav (its audio; the header is rewritten with the real size on close).
 * With `mux`, it also notes each frame's and chunk's media timestamp, and on close makes
 * DIR/<ID>.mkv with ffmpeg: picture and sound placed by their timestamps, so a lost frame or
 * chunk is a held picture or a silence rather than a slip out of sync.
 * Writes are synchronous: frames are small and arrive a dozen times a second.
 */
export class StreamRecorder {
  readonly #videoFd: number;
  #audioFd: number | null = null;
  #audioBytes = 0;
  #audio: AudioInfo | null = null;
  readonly #audioPath: string;
  readonly #videoPath: string;
  readonly #base: string;
  readonly #mux: boolean;
  #videoBytes = 0;
  /** With mux: each frame's timestamp, offset and length in the .mjpeg; each audio chunk's timestamp and length. */
  readonly #frames: { ts: number; at: number; length: number }[] = [];
  readonly #chunks: { ts: number; length: number }[] = [];

  constructor(dir: string, name: string, opts: { mux?: boolean } = {}) {
    mkdirSync(dir, { recursive: true });
    this.#base = join(dir, name);
    this.#videoPath = `${this.#base}.mjpeg`;
    this.#videoFd = openSync(this.#videoPath, 'w');
    this.#audioPath = `${this.#base}.wav`;
    this.#mux = opts.mux ?? false;
  }

  writeVideo(frame: Buffer, timestampMs = 0): void {
    writeSync(this.#videoFd, frame);
    if (this.#mux) this.#frames.push({ ts: timestampMs, at: this.#videoBytes, length: frame.length });
    this.#videoBytes += frame.length;
  }

  writeAudio(chunk: Buffer, info: AudioInfo | null, timestampMs = 0): void {
    if (info === null) return;
    if (this.#audioFd === null) {
      const header = wavHeader(info.codec, info.sampleRate, info.channels, 0);
      if (header === null) return; // a codec WAV cannot hold: video is still recorded
      this.#audio = info;
      this.#audioFd = openSync(this.#audioPath, 'w');
      writeSync(this.#audioFd, header);
    }
    writeSync(this.#audioFd, chunk);
    if (this.#mux) this.#chunks.push({ ts: timestampMs, length: chunk.length });
    this.#audioBytes += chunk.length;
  }

  /** Closes the files; with mux, returns the muxed file's path (or why there is none). */
  close(fps = 0): { muxed: string } | { notMuxed: string } | null {
    closeSync(this.#videoFd);
    if (this.#audioFd !== null && this.#audio !== null) {
      writeSync(this.#audioFd, wavHeader(this.#audio.codec, this.#audio.sampleRate, this.#audio.channels, this.#audioBytes)!, 0, 44, 0);
      closeSync(this.#audioFd);
    }
    if (!this.#mux || this.#frames.length === 0) return null;
    return this.#muxed(fps > 0 ? fps : 12);
  }

  /**
   * Picture at a constant `fps` (each slot shows the latest frame due by then) and sound with
   * silence where chunks are missing, both from the earliest timestamp; ffmpeg puts them in Matroska.
   */
  #muxed(fps: number): { muxed: string } | { notMuxed: string } {
    const t0 = Math.min(this.#frames[0].ts, this.#chunks[0]?.ts ?? Infinity);
    const periodMs = 1000 / fps;
    const video = `${this.#base}.cfr.mjpeg`;
    const audio = `${this.#base}.timed.wav`;
    const out = `${this.#base}.mkv`;
    try {
      const src = openSync(this.#videoPath, 'r');
      const dst = openSync(video, 'w');
      const last = this.#frames[this.#frames.length - 1].ts - t0;
      let k = 0;
      let buf = Buffer.alloc(0);
      let bufAt = -1;
      for (let slot = 0; slot * periodMs <= last + periodMs / 2; slot++) {
        while (k + 1 < this.#frames.length && this.#frames[k + 1].ts - t0 <= slot * periodMs + periodMs / 2) k++;
        const f = this.#frames[k];
        if (f.at !== bufAt) {
          buf = Buffer.alloc(f.length);
          readSync(src, buf, 0, f.length, f.at);
          bufAt = f.at;
        }
        writeSync(dst, buf);
      }
      closeSync(src);
      closeSync(dst);
      const args = ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'mjpeg', '-framerate', String(fps), '-i', video];
      if (this.#audio !== null && this.#chunks.length > 0) {
        this.#timedAudio(audio, t0);
        args.push('-i', audio, '-c:a', 'pcm_s16le');
      }
      args.push('-c:v', 'copy', out);
      const r = spawnSync('ffmpeg', args, { encoding: 'utf8' });
      if (r.status !== 0) return { notMuxed: `ffmpeg: ${(r.stderr || r.error?.message || 'failed').trim().split('\n').pop()}` };
      return { muxed: out };
    } catch (err) {
      return { notMuxed: (err as Error).message };
    } finally {
      rmSync(video, { force: true });
      rmSync(audio, { force: true });
    }
  }

  /** The audio as received, each chunk at its timestamp: silence fills what was lost. */
  #timedAudio(path: string, t0: number): void {
    const a = this.#audio!;
    const src = openSync(this.#audioPath, 'r');
    const dst = openSync(path, 'w');
    const bytesPerSample = a.codec === 'pcm_s16le' ? 2 : 1;
    const block = a.channels * bytesPerSample;
    const bytesPerMs = (a.sampleRate * block) / 1000;
    writeSync(dst, Buffer.alloc(44));
    let written = 0;
    let read = 44;
    for (const c of this.#chunks) {
      const at = Math.round(((c.ts - t0) * bytesPerMs) / block) * block;
      if (at > written) {
        writeSync(dst, Buffer.alloc(at - written, SILENCE[a.codec] ?? 0));
        written = at;
      }
      const data = Buffer.alloc(c.length);
      readSync(src, data, 0, c.length, read);
      read += c.length;
      writeSync(dst, data);
      written += c.length;
    }
    writeSync(dst, wavHeader(a.codec, a.sampleRate, a.channels, written)!, 0, 44, 0);
    closeSync(src);
    closeSync(dst);
  }
}

/**
 * Records every subscription the broker accepts into `dir`, from its first frame until it is
 * closed; where ffmpeg runs (and `mux` is not false), also into one Matroska file each, told by `tell`.
 */
export function recordTo(client: FramecastClient, dir: string, opts: { mux?: boolean; tell?: (text: string) => void } = {}): void {
  const recorders = new Map<number, StreamRecorder>();
  const mux = opts.mux !== false && hasFfmpeg();
  client.on('accepted', (sub) => {
    if (!recorders.has(sub.id)) recorders.set(sub.id, new StreamRecorder(dir, formatProducerId(sub.id), { mux }));
  });
  client.on('frame', (sub, frame) => recorders.get(sub.id)?.writeVideo(frame.data, frame.timestampMs));
  client.on('audio', (sub, chunk) => recorders.get(sub.id)?.writeAudio(chunk.data, sub.metadata?.audio ?? null, chunk.timestampMs));
  client.on('closed', (sub) => {
    const r = recorders.get(sub.id)?.close(sub.metadata?.video.fps ?? 0);
    recorders.delete(sub.id);
    if (r != null) opts.tell?.('muxed' in r ? `recorded ${formatProducerId(sub.id)} with picture and sound in sync: ${r.muxed}` : `${formatProducerId(sub.id)}: no muxed recording (${r.notMuxed})`);
  });
}
