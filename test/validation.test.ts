import { describe, expect, it } from 'vitest';
import { MessageType, Status } from '../protocol/index.ts';
import { Proc, startBroker } from './helpers/procs.ts';
import { rawPeer } from './helpers/udp.ts';

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
