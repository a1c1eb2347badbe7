import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { decode, encode, MessageType, Status, type ControlMessage, type Message } from '../protocol/index.ts';
import { Proc, startBroker } from './helpers/procs.ts';

const sockets: dgram.Socket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
});

/** A raw UDP peer on 127.0.0.1 that records every decoded datagram it receives. */
async function rawPeer(brokerPort: number): Promise<{ send: (m: ControlMessage) => void; got: Message[]; bytes: () => number; next: (pred: (m: Message) => boolean) => Promise<Message>; until: (cond: () => boolean) => Promise<void> }> {
  const s = dgram.createSocket('udp4');
  sockets.push(s);
  const got: Message[] = [];
  let bytes = 0;
  const checks = new Set<() => void>();
  s.on('message', (buf) => {
    bytes += buf.length;
    got.push(decode(buf));
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
    until,
    next: async (pred) => {
      await until(() => got.some(pred));
      return got.find(pred)!;
    },
  };
}

describe('address validation over real sockets', () => {
  it('refuses a token echoed from another socket, and sends no media to an address that never echoed one', async () => {
    const broker = await startBroker();
    const producer = new Proc('producer/main.ts', ['--id', '1AAA99', '--broker', broker.address], { LOG_LEVEL: 'info' });
    await producer.waitFor(/"msg":"announced"/);

    const owner = await rawPeer(broker.port);
    const thief = await rawPeer(broker.port);
    const bystander = await rawPeer(broker.port);
    owner.send({ type: MessageType.HELLO, producerId: 0, requestId: 1, token: Buffer.alloc(0) });
    const challenge = await owner.next((m) => m.type === MessageType.ACK && m.status === Status.VALIDATE);
    const token = (challenge as { detail: { token: Buffer } }).detail.token;

    thief.send({ type: MessageType.HELLO, producerId: 0, requestId: 2, token });
    await thief.next((m) => m.type === MessageType.ACK && m.status === Status.VALIDATE && m.requestId === 2);
    thief.send({ type: MessageType.SUBSCRIBE, producerId: 0x1aaa99, requestId: 3 });
    bystander.send({ type: MessageType.SUBSCRIBE, producerId: 0x1aaa99, requestId: 4 });

    // The owner proves its address and subscribes: its frames are the yardstick for "time enough".
    owner.send({ type: MessageType.HELLO, producerId: 0, requestId: 5, token });
    await owner.next((m) => m.type === MessageType.ACK && m.requestId === 5 && m.status === Status.OK);
    owner.send({ type: MessageType.SUBSCRIBE, producerId: 0x1aaa99, requestId: 6 });
    await owner.next((m) => m.type === MessageType.ACK && m.requestId === 6 && m.status === Status.OK);
    await owner.until(() => owner.got.filter((m) => m.type === MessageType.MEDIA).length >= 100);

    expect(thief.got.filter((m) => m.type === MessageType.MEDIA)).toEqual([]);
    expect(thief.got.some((m) => m.type === MessageType.ACK && m.requestId === 3)).toBe(false);
    expect(bystander.got).toEqual([]);
    expect(thief.bytes()).toBeLessThanOrEqual(2 * 64); // two challenges, each no larger than the HELLO that drew it
  });
});
