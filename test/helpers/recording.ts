import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import { splitMjpeg } from '../../protocol/index.ts';
import type { SubscriptionSummary } from '../../client/subscription.ts';
import type { Proc } from './procs.ts';

export const SAMPLE_FRAMES = splitMjpeg(readFileSync('samples/sample.mjpeg'));

/** One subscription's figures from a client's JSON summary line. */
export type SummaryFigures = SubscriptionSummary;

/** Waits for the client's JSON summary and returns the figures of `id`. */
export async function summaryOf(client: Proc, id: string, timeoutMs = 15_000): Promise<SummaryFigures> {
  const [line] = await client.waitFor(/^\{"type":"summary".*\}$/, timeoutMs);
  return (JSON.parse(line) as { producers: Record<string, SummaryFigures> }).producers[id];
}

/**
 * Asserts a recording holds only whole sample frames (samples/sample.mjpeg's, or `sample`'s),
 * each following the one before in the (looping) sample; returns the number of sample frames skipped between them.
 */
export function expectSampleFramesInOrder(recordingPath: string, frames: number, sample: readonly Buffer[] = SAMPLE_FRAMES): number {
  const SAMPLE_FRAMES = sample;
  const idx = splitMjpeg(readFileSync(recordingPath)).map((f) => SAMPLE_FRAMES.findIndex((s) => s.equals(f)));
  expect(idx).toHaveLength(frames);
  expect(idx.every((i) => i >= 0)).toBe(true); // byte-identical to a sample frame: never corrupt
  const steps = idx.slice(1).map((i, k) => (i - idx[k] + SAMPLE_FRAMES.length) % SAMPLE_FRAMES.length);
  expect(steps.every((d) => d >= 1)).toBe(true); // never repeated or out of order
  return steps.reduce((n, d) => n + d - 1, 0);
}
