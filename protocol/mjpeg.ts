/**
 * Splits Motion-JPEG (JPEG images back to back) into frames at the SOI (FFD8) and EOI (FFD9)
 * markers. Entropy-coded data never contains FFD9 (0xFF is stuffed as FF00), and segments
 * before the scan are skipped by their lengths, so a thumbnail's EOI in EXIF cannot cut a frame.
 * Returns views into `data`, not copies. Bytes that are not a whole JPEG are ignored.
 */
export function splitMjpeg(data: Buffer): Buffer[] {
  return scanFrames(data).frames;
}

/** The whole JPEGs in `data`, and where the bytes not yet a whole JPEG begin. */
function scanFrames(data: Buffer): { frames: Buffer[]; rest: number } {
  const frames: Buffer[] = [];
  let i = 0;
  while (i + 4 <= data.length) {
    if (data[i] !== 0xff || data[i + 1] !== 0xd8) {
      i++;
      continue;
    }
    const end = findEndOfImage(data, i + 2);
    if (end < 0) break;
    frames.push(data.subarray(i, end));
    i = end;
  }
  return { frames, rest: i };
}

/**
 * Motion-JPEG as it arrives from a pipe or a camera: `push` each chunk, get the whole frames it
 * completes. A frame may span any number of chunks; bytes between frames are skipped. What
 * grows past `maxFrameBytes` without ending is thrown away (counted in `discarded`).
 */
export class MjpegStream {
  #pending: Buffer = Buffer.alloc(0);
  discarded = 0;
  constructor(readonly maxFrameBytes = 16 * 1024 * 1024) {}

  push(chunk: Buffer): Buffer[] {
    const data = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    const { frames, rest } = scanFrames(data);
    this.#pending = data.subarray(rest);
    if (this.#pending.length > this.maxFrameBytes) {
      this.discarded++;
      this.#pending = Buffer.alloc(0);
    }
    return frames;
  }
}

/** Returns the index just past the EOI of the JPEG whose SOI ends at `p`, or -1. */
function findEndOfImage(data: Buffer, p: number): number {
  // Marker segments up to and including SOS carry a 2-byte length.
  while (p + 4 <= data.length) {
    if (data[p] !== 0xff) return -1;
    const marker = data[p + 1];
    if (marker === 0xff) { p++; continue; }
    if (marker === 0xd9) return p + 2;
    if (marker >= 0xd0 && marker <= 0xd7) { p += 2; continue; }
    const len = data.readUInt16BE(p + 2);
    if (len < 2) return -1;
    p += 2 + len;
    if (marker === 0xda) break;
  }
  // Entropy-coded data: the next marker that is not stuffing (FF00) or a restart (FFD0-D7).
  for (; p + 1 < data.length; p++) {
    if (data[p] !== 0xff) continue;
    const m = data[p + 1];
    if (m === 0xd9) return p + 2;
    if (m === 0x00 || (m >= 0xd0 && m <= 0xd7) || m === 0xff) continue;
    // Another segment after the scan (progressive JPEG): parse it and go on.
    if (p + 4 > data.length) return -1;
    if (m === 0xda || (m >= 0xc0 && m <= 0xfe)) {
      p += 1 + data.readUInt16BE(p + 2);
    }
  }
  return -1;
}

/** Reads the width and height from a baseline or progressive JPEG's SOF segment, or null. */
export function jpegSize(frame: Buffer): { width: number; height: number } | null {
  let p = 2;
  while (p + 9 <= frame.length) {
    if (frame[p] !== 0xff) return null;
    const marker = frame[p + 1];
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { height: frame.readUInt16BE(p + 5), width: frame.readUInt16BE(p + 7) };
    }
    p += 2 + frame.readUInt16BE(p + 2);
  }
  return null;
}
