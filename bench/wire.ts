import type dgram from 'node:dgram';
import { decode, encode, encodeMedia, isMedia, MEDIA_HEADER_BYTES, MediaOffset, MessageType, Status, Track, writeMediaToken, type ControlMessage, type Message } from '../protocol/index.ts';
import { openFromBroker, PeerHandshake, sealForBroker, type PeerSessionState } from '../session/peer-state.ts';

/**
 * The benchmark's datagrams: real MEDIA (one fragment per frame, so the broker checks and
 * forwards them as it would a stream), with the send time in the payload's first 8 bytes.
 */
export const SEND_TIME_OFFSET = MEDIA_HEADER_BYTES;

/** Milliseconds on CLOCK_MONOTONIC, which every process on this machine shares (the C sink reads it too). */
export function sharedNowMs(): number {
  const [s, ns] = process.hrtime();
  return s * 1e3 + ns / 1e6;
}

export function benchDatagram(producerId: number, bytes: number): Buffer {
  const payload = Buffer.alloc(bytes - MEDIA_HEADER_BYTES, 0x5a);
  return encodeMedia({
    producerId, epoch: 1, track: Track.VIDEO, flags: 1, fragIndex: 0, fragCount: 1, seq: 0, frameNo: 0,
    timestampMs: 0, frameBytes: payload.length, fragOffset: 0, payload,
  });
}

/** Numbers a pooled datagram for sending: producer, seq and frame number, its session's media token, send time. */
export function stamp(d: Buffer, producerId: number, seq: number, token?: Buffer): void {
  d.writeUInt32BE(producerId, MediaOffset.PRODUCER_ID);
  if (token !== undefined) writeMediaToken(d, token);
  d.writeUInt32BE(seq >>> 0, MediaOffset.SEQ);
  d.writeUInt32BE(seq >>> 0, MediaOffset.FRAME_NO);
  d.writeDoubleLE(sharedNowMs(), SEND_TIME_OFFSET);
}

/** The baseline relay's registration: [0xFF, producer ID]; answered with [0xFE]. */
export const REGISTER = 0xff;
export const REGISTERED = 0xfe;
export { isMedia };

/**
 * broker-connected: the broker with --connected-sockets; connected: the baseline with a
 * connected socket per subscriber; baseline-cluster: two baseline processes sharing one socket;
 * baseline-threads: a receiving thread and two sending worker threads; broker-threads: the
 * broker with --fanout-threads 2 (run both with --relay-cpus 0,1, or the threads share one core).
 */
export type RelayKind = 'broker' | 'broker-connected' | 'broker-threads' | 'baseline' | 'connected' | 'baseline-cluster' | 'baseline-threads' | TreeKind;
/** tree-K: an origin broker and K edge brokers (--upstream), each a process; producers send to the origin, subscribers are spread over the edges. */
export type TreeKind = `tree-${number}`;

/** The edges of a tree relay, or 0 for a single relay. */
export function edgesOf(kind: RelayKind): number {
  const m = /^tree-(\d+)$/.exec(kind);
  return m === null ? 0 : Number(m[1]);
}

/** Whether the relay is Framecast's (sessions, ANNOUNCE, SUBSCRIBE) rather than the plain baseline. */
export const isFramecast = (kind: RelayKind): boolean => kind.startsWith('broker') || edgesOf(kind) > 0;

/** Latency histogram: 1 µs buckets up to 100 ms, the rest in the last bucket. */
export const HIST_BUCKETS = 100_000;

export function percentile(hist: ArrayLike<number>, total: number, p: number): number {
  const want = Math.ceil(total * p);
  let seen = 0;
  for (let i = 0; i < hist.length; i++) {
    seen += hist[i];
    if (seen >= want) return i;
  }
  return hist.length - 1;
}

/** Sends `msg` to the relay on loopback until a reply for which `done` says yes, every 200 ms. */
export function exchange(s: dgram.Socket, port: number, msg: Buffer, done: (reply: Buffer) => boolean): Promise<Buffer> {
  return exchangeEach(s, port, () => msg, done);
}

/** A control reply that `want` accepts, or null (MEDIA, noise, or another reply). */
export function controlReply(d: Buffer, want: (m: Message) => boolean): Message | null {
  if (isMedia(d)) return null;
  try {
    const m = decode(d);
    return want(m) ? m : null;
  } catch {
    return null;
  }
}

/** Opens a session for a socket with the session layer's own steps (PROTOCOL.md §4.9). */
export async function openSession(s: dgram.Socket, port: number): Promise<PeerSessionState> {
  const hs = new PeerHandshake();
  const ack = (id: number) => (d: Buffer) => controlReply(d, (m) => m.type === MessageType.ACK && m.requestId === id) !== null;
  const challenge = controlReply(await exchange(s, port, encode(hs.hello(1)), ack(1)), () => true);
  const token = challenge?.type === MessageType.ACK ? challenge.detail.token ?? Buffer.alloc(0) : Buffer.alloc(0);
  const welcome = await exchange(s, port, encode(hs.hello(2, token)), (d) => hs.open(d, 2) !== null);
  return hs.open(welcome, 2)!;
}

/** A request within a session, sent (sealed anew each time) until a reply `want` accepts. */
export async function sessionRequest(s: dgram.Socket, port: number, session: PeerSessionState, m: ControlMessage, want: (r: Message) => boolean): Promise<Message> {
  let reply: Message | null = null;
  await exchangeEach(s, port, () => sealForBroker(session, m), (d) => {
    if (isMedia(d) || d.length < 12 || d.readUInt32BE(8) !== session.id) return false;
    const r = openFromBroker(session, d);
    if (typeof r === 'string' || !want(r)) return false;
    reply = r;
    return true;
  });
  return reply!;
}

export const isOk = (requestId: number) => (m: Message): boolean => m.type === MessageType.ACK && m.requestId === requestId && m.status === Status.OK;

function exchangeEach(s: dgram.Socket, port: number, make: () => Buffer, done: (reply: Buffer) => boolean): Promise<Buffer> {
  return new Promise((resolve) => {
    const onReply = (reply: Buffer): void => {
      if (!done(reply)) return;
      clearInterval(timer);
      s.off('message', onReply);
      resolve(reply);
    };
    s.on('message', onReply);
    const timer = setInterval(() => s.send(make(), port, '127.0.0.1'), 200);
    s.send(make(), port, '127.0.0.1');
  });
}
