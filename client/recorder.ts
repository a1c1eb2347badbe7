import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { AudioInfo } from '../protocol/metadata.ts';
import { wavHeader } from '../protocol/wav.ts';

/**
 * Writes one producer's stream to DIR/<ID>.mjpeg (its JPEG frames in order, playable by ffplay
 * and VLC) and DIR/<ID>.wav (its audio; the header is rewritten with the real size on close).
 * Writes are synchronous: frames are small and arrive a dozen times a second.
 */
export class StreamRecorder {
  readonly #videoFd: number;
  #audioFd: number | null = null;
  #audioBytes = 0;
  #audio: AudioInfo | null = null;
  readonly #audioPath: string;

  constructor(dir: string, name: string) {
    mkdirSync(dir, { recursive: true });
    this.#videoFd = openSync(join(dir, `${name}.mjpeg`), 'w');
    this.#audioPath = join(dir, `${name}.wav`);
  }

  writeVideo(frame: Buffer): void {
    writeSync(this.#videoFd, frame);
  }

  writeAudio(chunk: Buffer, info: AudioInfo | null): void {
    if (info === null) return;
    if (this.#audioFd === null) {
      const header = wavHeader(info.codec, info.sampleRate, info.channels, 0);
      if (header === null) return; // a codec WAV cannot hold: video is still recorded
      this.#audio = info;
      this.#audioFd = openSync(this.#audioPath, 'w');
      writeSync(this.#audioFd, header);
    }
    writeSync(this.#audioFd, chunk);
    this.#audioBytes += chunk.length;
  }

  close(): void {
    closeSync(this.#videoFd);
    if (this.#audioFd !== null && this.#audio !== null) {
      writeSync(this.#audioFd, wavHeader(this.#audio.codec, this.#audio.sampleRate, this.#audio.channels, this.#audioBytes)!, 0, 44, 0);
      closeSync(this.#audioFd);
    }
  }
}
