import { describe, expect, it } from 'vitest';
import { encode, MessageType, Status } from '../protocol/index.ts';
import { PeerHandshake, sealForBroker } from '../session/peer-state.ts';
import { Proc, startBroker } from './helpers/procs.ts';
import { rawPeer } from './helpers/udp.ts';

describe('address validation over real sockets', () => {
  it('refuses a token echoed from another socket, and sends nothing to an address without a session', async () => {
    const broker = await startBroker();
    const producer = new Proc('producer/main.ts', ['--id', '1AAA99', '--broker', broker.address], { LOG_LEVEL: 'info' });
    await producer.waitFor(/"msg":"announced"/);

    const owner = await rawPeer(broker.port);
    const thief = await rawPeer(broker.port);
    const bystander = await rawPeer(broker.port);
    const hs = new PeerHandshake();
    const hello = encode(hs.hello(1));
    owner.sendRaw(hello);
    const challenge = await owner.next((m) => m.type === MessageType.ACK && m.status === Status.VALIDATE);
    const token = (challenge as { detail: { token: Buffer } }).detail.token;

    thief.sendRaw(encode(new PeerHandshake().hello(2, token)));
    await thief.next((m) => m.type === MessageType.ACK && m.status === Status.VALIDATE && m.requestId === 2);
    thief.send({ type: MessageType.SUBSCRIBE, producerId: 0x1aaa99, requestId: 3 }); // unsealed
    bystander.send({ type: MessageType.SUBSCRIBE, producerId: 0x1aaa99, requestId: 4 });

    // The owner opens its session and subscribes: its frames are the yardstick for "time enough".
    const before = owner.raw.length;
    owner.sendRaw(encode(hs.hello(5, token)));
    await owner.next((m) => m.type === MessageType.ACK && m.requestId === 5 && m.status === Status.OK);
    const session = hs.open(owner.raw.slice(before).find((r) => r.readUInt32BE(8) !== 0)!, 5)!;
    expect(session).not.toBeNull();
    owner.sendRaw(sealForBroker(session, { type: MessageType.SUBSCRIBE, producerId: 0x1aaa99, requestId: 6 }));
    await owner.next((m) => m.type === MessageType.ACK && m.requestId === 6 && m.status === Status.OK);
    await owner.until(() => owner.got.filter((m) => m.type === MessageType.MEDIA).length >= 100);

    expect(thief.got.filter((m) => m.type === MessageType.MEDIA)).toEqual([]);
    expect(thief.got.some((m) => m.type === MessageType.ACK && m.requestId === 3)).toBe(false);
    expect(bystander.got).toEqual([]);
    expect(thief.bytes()).toBeLessThanOrEqual(hello.length); // one challenge, no larger than the HELLO that drew it
  });
});

describe('producer secrets over real sockets', () => {
  it('accepts the producer that holds its ID\'s secret and refuses one that does not', async () => {
    const broker = await startBroker([], { PRODUCER_SECRETS: '1AAA99:correct horse,2BBB88:battery' });
    const good = new Proc('producer/main.ts', ['--id', '1AAA99', '--broker', broker.address], { LOG_LEVEL: 'info', PRODUCER_SECRET: 'correct horse' });
    const bad = new Proc('producer/main.ts', ['--id', '2BBB88', '--broker', broker.address], { LOG_LEVEL: 'info', PRODUCER_SECRET: 'staple' });
    await good.waitFor(/"msg":"announced"/);
    await bad.waitFor(/"why":"this producer ID needs a valid secret","msg":"announce refused"/);
    expect(bad.stderrLines.some((l) => l.includes('"msg":"announced"'))).toBe(false);
  });
});
