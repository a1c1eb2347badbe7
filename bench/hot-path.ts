/**
 * The broker's own JavaScript cost per received MEDIA datagram, without sockets (issue 6): a
 * Broker fed datagrams of 100 producers in a loop, beside a loop doing only what the baseline
 * relay does (one map lookup). Sockets, the kernel and Node's receive path are not in it: run
 * `npm run bench` for those. `npx tsx bench/hot-path.ts [--watched]`.
 */
import { Broker } from '../broker/broker.ts';
import { clearMediaToken, mediaProducerId, mediaSeq, MessageType } from '../protocol/index.ts';
import { ReplayWindow } from '../protocol/session-crypto.ts';
import { hasMediaToken, type PeerSession } from '../broker/sessions.ts';
import { openSessionDirect, sealForBroker, type PeerSessionState } from '../session/peer-state.ts';
import { benchDatagram, stamp } from './wire.ts';

const PRODUCERS = 100;
const quick = process.argv.includes('--quick'); // what npm test runs: the script works, no figure
const N = quick ? 20_000 : 2_000_000;
const ROUNDS = quick ? 1 : 5;
const watched = process.argv.includes('--watched');
let sends = 0;
let lastSent: Buffer | null = null;
let now = 0;
let tick = 0;
const broker = new Broker({ socket: { send: (msg) => { sends++; lastSent = msg; } }, clock: () => now });
const from = (i: number) => ({ address: '127.0.0.1', port: 40000 + i });
const metadata = { title: 'bench', video: { codec: 'mjpeg', width: 2, height: 2, fps: 12 }, audio: null };
/** A session per peer, opened through the broker's own handshake (PROTOCOL.md §4.9). */
const open = (rinfo: { address: string; port: number }): PeerSessionState => openSessionDirect((d) => broker.handleDatagram(d, rinfo), () => lastSent ?? undefined);
const producerSessions: PeerSessionState[] = [];
for (let i = 0; i < PRODUCERS; i++) {
  const s = open(from(i));
  producerSessions.push(s);
  broker.handleDatagram(sealForBroker(s, { type: MessageType.ANNOUNCE, producerId: 0x100000 + i, requestId: 1, epoch: 1, frameKey: Buffer.alloc(32, 1), auth: Buffer.alloc(0), metadata }), from(i));
}
if (watched) {
  // A viewer of each producer: the fan-out and the loss-recovery log are in the loop too.
  for (let i = 0; i < PRODUCERS; i++) {
    const viewer = from(1000 + i);
    broker.handleDatagram(sealForBroker(open(viewer), { type: MessageType.SUBSCRIBE, producerId: 0x100000 + i, requestId: 3 }), viewer);
  }
  if (broker.subscriptionCount !== PRODUCERS) throw new Error(`${broker.subscriptionCount} of ${PRODUCERS} viewers subscribed`);
}
const bytesArg = process.argv.indexOf('--bytes');
const BYTES = bytesArg > 0 ? Number(process.argv[bytesArg + 1]) : 1200;
const pool = Array.from({ length: 4096 }, () => benchDatagram(0x100000, BYTES));
const seqs = new Uint32Array(PRODUCERS);
const rinfos = Array.from({ length: PRODUCERS }, (_, i) => from(i));
const lookup = new Map<number, number>();
/** What the MEDIA check reads of each producer's session, and a replay window per producer. */
const tokens = producerSessions.map((s) => ({ mediaTokenHi: s.keys.mediaToken.readUInt32BE(0), mediaTokenLo: s.keys.mediaToken.readUInt32BE(4) }) as PeerSession);
let windows = producerSessions.map(() => new ReplayWindow(1024));

function loop(handle: (d: Buffer, p: number) => void): number {
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const p = i % PRODUCERS;
    const d = pool[i & 4095];
    stamp(d, 0x100000 + p, seqs[p]++, producerSessions[p].keys.mediaToken);
    now = tick++ / 200; // 200k datagrams/s
    handle(d, p);
  }
  return ((performance.now() - t0) * 1e6) / N;
}

console.log(`hot path, ${BYTES}-byte datagrams, ${PRODUCERS} producers, ${watched ? 'each watched by one viewer' : 'none watched'}; ns per datagram (${ROUNDS} rounds of ${N}, the loop's own cost included)`);
for (let round = 0; round < ROUNDS; round++) {
  const b = loop((d, p) => broker.handleDatagram(d, { address: rinfos[p].address, port: rinfos[p].port }));
  let hits = 0;
  seqs.fill(0, 0); // the broker forwards a seq once (PROTOCOL.md §3.5): each round numbers afresh after a new epoch
  for (let i = 0; i < PRODUCERS; i++) broker.handleDatagram(sealForBroker(producerSessions[i], { type: MessageType.ANNOUNCE, producerId: 0x100000 + i, requestId: 1, epoch: 2 + round, frameKey: Buffer.alloc(32, 1), auth: Buffer.alloc(0), metadata }), from(i));
  const base = loop((d, p) => {
    const r = { address: rinfos[p].address, port: rinfos[p].port };
    if (lookup.get(mediaProducerId(d)) !== undefined || r.port === 0) hits++;
  });
  // The MEDIA check of protocol version 2 alone (PROTOCOL.md §3.1): the 64-bit token compared,
  // the seq through its replay window, the token zeroed; what it costs over the lookup.
  let refused = 0;
  windows = producerSessions.map(() => new ReplayWindow(1024)); // the seqs start again each round
  const check = loop((d, p) => {
    if (lookup.get(mediaProducerId(d)) === undefined && hasMediaToken(d, tokens[p]) && windows[p].accept(mediaSeq(d))) clearMediaToken(d);
    else refused++;
  });
  console.log(`broker ${b.toFixed(0)} ns, baseline's lookup ${base.toFixed(0)} ns, lookup and MEDIA check ${check.toFixed(0)} ns (the check: ${(check - base).toFixed(0)} ns)`);
  if (hits !== 0 || refused !== 0) throw new Error('the lookup or the check found what it must not');
}
if (broker.counters.mediaIn !== ROUNDS * N || (watched && sends < ROUNDS * N)) throw new Error(`the broker took ${broker.counters.mediaIn} and sent ${sends} of ${ROUNDS * N} datagrams`);
console.log(`checked: the broker took all ${ROUNDS * N} datagrams${watched ? ' and forwarded each' : ''}`);
