import { writeFileSync } from 'node:fs';
import { Broker } from '../broker/broker.ts';
import { MessageType, type Message } from '../protocol/index.ts';
import { openSessionDirect, sealForBroker } from '../session/peer-state.ts';

/**
 * What the broker retains per idle subscriber and per producer (issue 6: under 2 KiB per idle
 * subscriber). Live RSS after joins is mostly the garbage of the joins themselves, so this
 * measures in one process, with the garbage collected (node --expose-gc): a Broker fed real
 * datagrams (HELLO, token echoed, SUBSCRIBE; ANNOUNCE), heap and RSS before and after.
 *
 * usage: node --expose-gc --import tsx bench/memory.ts [--out FILE]
 */
export interface MemoryFigures {
  readonly subscribers: number;
  readonly heapBytesPerIdleSubscriber: number;
  readonly rssBytesPerIdleSubscriber: number;
  readonly producers: number;
  readonly heapBytesPerIdleProducer: number;
  /** A producer that streams also holds its loss-recovery history (PROTOCOL.md §3.6). */
  readonly bytesPerStreamingProducer: number;
}

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  process.stderr.write('bench/memory.ts: run with node --expose-gc\n');
  process.exit(2);
}

const replies: Buffer[] = [];
const broker = new Broker({
  socket: { send: (msg: Buffer) => void replies.push(msg) }, clock: () => 1000,
  options: { maxClients: 1_000_000, maxSubscribersPerProducer: 1_000_000, maxProducers: 1_000_000, maxControlPerSecondPerSession: 1_000_000, maxRateTrackedAddresses: 1_000_000, maxSessions: 1_000_000, maxProducersPerIp: 1_000_000, maxHandshakesPerSecond: 1e9, maxMemoryBytes: 2 ** 50 },
});
/** A session opened through the broker's handshake, then a message sealed within it. */
const feed = (m: Message & { type: Exclude<Message['type'], typeof MessageType.MEDIA> }, address: string, port: number) => {
  const rinfo = { address, port };
  const s = openSessionDirect((d) => broker.handleDatagram(d, rinfo), () => replies[replies.length - 1]);
  broker.handleDatagram(sealForBroker(s, m), rinfo);
};
const addr = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const metadata = { title: 'memory', video: { codec: 'mjpeg', width: 2, height: 2, fps: 12 }, audio: null };

function measure(label: string, n: number, join: (i: number) => void): { heap: number; rss: number } {
  gc!();
  gc!();
  const before = process.memoryUsage();
  for (let i = 0; i < n; i++) join(i);
  replies.length = 0;
  gc!();
  gc!();
  const after = process.memoryUsage();
  const r = { heap: Math.round((after.heapUsed - before.heapUsed) / n), rss: Math.round((after.rss - before.rss) / n) };
  process.stdout.write(`${label}: ${r.heap} B of heap, ${r.rss} B of RSS each (${n})\n`);
  return r;
}

feed({ type: MessageType.ANNOUNCE, producerId: 1, requestId: 1, epoch: 1, frameKey: Buffer.alloc(32, 1), auth: Buffer.alloc(0), metadata }, '10.200.0.1', 4000);
const joinSubscriber = (i: number): void => {
  const [address, port] = [addr(i), 20_000 + (i % 40_000)];
  feed({ type: MessageType.SUBSCRIBE, producerId: 1, requestId: 3 }, address, port);
};
// A first batch grows the heap's spaces and the allocator's arenas to their working size (a
// constant, which would otherwise be charged to the subscribers); the figure is the second's.
const WARM = 20_000;
const SUBSCRIBERS = 40_000;
measure('idle subscriber (first batch, includes growing the heap)', WARM, joinSubscriber);
const sub = measure('idle subscriber', SUBSCRIBERS, (i) => joinSubscriber(WARM + i));
if (broker.subscriptionCount !== WARM + SUBSCRIBERS) throw new Error(`only ${broker.subscriptionCount} subscribed`);
// Producers: announced, then each sends one datagram (a streaming producer's history is allocated).
const PRODUCERS = 2000;
const prod = measure('idle producer', PRODUCERS, (i) => {
  feed({ type: MessageType.ANNOUNCE, producerId: 0x1000 + i, requestId: 1, epoch: 1, frameKey: Buffer.alloc(32, 1), auth: Buffer.alloc(0), metadata }, addr(0x100000 + i), 4000);
});
// A streaming producer also holds its history index: 28 bytes per slot per track, by
// construction; the datagrams themselves share one log (historyBytes for all producers).
const historyBytes = 2 * broker.options.historyDatagrams * 28;
process.stdout.write(`streaming producer: + ${historyBytes} B of loss-recovery index (while it streams; the datagrams share one ${broker.options.historyBytes / 2 ** 20} MiB log)\n`);

const figures: MemoryFigures = {
  subscribers: SUBSCRIBERS, heapBytesPerIdleSubscriber: sub.heap, rssBytesPerIdleSubscriber: sub.rss,
  producers: PRODUCERS, heapBytesPerIdleProducer: prod.heap, bytesPerStreamingProducer: prod.heap + historyBytes,
};
const out = process.argv.indexOf('--out');
if (out > 0) writeFileSync(process.argv[out + 1], `${JSON.stringify(figures, null, 2)}\n`);
