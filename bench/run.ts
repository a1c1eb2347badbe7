import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import dgram from 'node:dgram';
import { Command } from 'commander';
import { MessageType } from '../protocol/index.ts';
import { edgesOf, isFramecast, openSession, percentile, sessionRequest, HIST_BUCKETS, type RelayKind } from './wire.ts';
import type { MemoryFigures } from './memory.ts';
import { writeReport, writeTreeReport } from './report.ts';

/**
 * `npm run bench` (issue 6): the broker, as its own process pinned to one core, against a
 * plain node:dgram relay, fed by synthetic producers and read by subscriber processes pinned
 * to the other core, all on loopback. For each cell of the matrix and each relay: the highest
 * ingress rate with at most 0.1% loss at the subscribers (doubling, then bisection), what that
 * delivers, latency at half that rate after a warm-up, CPU and memory.
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAX_LOSS = 0.001;
/** Datagrams due at the subscribers that a trial waits for at least (see lengthFor). */
const MIN_EXPECTED = 20_000;

export interface Latency { readonly p50: number; readonly p99: number; readonly p999: number; readonly atIngressPerS: number; readonly samples: number }
export interface Cell { readonly bytes: number; readonly subscribers: number; readonly producers: number }
export interface RelayResult {
  readonly kind: RelayKind;
  /** Highest ingress (datagrams/s from producers) with loss ≤ 0.1%, and what the subscribers got then. */
  readonly sustainedIngressPerS: number;
  readonly deliveredPerS: number;
  readonly deliveredMbitPerS: number;
  readonly lossAtSustained: number;
  /** The source could not send faster: the figure is a floor, not the relay's limit. */
  readonly sourceLimited: boolean;
  readonly latencyUs: Latency;
  readonly latencyAtTenthUs: Latency;
  /** In a cell with tree relays: latency at one ingress rate for every relay of the cell (a tenth of the first relay's sustained rate), so hops compare. */
  readonly latencyAtCommonUs?: Latency;
  /** Tree mode: the source's time to sign a frame (µs, mean at half rate), part of every latency figure. */
  readonly signUsPerFrame?: number;
  readonly cpuPctAtHalf: number;
  /** A tree's CPU % at half rate by process: the origin's, then each edge's. */
  readonly cpuPctAtHalfByProcess?: readonly number[];
  readonly rssKiB: { readonly start: number; readonly withProducers: number; readonly withSubscribers: number; readonly end: number };
  /** RSS growth per idle subscriber and per idle producer joined after the traffic (noisy below 1000 and 100). */
  readonly idleBytesPerSubscriber: number;
  /** The broker's own drop, shed and send-error counters over the cell (empty for the other relays). */
  readonly brokerDrops: Readonly<Record<string, number>>;
  readonly idleBytesPerProducer: number;
  /** delivered/s of each run of this relay in the cell (--repeat); the row is the median one. */
  readonly deliveredPerSRuns?: readonly number[];
  readonly trials: readonly { readonly rate: number; readonly ms: number; readonly sent: number; readonly loss: number; readonly relayDrops: number }[];
}
export interface CellResult extends Cell { readonly relays: readonly RelayResult[] }
export interface BenchRun {
  readonly when: string;
  readonly machine: { readonly cpus: number; readonly model: string; readonly memGiB: number; readonly node: string; readonly pinned: boolean; readonly relayCpus: string; readonly sinks: 'c' | 'node' };
  readonly command: string;
  readonly trialMs: number;
  /** Tree mode: every producer sends signed frames of this many datagrams (1: unsigned single-datagram frames). */
  readonly frameDatagrams?: number;
  /** The broker's retained memory per idle peer (bench/memory.ts); null in --quick runs. */
  readonly memory: MemoryFigures | null;
  readonly cells: readonly CellResult[];
}

const program = new Command('bench')
  .option('--quick', 'a tiny matrix with short trials (what npm test runs)')
  .option('--tree', 'the tree mode: a single broker against an origin with 1, 2 and 4 edges (relays broker,tree-1,tree-2,tree-4), 1200 B, 4 and 100 subscribers, 1 producer, signed frames of 16 datagrams; writes docs/BENCHMARKS-TREE.md with --docs')
  .option('--frame-datagrams <n>', 'producers send signed frames of n datagrams (what edges need: they release only verified frames); the default is unsigned single-datagram frames, or 16 with --tree')
  .option('--sizes <list>', 'datagram sizes', '1200,8192')
  .option('--subscribers <list>', 'subscriber counts', '1,10,100,1000')
  .option('--producers <list>', 'producer counts', '1,100')
  .option('--relays <list>', 'relays to measure', 'broker,baseline')
  .option('--trial-ms <ms>', 'length of each trial', '1000')
  .option('--repeat <n>', 'measure each cell n times, relays taking turns, and keep each relay\'s median', '1')
  .option('--bisect <n>', 'bisection steps after the first failing rate', '4')
  .option('--out <file>', 'JSON results (default bench/results/latest.json, or tree.json with --tree)')
  .option('--docs', 'rewrite docs/BENCHMARKS.md and its plot from the results')
  .option('--broker-arg <arg...>', 'extra broker flags, e.g. --broker-arg=--latency-ms=0')
  .option('--node-arg <arg...>', 'extra node flags for the relays, e.g. --node-arg=--max-semi-space-size=64')
  .option('--relay-cpus <list>', 'cores the relay may run on (taskset -c); 0,1 lets baseline-cluster use both', '0')
  .option('--relay-log <dir>', 'write each relay\'s stdout (e.g. --node-arg=--trace-gc) to <dir>/<kind>-<cell>.log')
  .option('--sinks <kind>', 'subscriber processes: c (recvmmsg, built with gcc; the default where gcc is) or node', '');
program.parse(process.argv);
const o = program.opts();
const list = (v: string) => v.split(',').map(Number);
const quick = o.quick === true;
const tree = o.tree === true;
const given = (name: string): boolean => program.getOptionValueSource(name) === 'cli';
const sizes = quick ? [1200] : tree && !given('sizes') ? [1200] : list(o.sizes);
const subscriberCounts = given('subscribers') ? list(o.subscribers) : quick ? [1, 3] : tree ? [4, 100] : list(o.subscribers);
const producerCounts = quick ? [1] : tree && !given('producers') ? [1] : list(o.producers);
const relays = (tree && !given('relays') ? 'broker,tree-1,tree-2,tree-4' : o.relays as string).split(',') as RelayKind[];
const hasTree = relays.some((k) => edgesOf(k) > 0);
/** Edges verify whole signed frames: with a tree relay in the run, every relay gets the same signed frames. */
const frameDatagrams: number | undefined = o.frameDatagrams !== undefined ? Number(o.frameDatagrams) : hasTree ? 16 : undefined;
const trialMs = quick ? 200 : Number(o.trialMs);
const bisectSteps = quick ? 1 : Number(o.bisect);
const repeats = Math.max(1, Number(o.repeat));
/** The latency run is longer than a trial: its tail is what it is for. */
const latencyMs = quick ? trialMs : Math.max(3000, trialMs);
const pinned = cpus().length >= 2 && spawnSync('taskset', ['-V']).status === 0;
// The C sink speaks protocol version 1 only (no sessions): Node sinks unless it is asked for, for baseline relays alone.
const sinkKind: 'c' | 'node' = o.sinks === 'c' ? 'c' : 'node';
const CSINK = join(ROOT, 'bench/.build/csink');
if (sinkKind === 'c') {
  mkdirSync(dirname(CSINK), { recursive: true });
  const cc = spawnSync('gcc', ['-O2', '-o', CSINK, join(ROOT, 'bench/csink.c')], { encoding: 'utf8' });
  if (cc.status !== 0) {
    process.stderr.write(`bench: cannot build bench/csink.c: ${cc.stderr || cc.error?.message}\n`);
    process.exit(2);
  }
}

interface SinkReport { received: number; late: number; samples: number; hist: [number, number][] }
/** A subscriber process: Node (bench/sink.ts, IPC) or C (bench/csink.c, lines on stdin/stdout). */
interface Sink { reset(latency: boolean): Promise<void>; report(): Promise<SinkReport>; exit(): Promise<void> }

async function startSink(kind: RelayKind, port: number, producerIds: number[]): Promise<Sink> {
  if (sinkKind === 'c' && isFramecast(kind)) throw new Error('bench/csink.c does not open sessions (protocol version 2): run the broker relays with --sinks node');
  if (sinkKind === 'node') {
    const c = helper('bench/sink.ts');
    await ask(c, { cmd: 'init', kind, port, producerIds }, 'ready');
    return {
      reset: async (latency) => { await ask(c, { cmd: 'reset', latency }, 'reset'); },
      report: () => ask<SinkReport>(c, { cmd: 'report' }, 'report'),
      exit: () => new Promise((r) => { c.once('exit', () => r()); c.send({ cmd: 'exit' }); }),
    };
  }
  const c = spawn(CSINK, [String(port), isFramecast(kind) ? 'broker' : 'baseline', ...producerIds.map(String)], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(c);
  let buf = '';
  const waiting: ((line: string) => void)[] = [];
  c.stdout!.setEncoding('utf8');
  c.stdout!.on('data', (chunk: string) => {
    buf += chunk;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      waiting.shift()?.(line);
    }
  });
  const line = (send?: string) => new Promise<string>((resolve) => {
    waiting.push(resolve);
    if (send !== undefined) c.stdin!.write(`${send}\n`);
  });
  await line();
  pin(c.pid!, 1);
  return {
    reset: async (latency) => { await line(`reset ${latency ? 1 : 0}`); },
    report: async () => {
      const [, received, late, samples, ...hist] = (await line('report')).split(' ');
      return { received: Number(received), late: Number(late), samples: Number(samples), hist: hist.map((h) => h.split(':').map(Number) as [number, number]) };
    },
    exit: () => new Promise((r) => { c.once('exit', () => r()); c.stdin!.write('quit\n'); }),
  };
}

const children = new Set<ChildProcess>();
const killAll = (): void => { for (const c of children) c.kill('SIGKILL'); };
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => { killAll(); process.exit(130); });

function pin(pid: number, core: number): void {
  if (pinned) spawnSync('taskset', ['-a', '-p', '-c', String(core), String(pid)], { stdio: 'ignore' });
}

/** A relay's process and its children (baseline-cluster's workers). */
function relayPids(pid: number): number[] {
  const children = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).stdout ?? '';
  return [pid, ...children.split('\n').filter(Boolean).map(Number)];
}

function rssKiB(relay: Relay): number {
  let kib = 0;
  for (const p of relay.procs.flatMap((c) => relayPids(c.pid!))) {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
    if (m) kib += Number(m[1]);
  }
  return kib;
}
/** Datagrams the kernel dropped at every socket on the relay's UDP ports (/proc/net/udp, its last column). */
function socketDrops(relay: Relay): number {
  let drops = 0;
  if (!existsSync('/proc/net/udp')) return 0; // not Linux: the subscribers' count alone
  for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length > 12 && relay.ports.includes(parseInt(f[1].split(':')[1], 16))) drops += Number(f[12]);
  }
  return drops;
}
/** CPU ticks used so far by each of the relay's processes (and their children). */
function cpuTicks(relay: Relay): number[] {
  return relay.procs.map((c) => cpuTicksOf(c.pid!));
}
function cpuTicksOf(pid: number): number {
  let ticks = 0;
  for (const p of relayPids(pid)) {
    const f = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1].split(' ');
    ticks += Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
  }
  return ticks;
}

/** The broker's counters over the wire (a session, then STATS), to see what it dropped or shed. */
async function brokerCounters(port: number): Promise<Record<string, number>> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  try {
    const session = await openSession(s, port);
    const r = await sessionRequest(s, port, session, { type: MessageType.STATS, producerId: 0, requestId: 3 }, (d) => d.type === MessageType.STATS_REPLY);
    return r.type === MessageType.STATS_REPLY ? { ...r.stats } : {};
  } finally {
    s.close();
  }
}

/**
 * A relay under test: its processes (one, or a tree's origin and edges), the port producers
 * send to, and the ports subscribers join at (the edges', for a tree).
 */
interface Relay { readonly procs: readonly ChildProcess[]; readonly ingressPort: number; readonly viewerPorts: readonly number[]; readonly ports: readonly number[] }

async function startRelay(kind: RelayKind, cell: Cell): Promise<Relay> {
  const edges = edgesOf(kind);
  const brokerArgs = (more: string[]) => ['--host', '127.0.0.1', '--port', '0', '--stats-interval-s', '0', '--max-control-rate', '1000000', '--max-subscribers', '1000000', ...more, ...((o.brokerArg as string[] | undefined) ?? [])];
  if (edges > 0) {
    const origin = await startProcess(`${kind}-origin`, cell, 'broker/main.ts', brokerArgs([]));
    const leaves = await Promise.all(Array.from({ length: edges }, (_, e) => startProcess(`${kind}-edge${e + 1}`, cell, 'broker/main.ts', brokerArgs(['--upstream', `127.0.0.1:${origin.port}`]))));
    const viewerPorts = leaves.map((l) => l.port);
    return { procs: [origin.proc, ...leaves.map((l) => l.proc)], ingressPort: origin.port, viewerPorts, ports: [origin.port, ...viewerPorts] };
  }
  const isBroker = kind === 'broker' || kind === 'broker-connected' || kind === 'broker-threads';
  const script = isBroker ? 'broker/main.ts' : 'bench/baseline-relay.ts';
  const args = kind === 'connected' ? ['--connected'] : kind === 'baseline-cluster' ? ['--processes', '2'] : kind === 'baseline-threads' ? ['--threads', '2'] : isBroker
    ? brokerArgs(kind === 'broker-connected' ? ['--connected-sockets'] : kind === 'broker-threads' ? ['--fanout-threads', '2'] : [])
    : [];
  const { proc, port } = await startProcess(kind, cell, script, args);
  return { procs: [proc], ingressPort: port, viewerPorts: [port], ports: [port] };
}

async function startProcess(name: string, cell: Cell, script: string, args: string[]): Promise<{ proc: ChildProcess; port: number }> {
  const proc = spawn(process.execPath, [...((o.nodeArg as string[] | undefined) ?? []), '--import', 'tsx', script, ...args], { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(proc);
  if (o.relayLog !== undefined) {
    mkdirSync(o.relayLog as string, { recursive: true });
    proc.stdout!.pipe(createWriteStream(join(o.relayLog as string, `${name}-${cell.bytes}x${cell.subscribers}x${cell.producers}.log`)));
  }
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    proc.once('exit', (code) => reject(new Error(`${name} exited with ${code} before listening`)));
  });
  // The relay, and a cluster's worker processes with it.
  for (const p of relayPids(proc.pid!)) if (pinned) spawnSync('taskset', ['-a', '-p', '-c', o.relayCpus as string, String(p)], { stdio: 'ignore' });
  return { proc, port };
}

function helper(script: string, core = 1): ChildProcess {
  const c = fork(join(ROOT, script), [], { execArgv: ['--import', 'tsx'], cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(c);
  pin(c.pid!, core);
  return c;
}

function ask<T>(c: ChildProcess, msg: Record<string, unknown>, reply: string): Promise<T> {
  return new Promise((resolve) => {
    const on = (m: { cmd: string }): void => {
      if (m.cmd !== reply) return;
      c.off('message', on);
      resolve(m as T);
    };
    c.on('message', on);
    c.send(msg);
  });
}

/** Subscriber processes for `assignment` (the producer each watches), spread evenly over the relay's viewer ports; up to 500 sockets each. */
async function startSinks(kind: RelayKind, relay: Relay, assignment: number[]): Promise<Sink[]> {
  const sinks: Sink[] = [];
  const k = relay.viewerPorts.length;
  for (let e = 0; e < k; e++) {
    const mine = assignment.filter((_, i) => i % k === e);
    for (let i = 0; i < mine.length; i += 500) sinks.push(await startSink(kind, relay.viewerPorts[e], mine.slice(i, i + 500)));
  }
  return sinks;
}

/** `common`: the ingress rate of the cell's common latency trial, or 'tenth' for this relay's own tenth (the first relay of a tree cell); undefined: none. */
async function measure(kind: RelayKind, cell: Cell, common?: number | 'tenth'): Promise<RelayResult> {
  const relay = await startRelay(kind, cell);
  try {
    const rssStart = rssKiB(relay);
    const producerIds = Array.from({ length: cell.producers }, (_, i) => 0x100000 + i);
    const source = helper('bench/source.ts', Number(process.env.BENCH_SOURCE_CORE ?? 1));
    await ask(source, { cmd: 'init', kind, port: relay.ingressPort, producerIds, bytes: cell.bytes, frameDatagrams }, 'ready');
    const rssProducers = rssKiB(relay);
    // Subscriber i watches producer i mod P (at edge i mod K, in a tree).
    const perProducer = producerIds.map((_, p) => Math.floor(cell.subscribers / cell.producers) + (p < cell.subscribers % cell.producers ? 1 : 0));
    const assignment = Array.from({ length: cell.subscribers }, (_, i) => producerIds[i % cell.producers]);
    const sinks = await startSinks(kind, relay, assignment);
    const rssSubscribers = rssKiB(relay);
    const trials: { rate: number; ms: number; sent: number; loss: number; relayDrops: number }[] = [];
    // A trial lasts until the subscribers are due at least MIN_EXPECTED datagrams (up to 5 trial
    // lengths): with 100 producers and one viewer, a second at 100k/s is due only 1,000 of them,
    // and one burst of loss decides the 0.1% mark.
    const lengthFor = (rate: number): number => {
      if (quick) return trialMs;
      const duePerS = (rate * cell.subscribers) / cell.producers;
      return Math.min(5 * trialMs, Math.max(trialMs, Math.ceil((MIN_EXPECTED * 10) / duePerS) * 100));
    };

    const trial = async (rate: number, latency = false, ms = lengthFor(rate)) => {
      await Promise.all(sinks.map((s) => s.reset(latency)));
      const t0 = cpuTicks(relay);
      const drops0 = socketDrops(relay);
      const { sent, signUs } = await ask<{ sent: number[]; signUs: number }>(source, { cmd: 'run', rate, ms }, 'ran');
      const cpuEach = cpuTicks(relay).map((t, i) => (t - t0[i]) / 100 / (ms / 1000));
      const cpu = cpuEach.reduce((a, b) => a + b, 0);
      // Wait until nothing more arrives: a relay behind at the end of a trial must not spill
      // its backlog into the next one (it would count there, and load it).
      let reports = await Promise.all(sinks.map((s) => s.report()));
      for (let last = -1, now = 0; ; last = now) {
        now = reports.reduce((n, r) => n + r.received, 0);
        if (now === last) break;
        await new Promise((r) => setTimeout(r, 60));
        reports = await Promise.all(sinks.map((s) => s.report()));
      }
      const expected = sent.reduce((n, k, p) => n + k * perProducer[p], 0);
      // Delivered means in time for a live stream: 100 ms or more late counts as lost.
      const received = reports.reduce((n, r) => n + r.received - r.late, 0);
      const totalSent = sent.reduce((a, b) => a + b, 0);
      // Loss is what the subscribers missed, or what the kernel dropped at the relay's socket of
      // everything sent to it (unwatched producers too), whichever is more: the second is exact
      // where few of the producers are watched.
      const relayDrops = socketDrops(relay) - drops0;
      const loss = expected === 0 ? 1 : Math.max(0, 1 - received / expected, relayDrops / totalSent);
      trials.push({ rate, ms, sent: totalSent, loss: Number(loss.toFixed(5)), relayDrops });
      return { loss, received, ms, totalSent, cpu, cpuEach, reports, signUs, sourceShort: totalSent < 0.95 * (rate * ms) / 1000 };
    };

    // Warm-up (JIT, caches), then double until loss appears, then bisect.
    const fanOut = cell.subscribers / Math.min(cell.subscribers, cell.producers);
    // (--quick starts low: on a busy CI machine the first rate must pass, or nothing is measured.)
    // (Signed frames go out in bursts of a frame's datagrams: a floor of a frame a second, not 200 datagrams.)
    const r0 = Math.max(frameDatagrams ?? 200, Math.round((quick ? 5000 : 20_000) / fanOut));
    await trial(r0);
    let lo = 0;
    let hi = 0;
    let best: Awaited<ReturnType<typeof trial>> | null = null;
    let sourceLimited = false;
    // A rate fails only if two trials in a row lose more than 0.1%: one hiccup of a busy
    // 2-core machine (a timer, a page fault) must not end the search.
    const attempt = async (rate: number) => {
      const t = await trial(rate);
      return t.loss <= MAX_LOSS && !t.sourceShort ? t : trial(rate);
    };
    for (let r = r0; ; r *= 2) {
      const t = await attempt(r);
      if (t.loss <= MAX_LOSS && !t.sourceShort) {
        lo = r;
        best = t;
        if (r >= 2_000_000) break;
      } else {
        hi = r;
        sourceLimited = t.sourceShort && t.loss <= MAX_LOSS;
        break;
      }
    }
    for (let i = 0; i < bisectSteps && hi > 0 && !sourceLimited; i++) {
      const mid = Math.round((lo + hi) / 2);
      const t = await attempt(mid);
      if (t.loss <= MAX_LOSS && !t.sourceShort) {
        lo = mid;
        best = t;
      } else hi = mid;
    }
    // Latency at half the sustained rate, after all the above has warmed everything up.
    const half = Math.max(100, Math.round(lo / 2));
    const lat = await trial(half, true, latencyMs);
    const latencyOf = (t: Awaited<ReturnType<typeof trial>>, ingress: number) => {
      const hist = new Float64Array(HIST_BUCKETS);
      let samples = 0;
      for (const r of t.reports) for (const [us, n] of r.hist) { hist[us] += n; samples += n; }
      return { p50: percentile(hist, samples, 0.5), p99: percentile(hist, samples, 0.99), p999: percentile(hist, samples, 0.999), atIngressPerS: ingress, samples };
    };
    // And at a tenth, the load at which the reference figures in issue 6 were taken.
    const tenth = Math.max(50, Math.round(lo / 10));
    const light = await trial(tenth, true, latencyMs);
    // A cell with a tree: every relay's latency at the first relay's tenth too, so that what a hop adds shows.
    const commonRate = common === 'tenth' ? tenth : common;
    const atCommon = commonRate === undefined ? undefined : commonRate === tenth ? light : await trial(commonRate, true, latencyMs);
    const delivered = best === null ? 0 : best.received / (best.ms / 1000);
    // Memory of idle peers, after the traffic (the heap has grown to its working size): as many
    // subscribers again, and as many producers again, joined with nothing flowing; the growth
    // over 2 s, divided by their number.
    const settle = () => new Promise((r) => setTimeout(r, quick ? 200 : 2000));
    const rssEnd = rssKiB(relay);
    // What the brokers themselves dropped, shed or failed to send over the whole cell.
    const counters: Record<string, number> = {};
    if (isFramecast(kind)) for (const port of relay.ports) for (const [k, v] of Object.entries(await brokerCounters(port))) counters[k] = (counters[k] ?? 0) + v;
    const notable = Object.fromEntries(Object.entries(counters).filter(([k, v]) => v > 0 && (k.startsWith('drop') || ['framesShed', 'datagramsShed', 'sendErrors'].includes(k))));
    const extraSinks = await startSinks(kind, relay, assignment);
    await settle();
    const rssMoreSubscribers = rssKiB(relay);
    const extraSource = helper('bench/source.ts');
    await ask(extraSource, { cmd: 'init', kind, port: relay.ingressPort, producerIds: producerIds.map((id) => id + 0x10000), bytes: cell.bytes }, 'ready');
    await settle();
    const rssMoreProducers = rssKiB(relay);
    await Promise.all([source, extraSource].map((c) => new Promise((r) => { c.once('exit', r); c.send({ cmd: 'exit' }); })));
    await Promise.all([...sinks, ...extraSinks].map((s) => s.exit()));
    return {
      kind, sustainedIngressPerS: lo, deliveredPerS: Math.round(delivered), deliveredMbitPerS: Number(((delivered * cell.bytes * 8) / 1e6).toFixed(1)),
      lossAtSustained: best?.loss ?? 1, sourceLimited,
      latencyUs: latencyOf(lat, half),
      latencyAtTenthUs: latencyOf(light, tenth),
      ...(atCommon === undefined ? {} : { latencyAtCommonUs: latencyOf(atCommon, commonRate!) }),
      ...(frameDatagrams === undefined ? {} : { signUsPerFrame: lat.signUs }),
      cpuPctAtHalf: Math.round(lat.cpu * 100),
      ...(relay.procs.length > 1 ? { cpuPctAtHalfByProcess: lat.cpuEach.map((c) => Math.round(c * 100)) } : {}),
      rssKiB: { start: rssStart, withProducers: rssProducers, withSubscribers: rssSubscribers, end: rssEnd },
      brokerDrops: notable,
      idleBytesPerSubscriber: Math.round(((rssMoreSubscribers - rssEnd) * 1024) / cell.subscribers),
      idleBytesPerProducer: Math.round(((rssMoreProducers - rssMoreSubscribers) * 1024) / cell.producers),
      trials,
    };
  } finally {
    // SIGTERM first, so a relay run with --node-arg=--cpu-prof writes its profile.
    await Promise.all(relay.procs.map(async (proc) => {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      if (proc.exitCode === null && await Promise.race([exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 3000))]) === false) proc.kill('SIGKILL');
      children.delete(proc);
    }));
  }
}

// Retained memory first, in a process of its own with the garbage collector at hand (not in the tree mode: it is one broker's).
let memory: MemoryFigures | null = null;
if (!quick && !hasTree) {
  const out = join(ROOT, 'bench/.build/memory.json');
  mkdirSync(dirname(out), { recursive: true });
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', 'bench/memory.ts', '--out', out], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  process.stdout.write(r.stdout);
  if (r.status === 0) memory = JSON.parse(readFileSync(out, 'utf8')) as MemoryFigures;
}

const cells: CellResult[] = [];
const header = 'bytes  subs  prods  relay      ingress/s  delivered/s  Mbit/s  vs base  µs p50/p99/p99.9 at 1/2  at 1/10          CPU%  RSS MiB  B/idle sub  B/idle prod';
process.stdout.write(`Framecast benchmark: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), Node ${process.version}, ${pinned ? `relay pinned to core ${o.relayCpus}, load on core 1` : 'not pinned (no taskset or one core)'}, ` +
  `subscribers in ${sinkKind === 'c' ? 'C (recvmmsg)' : 'Node'}, trials ${trialMs} ms\n${header}\n`);
for (const bytes of sizes) {
  for (const producers of producerCounts) {
    for (const subscribers of subscriberCounts) {
      const cell = { bytes, subscribers, producers };
      // With --repeat N, the relays take turns N times and each keeps its median run: on a
      // 2-core machine two runs of one relay differ by up to a quarter.
      const runs = new Map<RelayKind, RelayResult[]>(relays.map((k) => [k, []]));
      let common: number | 'tenth' | undefined = hasTree ? 'tenth' : undefined;
      for (let rep = 0; rep < repeats; rep++) {
        for (const kind of relays) {
          const r = await measure(kind, cell, common);
          runs.get(kind)!.push(r);
          if (common === 'tenth') common = r.latencyAtCommonUs!.atIngressPerS;
        }
      }
      const results = relays.map((kind) => {
        const all = runs.get(kind)!;
        const median = [...all].sort((a, b) => a.deliveredPerS - b.deliveredPerS)[(all.length - 1) >> 1];
        return { ...median, deliveredPerSRuns: all.map((r) => r.deliveredPerS) };
      });
      const base = results.find((r) => r.kind === 'baseline');
      for (const r of results) {
        const ratio = base && base.deliveredPerS > 0 ? `${((100 * r.deliveredPerS) / base.deliveredPerS).toFixed(0)}%` : '-';
        const perSub = r.idleBytesPerSubscriber;
        process.stdout.write(`${String(bytes).padStart(5)}  ${String(subscribers).padStart(4)}  ${String(producers).padStart(5)}  ${r.kind.padEnd(9)}  ${String(r.sustainedIngressPerS).padStart(9)}  ${String(r.deliveredPerS).padStart(11)}  ${String(r.deliveredMbitPerS).padStart(6)}  ${ratio.padStart(7)}   ${`${r.latencyUs.p50}/${r.latencyUs.p99}/${r.latencyUs.p999}`.padEnd(18)}  ${`${r.latencyAtTenthUs.p50}/${r.latencyAtTenthUs.p99}/${r.latencyAtTenthUs.p999}`.padEnd(16)}  ${String(r.cpuPctAtHalf).padStart(4)}  ${(r.rssKiB.end / 1024).toFixed(1).padStart(7)}  ${String(perSub).padStart(10)}  ${String(r.idleBytesPerProducer).padStart(11)}${r.sourceLimited ? '  (source-limited)' : ''}${(r.deliveredPerSRuns?.length ?? 0) > 1 ? `  runs: ${r.deliveredPerSRuns!.join(' / ')}` : ''}` +
          `${r.latencyAtCommonUs === undefined ? '' : `  at ${r.latencyAtCommonUs.atIngressPerS}/s: ${r.latencyAtCommonUs.p50}/${r.latencyAtCommonUs.p99} µs${hopAdded(results[0], r)}`}` +
          `${r.signUsPerFrame === undefined ? '' : `  signing ${r.signUsPerFrame} µs/frame`}` +
          `${r.cpuPctAtHalfByProcess === undefined ? '' : `  CPU% origin/edges ${r.cpuPctAtHalfByProcess.join('/')}`}` +
          `${Object.keys(r.brokerDrops).length > 0 ? `  broker: ${Object.entries(r.brokerDrops).map(([k, v]) => `${k} ${v}`).join(', ')}` : ''}\n`);
      }
      cells.push({ ...cell, relays: results });
    }
  }
}
/** What a tree's edge hop adds to the first relay's latency at the common rate: p50 and p99, µs. */
function hopAdded(first: RelayResult, r: RelayResult): string {
  if (r === first || first.latencyAtCommonUs === undefined || r.latencyAtCommonUs === undefined) return '';
  return ` (${sign(r.latencyAtCommonUs.p50 - first.latencyAtCommonUs.p50)}/${sign(r.latencyAtCommonUs.p99 - first.latencyAtCommonUs.p99)} vs ${first.kind})`;
}
function sign(n: number): string {
  return n >= 0 ? `+${n}` : String(n);
}

const run: BenchRun = {
  when: new Date().toISOString(),
  machine: { cpus: cpus().length, model: cpus()[0]?.model ?? '?', memGiB: Math.round(totalmem() / 2 ** 30), node: process.version, pinned, relayCpus: o.relayCpus as string, sinks: sinkKind },
  command: `npm run bench --${process.argv.slice(2).length ? ` ${process.argv.slice(2).join(' ')}` : ''}`,
  trialMs, memory, cells, ...(frameDatagrams === undefined ? {} : { frameDatagrams }),
};
const outFile = (o.out as string | undefined) ?? join(ROOT, `bench/results/${hasTree ? 'tree' : 'latest'}.json`);
mkdirSync(dirname(outFile), { recursive: true });
writeFileSync(outFile, `${JSON.stringify(run, null, 2)}\n`);
process.stdout.write(`results: ${outFile}\n`);
if (o.docs === true) (hasTree ? writeTreeReport : writeReport)(run, join(ROOT, 'docs'));
killAll();
process.exit(0);
