/** Counters shown as rates rather than listed as changes. */
const RATES = new Set(['datagramsIn', 'bytesIn', 'datagramsOut', 'bytesOut']);
/** Figures that are levels, not counters: shown as they are. */
const LEVELS = ['producers', 'clients', 'sessions', 'subscriptions', 'cacheBytes', 'busyPct', 'shedPct', 'worstReportedLossPct', 'worstReportedJitterMs'];

/**
 * The broker's periodic stats line (PROTOCOL.md §4.5 figures) for people: traffic as rates with
 * units, the levels as they are, and of every other counter only what changed since the last
 * line. `prev` is the previous snapshot (null at the first line), `spanMs` the time between.
 */
export function statsLine(prev: Readonly<Record<string, number>> | null, now: Readonly<Record<string, number>>, spanMs: number): Record<string, unknown> {
  const s = Math.max(spanMs, 1) / 1000;
  const d = (k: string): number => (now[k] ?? 0) - (prev?.[k] ?? 0);
  const rate = (datagrams: string, bytes: string): string => `${Math.round(d(datagrams) / s)} datagrams/s, ${((d(bytes) * 8) / s / 1e6).toFixed(2)} Mbit/s`;
  const changes: Record<string, number> = {};
  for (const k of Object.keys(now)) {
    if (RATES.has(k) || LEVELS.includes(k) || k.endsWith('Bytes') || k === 'subscribersReporting') continue;
    const delta = d(k);
    if (delta !== 0) changes[k] = delta;
  }
  const levels = Object.fromEntries(LEVELS.filter((k) => k in now).map((k) => [k, now[k]]));
  return { in: rate('datagramsIn', 'bytesIn'), out: rate('datagramsOut', 'bytesOut'), ...levels, changes };
}
