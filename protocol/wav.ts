/** WAV (RIFF) reading and writing for the audio track: PCM s16le and G.711 mu-law/A-law. */

export const WavFormat = { PCM: 1, ALAW: 6, MULAW: 7 } as const;
const CODEC_BY_FORMAT: Record<number, string> = { 1: 'pcm_s16le', 6: 'pcm_alaw', 7: 'pcm_mulaw' };
const FORMAT_BY_CODEC: Record<string, number> = { pcm_s16le: 1, pcm_alaw: 6, pcm_mulaw: 7 };

export interface WavAudio {
  readonly codec: string;
  readonly sampleRate: number;
  readonly channels: number;
  readonly bytesPerSample: number;
  /** The sample data: a view into the file. */
  readonly data: Buffer;
}

export class WavError extends Error {
  override readonly name = 'WavError';
}

/** Parses a WAV file's fmt and data chunks. Throws WavError with a one-line reason. */
export function parseWav(file: Buffer): WavAudio {
  if (file.length < 12 || file.toString('latin1', 0, 4) !== 'RIFF' || file.toString('latin1', 8, 12) !== 'WAVE') {
    throw new WavError('not a RIFF/WAVE file');
  }
  let p = 12;
  let fmt: { format: number; channels: number; sampleRate: number; bits: number } | null = null;
  while (p + 8 <= file.length) {
    const id = file.toString('latin1', p, p + 4);
    const size = file.readUInt32LE(p + 4);
    const body = p + 8;
    if (id === 'fmt ' && size >= 16 && body + 16 <= file.length) {
      fmt = {
        format: file.readUInt16LE(body),
        channels: file.readUInt16LE(body + 2),
        sampleRate: file.readUInt32LE(body + 4),
        bits: file.readUInt16LE(body + 14),
      };
    } else if (id === 'data') {
      if (fmt === null) throw new WavError('data chunk before fmt chunk');
      const codec = CODEC_BY_FORMAT[fmt.format];
      if (codec === undefined || (fmt.format === 1 && fmt.bits !== 16)) {
        throw new WavError(`unsupported WAV format ${fmt.format}/${fmt.bits} bits (use 16-bit PCM, A-law or mu-law)`);
      }
      if (fmt.channels < 1 || fmt.sampleRate < 1) throw new WavError('WAV has no channels or no sample rate');
      const end = Math.min(file.length, body + size);
      return { codec, sampleRate: fmt.sampleRate, channels: fmt.channels, bytesPerSample: fmt.bits / 8, data: file.subarray(body, end) };
    }
    p = body + size + (size & 1);
  }
  throw new WavError('no data chunk');
}

/** A 44-byte WAV header for `dataBytes` of audio in the given codec; null for codecs WAV cannot hold. */
export function wavHeader(codec: string, sampleRate: number, channels: number, dataBytes: number): Buffer | null {
  const format = FORMAT_BY_CODEC[codec];
  if (format === undefined) return null;
  const bits = format === WavFormat.PCM ? 16 : 8;
  const blockAlign = channels * bits / 8;
  const h = Buffer.alloc(44);
  h.write('RIFF', 0, 'latin1');
  h.writeUInt32LE(Math.min(0xffffffff, 36 + dataBytes), 4);
  h.write('WAVEfmt ', 8, 'latin1');
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(format, 20);
  h.writeUInt16LE(channels, 22);
  h.writeUInt32LE(sampleRate, 24);
  h.writeUInt32LE(sampleRate * blockAlign, 28);
  h.writeUInt16LE(blockAlign, 32);
  h.writeUInt16LE(bits, 34);
  h.write('data', 36, 'latin1');
  h.writeUInt32LE(Math.min(0xffffffff, dataBytes), 40);
  return h;
}
