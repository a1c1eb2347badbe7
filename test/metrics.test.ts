import { describe, expect, it } from 'vitest';
import { Proc, startBroker } from './helpers/procs.ts';
import { brokerStats, sessionPeer } from './helpers/udp.ts';

/** The metric families a scrape must hold, and the STATS field each counter mirrors. */
const MIRRORED: Readonly<Record<string, string>> = {
  framecast_datagrams_received_total: 'datagramsIn',
  framecast_received_bytes_total: 'bytesIn',
  framecast_datagrams_sent_total: 'datagramsOut',
  framecast_sent_bytes_total: 'bytesOut',
  framecast_media_datagrams_received_total: 'mediaIn',
  framecast_control_datagrams_received_total: 'controlIn',
  framecast_retransmissions_sent_total: 'retransmitsOut',
  framecast_frames_shed_total: 'framesShed',
  framecast_uplink_repairs_received_total: 'uplinkRepairsIn',
};

interface Sample { readonly name: string; readonly labels: Readonly<Record<string, string>>; readonly value: number }

/** Parses Prometheus text format 0.0.4, failing on any line it does not recognise. */
function parseExposition(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const helped = new Set<string>();
  expect(text.endsWith('\n')).toBe(true);
  for (const line of text.slice(0, -1).split('\n')) {
    const help = /^# HELP (framecast_[a-z_]+) \S.*$/.exec(line);
    if (help !== null) {
      helped.add(help[1]);
      continue;
    }
    const type = /^# TYPE (framecast_[a-z_]+) (counter|gauge)$/.exec(line);
    if (type !== null) {
      expect(helped.has(type[1])).toBe(true);
      types.set(type[1], type[2]);
      continue;
    }
    const m = /^(framecast_[a-z_]+)(?:\{((?:[a-z_]+="(?:[^"\\]|\\.)*",?)*)\})? (-?\d+(?:\.\d+)?(?:e[+-]?\d+)?)$/.exec(line);
    if (m === null) throw new Error(`not a line of the exposition format: ${line}`);
    expect(types.has(m[1])).toBe(true); // TYPE comes before the samples
    if (types.get(m[1]) === 'counter') expect(m[1].endsWith('_total')).toBe(true);
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return { samples, types };
}

describe('metrics over HTTP (--metrics)', () => {
  it('serves /metrics in the Prometheus text format, every value in step with the broker\'s own STATS; /healthz, /readyz and a plain 404', async () => {
    const broker = await startBroker(['--metrics', '127.0.0.1:0']);
    const [, url] = await broker.proc.waitFor(/^metrics on (http:\/\/127\.0\.0\.1:\d+)\/metrics$/);
    const producer = new Proc('producer/main.ts', ['--id', '1AAA99', '--broker', broker.address], { LOG_LEVEL: 'info' });
    await producer.waitFor(/"msg":"announced"/);
    const client = new Proc('client/main.ts', ['--broker', broker.address]);
    client.write('subscribe 1AAA99');
    await client.waitFor(/^1AAA99: frames are arriving/);
    // The stream's rate is measured each second: let one pass with the viewer on.
    await new Promise((r) => setTimeout(r, 1500));
    const peer = await sessionPeer(broker.port);
    const before = await brokerStats(peer, 1);
    const res = await fetch(`${url}/metrics`);
    const after = await brokerStats(peer, 2);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const { samples } = parseExposition(await res.text());
    const one = (name: string, labels: Record<string, string> = {}): number => {
      const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
      expect(found, name).toHaveLength(1);
      return found[0].value;
    };
    for (const [name, field] of Object.entries(MIRRORED)) {
      expect(one(name), name).toBeGreaterThanOrEqual(before[field]);
      expect(one(name), name).toBeLessThanOrEqual(after[field]);
    }
    expect(one('framecast_media_datagrams_received_total')).toBeGreaterThan(0);
    expect(one('framecast_producers')).toBe(1);
    expect(one('framecast_producer_online', { producer: '1AAA99' })).toBe(1);
    expect(one('framecast_producer_viewers', { producer: '1AAA99' })).toBe(1);
    expect(one('framecast_producer_bits_per_second', { producer: '1AAA99' })).toBeGreaterThan(10_000);
    expect(one('framecast_process_resident_memory_bytes')).toBeGreaterThan(10 * 2 ** 20);
    expect(one('framecast_process_cpu_seconds_total')).toBeGreaterThan(0);
    // Only the producer and a drop or refusal reason label a sample: no per-connection labels.
    for (const s of samples) for (const k of Object.keys(s.labels)) expect(['producer', 'reason']).toContain(k);

    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${url}/readyz`);
    expect([ready.status, await ready.text()]).toEqual([200, 'ready\n']);
    const missing = await fetch(`${url}/nope`);
    expect([missing.status, await missing.text()]).toEqual([404, 'no such page: /nope (try /metrics, /healthz, /readyz)\n']);
  });

  it('is off unless asked, and a bad address is one line and exit code 2', async () => {
    const broker = await startBroker();
    expect(broker.proc.stdoutLines.some((l) => l.startsWith('metrics on'))).toBe(false);
    const bad = new Proc('broker/main.ts', ['--port', '0', '--metrics', 'nine']);
    expect((await bad.exited).code).toBe(2);
    expect(bad.stderrLines[0]).toBe("broker: --metrics: metrics address must be [host:]port or off, got 'nine'");
  });
});
