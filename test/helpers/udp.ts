import dgram from 'node:dgram';
import { afterEach } from 'vitest';
import { decode, encode, MessageType, Status, type ControlMessage, type Message } from '../../protocol/index.ts';

const sockets: dgram.Socket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
});

/** A raw UDP peer on 127.0.0.1 that records every decoded datagram it receives; closed after each test. */
export async function rawPeer(brokerPort: number): Promise<{ send: (m: ControlMessage) => void; sendRaw: (buf: Buffer, port?: number) => void; got: Message[]; bytes: () => number; next: (pred: (m: Message) => boolean) => Promise<Message>; until: (cond: () => boolean) => Promise<void> }> {
  const s = dgram.createSocket('udp4');
  sockets.push(s);
  const got: Message[] = [];
  let bytes = 0;
  const checks = new Set<() => void>();
  s.on('message', (buf) => {
    bytes += buf.length;
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
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  return {
    got,
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


/** Validates a raw peer's address (PROTOCOL.md §4.9), so it may send client requests. */
export async function validatedPeer(brokerPort: number): Promise<Awaited<ReturnType<typeof rawPeer>>> {
  const peer = await rawPeer(brokerPort);
  peer.send({ type: MessageType.HELLO, producerId: 0, requestId: 0xff01, token: Buffer.alloc(0) });
  const challenge = await peer.next((m) => m.type === MessageType.ACK && m.requestId === 0xff01);
  const token = (challenge as { detail: { token: Buffer } }).detail.token;
  peer.send({ type: MessageType.HELLO, producerId: 0, requestId: 0xff02, token });
  await peer.next((m) => m.type === MessageType.ACK && m.requestId === 0xff02 && m.status === Status.OK);
  return peer;
}

/** The broker's counters, asked for over the wire. */
export async function brokerStats(peer: Awaited<ReturnType<typeof rawPeer>>, requestId: number): Promise<Readonly<Record<string, number>>> {
  peer.send({ type: MessageType.STATS, producerId: 0, requestId });
  const reply = await peer.next((m) => m.type === MessageType.STATS_REPLY && m.requestId === requestId);
  return (reply as { stats: Record<string, number> }).stats;
}
