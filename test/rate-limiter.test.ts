import { describe, expect, it } from 'vitest';
import { RateLimiter } from '../broker/rate-limiter.ts';

describe('RateLimiter', () => {
  it('keeps memory bounded however many addresses send', () => {
    const r = new RateLimiter({ ratePerSecond: 10, maxTracked: 100 });
    for (let i = 0; i < 10_000; i++) r.allow(`10.0.${i >> 8}.${i & 255}:1`, 0);
    expect(r.tracked).toBe(100);
    r.sweep(5000);
    expect(r.tracked).toBe(0);
  });
});
