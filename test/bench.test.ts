import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import type { BenchRun } from '../bench/run.ts';
import { Proc } from './helpers/procs.ts';

// The benchmark harness on a tiny matrix, so it cannot rot (issue 6). No timing is asserted:
// only that every relay was measured, delivered something, and the figures hang together.
it('npm run bench runs end to end on a tiny matrix', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'framecast-bench-'));
  try {
    const out = join(dir, 'bench.json');
    const p = new Proc('bench/run.ts', ['--quick', '--out', out]);
    await p.waitFor(/^results: /, 60_000);
    expect((await p.exited).code).toBe(0);
    const run = JSON.parse(readFileSync(out, 'utf8')) as BenchRun;
    expect(run.cells.map((c) => c.subscribers)).toEqual([1, 3]);
    for (const c of run.cells) {
      expect(c.relays.map((r) => r.kind)).toEqual(['broker', 'baseline']);
      for (const r of c.relays) {
        expect(r.sustainedIngressPerS).toBeGreaterThan(0);
        expect(r.deliveredPerS).toBeGreaterThan(0);
        expect(r.lossAtSustained).toBeLessThanOrEqual(0.001);
        expect(r.latencyUs.samples).toBeGreaterThan(0);
        expect(r.latencyUs.p50).toBeLessThanOrEqual(r.latencyUs.p99);
        expect(r.rssKiB.end).toBeGreaterThan(0);
      }
    }
    expect(p.stdoutLines.some((l) => /^ 1200 +3 +1 +broker/.test(l))).toBe(true); // the table
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 90_000);

it('npm run bench:hot-path measures the broker fed in a loop, every datagram taken', async () => {
  for (const args of [[], ['--watched']]) {
    const p = new Proc('bench/hot-path.ts', ['--quick', ...args]);
    await p.waitFor(/^checked: the broker took all 20000 datagrams/, 30_000);
    expect((await p.exited).code).toBe(0);
    expect(p.stdoutLines.some((l) => /^broker \d+ ns, baseline's lookup \d+ ns, lookup and MEDIA check \d+ ns \(the check: -?\d+ ns\)$/.test(l))).toBe(true);
  }
}, 60_000);

it('the relays that measure a second core (the broker\'s fan-out threads, threads, cluster) run on the tiny matrix too', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'framecast-bench-'));
  try {
    const out = join(dir, 'bench.json');
    const p = new Proc('bench/run.ts', ['--quick', '--relays', 'broker-threads,baseline-threads,baseline-cluster', '--relay-cpus', '0,1', '--out', out]);
    await p.waitFor(/^results: /, 60_000);
    expect((await p.exited).code).toBe(0);
    const run = JSON.parse(readFileSync(out, 'utf8')) as BenchRun;
    for (const c of run.cells) {
      expect(c.relays.map((r) => r.kind)).toEqual(['broker-threads', 'baseline-threads', 'baseline-cluster']);
      for (const r of c.relays) {
        expect(r.deliveredPerS).toBeGreaterThan(0);
        expect(r.lossAtSustained).toBeLessThanOrEqual(0.001);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 90_000);

it('the tree mode runs on the tiny matrix: an origin and two edges as processes, signed frames through the edges\' check, hop latency at one rate', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'framecast-bench-'));
  try {
    const out = join(dir, 'bench.json');
    const p = new Proc('bench/run.ts', ['--quick', '--relays', 'broker,tree-2', '--subscribers', '3', '--out', out]);
    await p.waitFor(/^results: /, 90_000);
    expect((await p.exited).code).toBe(0);
    const run = JSON.parse(readFileSync(out, 'utf8')) as BenchRun;
    expect(run.frameDatagrams).toBe(16);
    for (const c of run.cells) {
      expect(c.relays.map((r) => r.kind)).toEqual(['broker', 'tree-2']);
      const [broker, tree] = c.relays;
      for (const r of c.relays) {
        // Delivered at all means whole frames passed the edges' signature check (FrameGate).
        expect(r.deliveredPerS).toBeGreaterThan(0);
        expect(r.lossAtSustained).toBeLessThanOrEqual(0.001);
        expect(r.signUsPerFrame).toBeGreaterThan(0);
        // Both at the same ingress rate: the broker's tenth.
        expect(r.latencyAtCommonUs!.atIngressPerS).toBe(broker.latencyAtTenthUs.atIngressPerS);
        expect(r.latencyAtCommonUs!.samples).toBeGreaterThan(0);
      }
      expect(tree.cpuPctAtHalfByProcess).toHaveLength(3); // the origin and two edges
    }
    expect(p.stdoutLines.some((l) => /^ 1200 +3 +1 +tree-2 .* at \d+\/s: \d+\/\d+ µs \([+-]\d+\/[+-]\d+ vs broker\)/.test(l))).toBe(true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);
