import dgram from 'node:dgram';
import { afterEach } from 'vitest';
import { decode, encode, MessageType, Status, type ControlMessage, type Message } from '../../protocol/index.ts';
import { PeerHandshake, sealForBroker, type PeerSessionState } from '../../session/peer-state.ts';

const sockets: dgram.Socket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
});

/** A raw UDP peer on 127.0.0.1 that records every decoded datagram it receives; closed after each test. */
export async function rawPeer(brokerPort: number, bindAddress = '127.0.0.1'): Promise<{ send: (m: ControlMessage) => void; sendRaw: (buf: Buffer, port?: number) => void; got: Message[]; raw: Buffer[]; port: number; bytes: () => number; next: (pred: (m: Message) => boolean) => Promise<Message>; until: (cond: () => boolean) => Promise<void> }> {
  const s = dgram.createSocket('udp4');
  sockets.push(s);
  const got: Message[] = [];
  const raw: Buffer[] = [];
  let bytes = 0;
  const checks = new Set<() => void>();
  s.on('message', (buf) => {
    bytes += buf.length;
    raw.push(buf);
    try {
      got.push(decode(buf));
    } catch {
      got.push({ type: -1 } as never); // counted in bytes; tests look at decoded ones
    }
    for (const check of [...checks]) check();
  });
  /** Resolves once cond() holds, checked after every datagram. */
  const until = (cond: () => boolean): Promise<void> => new Promise((resolve) => {
    const check = (): void => {
      if (!cond()) return;
      checks.delete(check);
      resolve();
    };
    checks.add(check);
    check();
  });
  await new Promise<void>((r) => s.bind(0, bindAddress, () => r()));
  return {
    got,
    raw,
    port: s.address().port,
    bytes: () => bytes,
    send: (m) => s.send(encode(m), brokerPort, '127.0.0.1'),
    sendRaw: (buf, port = brokerPort) => s.send(buf, port, '127.0.0.1'),
    until,
    next: async (pred) => {
      await until(() => got.some(pred));
      return got.find(pred)!;
    },
  };
}


export type RawPeer = Awaited<ReturnType<typeof rawPeer>>;

/**
 * A raw peer with a session (PROTOCOL.md §4.9), opened with the session layer's own steps:
 * `send` seals within the session; `got` holds what the broker sent, opened and decoded
 * and MEDIA (tags are not checked here: open with `session` where it matters).
 */
export async function sessionPeer(brokerPort: number, bindAddress = '127.0.0.1'): Promise<RawPeer & { session: PeerSessionState; sendSealed: (m: ControlMessage) => Buffer }> {
  const peer = await rawPeer(brokerPort, bindAddress);
  const hs = new PeerHandshake();
  peer.sendRaw(encode(hs.hello(0xff01)));
  const challenge = await peer.next((m) => m.type === MessageType.ACK && m.requestId === 0xff01);
  const token = (challenge as { detail: { token: Buffer } }).detail.token;
  const before = peer.raw.length;
  peer.sendRaw(encode(hs.hello(0xff02, token)));
  await peer.next((m) => m.type === MessageType.ACK && m.requestId === 0xff02 && m.status === Status.OK);
  const welcome = peer.raw.slice(before).find((r) => r.length > 12 && r.readUInt32BE(8) !== 0)!;
  const session = hs.open(welcome, 0xff02);
  if (session === null) throw new Error('the broker\'s answer did not open a session');
  const sendSealed = (m: ControlMessage): Buffer => {
    const d = sealForBroker(session, m);
    peer.sendRaw(d);
    return d;
  };
  return { ...peer, session, sendSealed, send: (m) => void sendSealed(m) };
}

/** The broker's counters, asked for over the wire within a session. */
export async function brokerStats(peer: RawPeer, requestId: number): Promise<Readonly<Record<string, number>>> {
  peer.send({ type: MessageType.STATS, producerId: 0, requestId });
  const reply = await peer.next((m) => m.type === MessageType.STATS_REPLY && m.requestId === requestId);
  return (reply as { stats: Record<string, number> }).stats;
}
