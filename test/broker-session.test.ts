import { afterEach, describe, expect, it, vi } from 'vitest';
import { Broker } from '../broker/broker.ts';
import { BrokerSession, DEFAULT_RETRY_INITIAL_MS } from '../session/broker-session.ts';
import { decode, encode, MessageType, Role, SESSION_ID_OFFSET, Status, type Message } from '../protocol/index.ts';

/**
 * The peer's session layer (session/broker-session.ts) driven with a recording socket and fake
 * timers, against a real in-memory Broker: handshake, sealing, retries with backoff, consent of
 * the broker (unreachable, reachable), forged datagrams, and a broker that forgot the session.
 */
afterEach(() => {
  vi.useRealTimers();
});

function setup(opts: { lose?: (d: Buffer) => boolean } = {}) {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  const clock = (): number => Date.now();
  const sent: Buffer[] = [];
  let brokerUp = true;
  let broker!: Broker;
  const session = new BrokerSession({
    socket: {
      send: (d: Buffer) => {
        sent.push(Buffer.from(d));
        if (brokerUp && !(opts.lose?.(d) ?? false)) broker.handleDatagram(Buffer.from(d), { address: '10.0.0.1', port: 4000 });
      },
    },
    clock,
    options: {
      role: Role.CLIENT, producerId: 0, heartbeatIntervalMs: 1000, leaseIntervals: 3, retryInitialMs: DEFAULT_RETRY_INITIAL_MS,
      requestAttempts: 5, maxDatagramBytes: 1200,
    },
  });
  const newBroker = (): Broker => new Broker({ socket: { send: (msg) => session.handleDatagram(msg) }, clock, options: { heartbeatIntervalMs: 1000, leaseMs: 3000 } });
  broker = newBroker();
  const events: string[] = [];
  for (const e of ['established', 'unreachable', 'reachable', 'notRegistered'] as const) session.on(e, () => events.push(e));
  const dropped: string[] = [];
  session.on('dropped', (code) => dropped.push(code));
  /** Lets promise chains (handshake, requests) settle between timer steps. */
  const settle = async (ms = 0): Promise<void> => {
    for (let i = 0; i < 10; i++) {
      await Promise.resolve();
      vi.advanceTimersByTime(0);
    }
    if (ms > 0) await vi.advanceTimersByTimeAsync(ms);
  };
  return {
    session, sent, events, dropped, settle,
    get broker() {
      return broker;
    },
    stopBroker: () => (brokerUp = false),
    restartBroker: () => {
      broker = newBroker();
      brokerUp = true;
    },
  };
}

const subscribeFrom = (sent: Buffer[]): Message[] => sent.map((d) => decode(d)).filter((m) => m.type === MessageType.SUBSCRIBE);

describe('BrokerSession', () => {
  it('opens a session with the handshake, then tags everything it sends', async () => {
    const t = setup();
    t.session.start();
    await t.settle(10);
    expect(t.events).toEqual(['established']);
    expect(t.broker.sessionCount).toBe(1);
    const hellos = t.sent.filter((d) => d[3] === MessageType.HELLO);
    expect(hellos.map((d) => d.length)).toEqual([256, 256]); // padded: no answer is larger (PROTOCOL.md §4.9)
    const r = await Promise.all([t.session.request({ type: MessageType.LIST, producerId: 0, requestId: 0 }), t.settle()]);
    expect(r[0]?.type).toBe(MessageType.LIST_REPLY);
    const after = t.sent.slice(hellos.length);
    expect(after.length).toBeGreaterThan(0);
    for (const d of after) expect(d.readUInt32BE(SESSION_ID_OFFSET)).toBe(t.session.session!.id);
    t.session.close();
  });

  it('retries an unanswered request with backoff, sealed afresh each time, and gives up after its attempts', async () => {
    let loseSubscribes = true;
    const t = setup({ lose: (d) => loseSubscribes && d[3] === MessageType.SUBSCRIBE });
    t.session.start();
    await t.settle(10);
    const startMs = Date.now();
    const pending = t.session.request({ type: MessageType.SUBSCRIBE, producerId: 0x1aaa99, requestId: 0 });
    let result: unknown = 'pending';
    void pending.then((r) => (result = r));
    await t.settle(30_000);
    expect(result).toBeNull();
    const tries = subscribeFrom(t.sent);
    expect(tries).toHaveLength(5);
    // Each attempt is a new datagram (a new packet number), so the broker's replay window takes it.
    expect(new Set(tries.map((m) => (m as { packetNo: number }).packetNo)).size).toBe(5);
    const sentAt = t.sent.filter((d) => d[3] === MessageType.SUBSCRIBE).length;
    expect(sentAt).toBe(5);
    expect(Date.now() - startMs).toBeGreaterThanOrEqual(250 + 500 + 1000 - 250);
    loseSubscribes = false;
    const ok = await Promise.all([t.session.request({ type: MessageType.SUBSCRIBE, producerId: 0x1aaa99, requestId: 0 }), t.settle(10)]);
    expect(ok[0]).toMatchObject({ type: MessageType.ACK, status: Status.UNKNOWN_PRODUCER }); // answered, within the session
    t.session.close();
  });

  it('says unreachable after leaseIntervals unanswered heartbeats, and reachable at the next answer', async () => {
    const t = setup();
    t.session.start();
    await t.settle(10);
    t.stopBroker();
    await t.settle(4500);
    expect(t.events).toEqual(['established', 'unreachable']);
    t.restartBroker(); // the same broker object would still know us; a new one does not
    await t.settle(3000);
    expect(t.events.slice(0, 2)).toEqual(['established', 'unreachable']);
    expect(t.events).toContain('reachable');
    // The new broker forgot the session: it said SESSION_UNKNOWN, and a new session was opened beside.
    expect(t.events.filter((e) => e === 'established')).toHaveLength(2);
    expect(t.broker.sessionCount).toBe(1);
    t.session.close();
  });

  it('drops what it cannot prove: a forged tag, another session, an untagged ACK', async () => {
    const t = setup();
    t.session.start();
    await t.settle(10);
    const id = t.session.session!.id;
    const forged = encode({ type: MessageType.ACK, producerId: 0, requestId: 1, sessionId: id, packetNo: 99, status: Status.OK, ackedType: MessageType.LIST, detail: {} });
    forged.fill(0x55, forged.length - 16);
    t.session.handleDatagram(forged);
    t.session.handleDatagram(encode({ type: MessageType.ACK, producerId: 0, requestId: 1, sessionId: id + 1, packetNo: 1, status: Status.OK, ackedType: MessageType.LIST, detail: {} }));
    t.session.handleDatagram(encode({ type: MessageType.GOODBYE, producerId: 0, requestId: 0, reason: 1 }));
    t.session.handleDatagram(Buffer.from('junk'));
    expect(t.dropped.length).toBeGreaterThanOrEqual(3);
    expect(t.events).toEqual(['established']);
    // A SESSION_UNKNOWN for a session that is not ours changes nothing.
    t.session.handleDatagram(encode({ type: MessageType.SESSION_UNKNOWN, producerId: 0, requestId: 0, unknownSessionId: id + 7 }));
    await t.settle(10);
    expect(t.events).toEqual(['established']);
    expect(t.session.session!.id).toBe(id);
    t.session.close();
  });
});
