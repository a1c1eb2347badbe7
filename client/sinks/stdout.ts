import type { Writable } from 'node:stream';
import type { FramecastClient } from '../client.ts';

/**
 * One producer's JPEG frames, back to back, to a stream (standard output): Motion-JPEG as
 * ffplay and ffmpeg read it (`-f mjpeg -`). A reader that falls behind skips to the next whole
 * frame (counted); one that goes away (EPIPE) ends the sink and calls `gone`.
 */
export function pipeFrames(client: FramecastClient, id: number, out: Writable, gone: () => void): { readonly skipped: () => number } {
  let blocked = false;
  let skipped = 0;
  let ended = false;
  out.on('error', () => {
    if (ended) return;
    ended = true;
    gone();
  });
  client.on('frame', (sub, frame) => {
    if (sub.id !== id || ended) return;
    if (blocked) {
      skipped++;
      return;
    }
    if (!out.write(frame.data)) {
      blocked = true;
      out.once('drain', () => {
        blocked = false;
      });
    }
  });
  return { skipped: () => skipped };
}
