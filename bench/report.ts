import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchRun } from './run.ts';

/** docs/BENCHMARKS.md's table and an SVG plot of delivered datagrams/s against subscribers. */
export function writeReport(run: BenchRun, docsDir: string): void {
  mkdirSync(docsDir, { recursive: true });
  const rows = run.cells.flatMap((c) => {
    const base = c.relays.find((r) => r.kind === 'baseline');
    return c.relays.map((r) => {
      const ratio = base && base.deliveredPerS > 0 && r.kind !== 'baseline' ? `${((100 * r.deliveredPerS) / base.deliveredPerS).toFixed(0)}%` : '';
      return `| ${c.bytes} | ${c.subscribers} | ${c.producers} | ${r.kind} | ${r.sustainedIngressPerS.toLocaleString('en')} | ${r.deliveredPerS.toLocaleString('en')}${r.sourceLimited ? ' ≥' : ''}${(r.deliveredPerSRuns?.length ?? 0) > 1 ? ` (runs: ${r.deliveredPerSRuns!.map((d) => d.toLocaleString('en')).join(' / ')})` : ''} | ${r.deliveredMbitPerS} | ${ratio} | ${r.latencyUs.p50} / ${r.latencyUs.p99} / ${r.latencyUs.p999} | ${r.latencyAtTenthUs.p50} / ${r.latencyAtTenthUs.p99} / ${r.latencyAtTenthUs.p999} | ${r.cpuPctAtHalf} | ${(r.rssKiB.end / 1024).toFixed(1)} | ${r.idleBytesPerSubscriber} | ${r.idleBytesPerProducer} |`;
    });
  });
  const table = [
    '| bytes | subscribers | producers | relay | ingress/s (≤0.1% loss) | delivered/s | Mbit/s | broker/baseline | latency p50 / p99 / p99.9 µs at half rate | at a tenth | CPU % at half | RSS MiB | RSS B per idle subscriber | per idle producer |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
  writeFileSync(join(docsDir, 'bench-delivered.svg'), plot(run));
  writeFileSync(join(docsDir, 'benchmarks.json'), `${JSON.stringify(run, null, 2)}\n`);
  const m = run.machine;
  const ratios = run.cells.map((c) => {
    const get = (k: string) => c.relays.find((r) => r.kind === k)?.deliveredPerS ?? 0;
    const b = get('baseline');
    const pct = (k: string) => `${((100 * get(k)) / b).toFixed(0)}%`;
    return b > 0 && get('broker') > 0
      ? `${c.bytes} B × ${c.subscribers} subscribers × ${c.producers} producers: ${pct('broker')}${get('broker-connected') > 0 ? ` (with --connected-sockets: ${pct('broker-connected')})` : ''}${get('broker-threads') > 0 ? ` (with --fanout-threads 2: ${pct('broker-threads')})` : ''}`
      : null;
  }).filter((x) => x !== null);
  writeFileSync(join(docsDir, 'BENCHMARKS.md'), `# Benchmarks

Written by \`${run.command}\` (bench/run.ts, bench/report.ts) on ${run.when.slice(0, 10)}: ${m.cpus} cores (${m.model}),
${m.memGiB} GiB, Node ${m.node}; ${m.pinned ? `the relay pinned to core ${m.relayCpus ?? '0'} with taskset, producers and subscribers on core 1` : 'not pinned'};
subscribers read with ${m.sinks === 'c' ? 'recvmmsg in C (bench/csink.c, built with gcc: Node\'s receive path would cap every figure near 200k/s)' : 'Node'}; loopback; trials of ${run.trialMs} ms, longer (up to ${5 * run.trialMs} ms) where the subscribers would be due fewer than 20,000 datagrams.
Raw figures: [benchmarks.json](benchmarks.json).

How each row is measured: the relay runs as its own process; synthetic producers (bench/source.ts, on protocol/)
announce and send real MEDIA datagrams at an exact rate with the send time (CLOCK_MONOTONIC) in the payload; subscribers
validate their address and subscribe as clients do. The ingress rate doubles from a low start until, in two trials in a row, more than
0.1% of the datagrams due at the subscribers is missing or arrives 100 ms or more late (too late for a live stream),
or the kernel dropped more than 0.1% of all datagrams sent to the relay at its socket (/proc/net/udp: exact where few producers are watched),
then 4 bisection steps narrow it; *delivered/s* is what the subscribers got at the highest passing rate. Latency is the time
from the producer's send to the subscriber's receive, through the relay, over 3 s at half and at a tenth of that rate,
after everything above has warmed the relay up. RSS per idle subscriber (producer) is the relay's RSS growth when as
many subscribers (producers) again joined after the traffic, with nothing flowing, over 2 s, divided by their number:
noisy below 1000 subscribers and 100 producers, where the heap's own growth steps dominate. *broker* is Framecast's broker/main.ts with every feature on
(address validation, leases, loss-recovery history, stats); *baseline* is bench/baseline-relay.ts, a plain node:dgram
relay (receive, send the same Buffer to each subscriber, nothing else); *connected* is the same relay with one
connected socket per subscriber (reuseAddr on the relay's port), to show what Node's per-send address handling costs.

${run.memory === null ? '' : `Memory the broker retains (bench/memory.ts: a Broker fed real HELLO, token and SUBSCRIBE datagrams, garbage
collected before and after, the second of two batches so that growing the heap is not charged to the peers):
- per idle subscriber: ${run.memory.heapBytesPerIdleSubscriber} B of heap, ${run.memory.rssBytesPerIdleSubscriber} B of RSS (over ${run.memory.subscribers.toLocaleString('en')} subscribers);
- per idle producer: ${run.memory.heapBytesPerIdleProducer} B of heap (over ${run.memory.producers.toLocaleString('en')}); a streaming producer adds its loss-recovery
  index, ${Math.round((run.memory.bytesPerStreamingProducer - run.memory.heapBytesPerIdleProducer) / 1024)} KiB by default; the datagrams of all producers share one 16 MiB log (PROTOCOL.md §3.6).

`}Broker as a share of the baseline's delivered datagrams/s, same run:
${ratios.map((r) => `- ${r}`).join('\n')}

${table}

![delivered datagrams/s against subscribers](bench-delivered.svg)

Reading it: run to run, a row moves by up to a quarter on this 2-core machine, the baseline's as much as the broker's
(compare rows of one run with each other, not with another run's; \`--repeat 3\` measures a cell three times, the relays
taking turns, and keeps each relay's median). The broker does more per datagram received than the baseline: it
checks the header, marks the producer heard, keeps the instant-join frame, and copies each datagram it forwards
into the loss-recovery log; the baseline drops an unwatched producer's datagrams after one map lookup
(\`npm run bench:hot-path\`: about 200 ns against 120 ns per unwatched datagram in a loop, 340 ns per watched one of
1200 B, 950 ns of 8 KiB). That shows where a row has little fan-out (100 producers, few subscribers), most with 8 KiB
datagrams. Where fan-out dominates, both are bound by Node's per-send cost, which *connected* shows can be cut by up
to a fifth with a socket per subscriber (at about 5 KiB of RSS and a file descriptor each); the broker does that with
\`--connected-sockets\` (relay *broker-connected*). Latency tails at half load are the machine's as much as the
relay's: the baseline's vary as much between runs. A second core, and the broker's \`--fanout-threads\` (relay
*broker-threads*, measured with \`--relay-cpus 0,1\`): [SCALING.md](SCALING.md).
`);
}

function plot(run: BenchRun): string {
  const W = 640, H = 400, L = 70, B = 50, T = 30, R = 150;
  const series = new Map<string, { x: number; y: number }[]>();
  for (const c of run.cells) {
    for (const r of c.relays) {
      const key = `${r.kind} ${c.bytes} B, ${c.producers} prod`;
      const s = series.get(key) ?? [];
      s.push({ x: c.subscribers, y: r.deliveredPerS });
      series.set(key, s);
    }
  }
  const xs = [...new Set(run.cells.map((c) => c.subscribers))].sort((a, b) => a - b);
  const maxY = Math.max(1, ...[...series.values()].flat().map((p) => p.y));
  const xPos = (x: number) => L + (xs.length === 1 ? 0 : (xs.indexOf(x) / (xs.length - 1)) * (W - L - R));
  const yPos = (y: number) => H - B - (y / maxY) * (H - B - T);
  const colours = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];
  const lines = [...series.entries()].map(([name, pts], i) => {
    const c = colours[i % colours.length];
    const dash = name.startsWith('baseline') ? ' stroke-dasharray="5,4"' : '';
    const d = pts.sort((a, b) => a.x - b.x).map((p, k) => `${k === 0 ? 'M' : 'L'}${xPos(p.x).toFixed(1)},${yPos(p.y).toFixed(1)}`).join(' ');
    return `<path d="${d}" fill="none" stroke="${c}" stroke-width="2"${dash}/><text x="${W - R + 8}" y="${T + 14 * i}" font-size="11" fill="${c}">${name}</text>`;
  });
  const yTicks = [0, 0.25, 0.5, 0.75, 1].map((f) => `<text x="${L - 6}" y="${yPos(f * maxY) + 4}" font-size="11" text-anchor="end">${Math.round((f * maxY) / 1000)}k</text><line x1="${L}" x2="${W - R}" y1="${yPos(f * maxY)}" y2="${yPos(f * maxY)}" stroke="#ddd"/>`);
  const xTicks = xs.map((x) => `<text x="${xPos(x)}" y="${H - B + 16}" font-size="11" text-anchor="middle">${x}</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${L}" y="18" font-size="13">Delivered datagrams/s at ≤0.1% loss (solid: broker, dashed: plain node:dgram relay)</text>
${yTicks.join('\n')}
${xTicks.join('\n')}
<text x="${(L + W - R) / 2}" y="${H - 12}" font-size="12" text-anchor="middle">subscribers</text>
${lines.join('\n')}
</svg>
`;
}

/** docs/BENCHMARKS-TREE.md: `npm run bench -- --tree`, a single broker against trees of an origin and K edges. */
export function writeTreeReport(run: BenchRun, docsDir: string): void {
  mkdirSync(docsDir, { recursive: true });
  writeFileSync(join(docsDir, 'benchmarks-tree.json'), `${JSON.stringify(run, null, 2)}\n`);
  const m = run.machine;
  const lat = (l: { p50: number; p99: number; p999: number } | undefined) => (l === undefined ? '' : `${l.p50} / ${l.p99} / ${l.p999}`);
  const rows = run.cells.flatMap((c) => {
    const first = c.relays[0];
    return c.relays.map((r) => {
      const vs = r === first || first.deliveredPerS === 0 ? '' : `${((100 * r.deliveredPerS) / first.deliveredPerS).toFixed(0)}%`;
      const added = r === first || r.latencyAtCommonUs === undefined || first.latencyAtCommonUs === undefined ? ''
        : `${r.latencyAtCommonUs.p50 - first.latencyAtCommonUs.p50} / ${r.latencyAtCommonUs.p99 - first.latencyAtCommonUs.p99}`;
      const cpu = r.cpuPctAtHalfByProcess === undefined ? String(r.cpuPctAtHalf) : `${r.cpuPctAtHalf} (origin ${r.cpuPctAtHalfByProcess[0]}, edges ${r.cpuPctAtHalfByProcess.slice(1).join(', ')})`;
      return `| ${c.bytes} | ${c.subscribers} | ${r.kind} | ${r.sustainedIngressPerS.toLocaleString('en')} | ${r.deliveredPerS.toLocaleString('en')}${r.sourceLimited ? ' ≥' : ''}${(r.deliveredPerSRuns?.length ?? 0) > 1 ? ` (runs: ${r.deliveredPerSRuns!.map((d) => d.toLocaleString('en')).join(' / ')})` : ''} | ${r.deliveredMbitPerS} | ${vs} | ${r.latencyAtCommonUs?.atIngressPerS.toLocaleString('en') ?? ''} | ${lat(r.latencyAtCommonUs)} | ${added} | ${lat(r.latencyUs)} | ${cpu} | ${(r.rssKiB.end / 1024).toFixed(1)} |`;
    });
  });
  const sign = run.cells.flatMap((c) => c.relays.map((r) => r.signUsPerFrame ?? 0)).filter((x) => x > 0).sort((a, b) => a - b);
  writeFileSync(join(docsDir, 'BENCHMARKS-TREE.md'), `# Benchmarks: a tree of brokers

Written by \`${run.command}\` (bench/run.ts, bench/report.ts) on ${run.when.slice(0, 10)}: ${m.cpus} cores (${m.model}),
${m.memGiB} GiB, Node ${m.node}; ${m.pinned ? `every relay process pinned to core ${m.relayCpus ?? '0'} with taskset, producers and subscribers on core 1` : 'not pinned'};
subscribers read with Node; loopback; trials of ${run.trialMs} ms, longer (up to ${5 * run.trialMs} ms) where the subscribers would be due fewer than 20,000 datagrams.
Raw figures: [benchmarks-tree.json](benchmarks-tree.json). What the tree is for, and what it costs at internet scale: [SCALING.md](SCALING.md#a-tree-of-brokers).

How each row is measured: as in [BENCHMARKS.md](BENCHMARKS.md) (the same harness and loss rule: at most 0.1% of the
datagrams due at the subscribers missing or 100 ms late), with these differences:
- *broker* is one broker process; *tree-K* is an origin broker and K edge brokers (\`--upstream\` the origin), each its
  own process. Producers send to the origin (or the broker); subscriber i joins edge i mod K, so each edge pulls the stream
  once from the origin and fans it out to its share of the viewers.
- The producer sends whole frames of ${run.frameDatagrams ?? 1} datagrams, each signed with its run's Ed25519 key as a real producer signs
  them: an edge releases a frame to its viewers only once all of it has arrived and its signature verifies (PROTOCOL.md §3.7).
  The send time is written into every fragment before the frame is signed, so every latency figure includes the signing
  (${sign.length === 0 ? '' : `${sign[0]}-${sign[sign.length - 1]} µs a frame here`}) and the edge's wait for the frame's last datagram.
- *latency at one rate* is measured for every relay of a cell at the same ingress rate (a tenth of the first relay's
  sustained rate), over 3 s: *added by the edge hop* is the tree's figure minus the single broker's, p50 / p99.
- All relay processes share the relay core${(m.relayCpus ?? '0').includes(',') ? 's' : ''}: a tree here measures what the extra hop costs, not what more machines
  give. Each edge on a machine of its own delivers what one broker does (SCALING.md works the tree out from that).
- CPU is the sum over the relay's processes at half its sustained rate, then by process.

| bytes | subscribers | relay | ingress/s (≤0.1% loss) | delivered/s | Mbit/s | vs broker | latency at one rate: ingress/s | p50 / p99 / p99.9 µs | added by the edge hop, p50 / p99 µs | latency at half rate | CPU % at half | RSS MiB (all processes) |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
${rows.join('\n')}

Reading it: run to run, a row moves by up to a quarter on this 2-core machine. On one core the tree delivers less
than one broker, as it must: the same core now also runs the origin's send to each edge and each edge's receive,
reassembly and signature check. The check is once per frame and edge (Ed25519 over the frame, about 0.15 ms for
16 datagrams here), so with few viewers per edge it dominates: with 4 viewers, tree-4 checks each frame four times on
the one core for four sends. What matters for a tree across machines is the edge hop's latency and the origin's
load, which depends on the number of edges, not of viewers.
`);
}
