import { describe, expect, it } from 'vitest';
import { Broker, type Fanout } from '../broker/broker.ts';
import { RefusalReport } from '../broker/refusal-report.ts';
import type { BrokerOptions } from '../broker/options.ts';
import type { UpstreamLink } from '../broker/upstream.ts';
import { announceAuth, edgeAuth } from '../protocol/session-crypto.ts';
import { openSessionDirect, PeerHandshake, sealForBroker, type PeerSessionState } from '../session/peer-state.ts';
import {
  decode, encode, MediaFlag, MediaPacketizer, MessageType, NoticeEvent, Role, Status, Track, type Message,
} from '../protocol/index.ts';

/** Records what the broker sends; the broker's socket seam (STYLE: inject the socket). */
class RecordingSocket {
  readonly sent: { msg: Buffer; port: number; address: string }[] = [];
  /** What getSendQueueSize reports: a test sets it to play a full kernel send buffer. */
  queuedBytes = 0;
  getSendQueueSize(): number {
    return this.queuedBytes;
  }
  send(msg: Buffer, port: number, address: string): void {
    this.sent.push({ msg, port, address });
  }
  to(port: number): Message[] {
    return this.sent.filter((s) => s.port === port).map((s) => decode(s.msg));
  }
  clear(): void {
    this.sent.length = 0;
  }
}

const metadata = { title: 't', video: { codec: 'mjpeg', width: 2, height: 2, fps: 12 }, audio: null };
const P = { address: '10.0.0.1', port: 4000 };
const C1 = { address: '10.0.0.2', port: 5001 };
const C2 = { address: '10.0.0.3', port: 5002 };

/** Records what the broker tells its fan-out threads; the Fanout seam. */
class RecordingFanout implements Fanout {
  readonly calls: string[] = [];
  readonly published: Buffer[] = [];
  queued = 0;
  accept = true;
  #next = 1;
  open(address: string, port: number): number {
    this.calls.push(`open ${this.#next} ${address}:${port}`);
    return this.#next++;
  }
  close(peer: number): void {
    this.calls.push(`close ${peer}`);
  }
  subscribe(channel: number, peer: number): void {
    this.calls.push(`subscribe ${channel.toString(16)} ${peer}`);
  }
  unsubscribe(channel: number, peer: number): void {
    this.calls.push(`unsubscribe ${channel.toString(16)} ${peer}`);
  }
  publish(channel: number, msg: Buffer): boolean {
    this.published.push(msg);
    return this.accept;
  }
  queuedBytes(): number {
    return this.queued;
  }
}

function setup(extra: { fanout?: Fanout; options?: Partial<BrokerOptions>; upstream?: UpstreamLink } = {}) {
  let now = 1000;
  const socket = new RecordingSocket();
  const broker = new Broker({ socket, clock: () => now, options: { heartbeatIntervalMs: 1000, leaseMs: 3000, ...extra.options }, fanout: extra.fanout, upstream: extra.upstream });
  const sessions = new Map<string, PeerSessionState>();
  /** A session for an address, opened with the session layer's handshake (PROTOCOL.md §4.9) on first use. */
  const hello = (from: { address: string; port: number }): PeerSessionState => {
    const key = `${from.address}:${from.port}`;
    let s = sessions.get(key);
    if (s === undefined) {
      s = openSessionDirect((d) => broker.handleDatagram(d, from), () => socket.sent.findLast((x) => x.port === from.port)?.msg);
      sessions.set(key, s);
      // The handshake's datagrams are not what a test looks at.
      for (let i = socket.sent.length - 1; i >= 0; i--) if (socket.sent[i].port === from.port) socket.sent.splice(i, 1);
    }
    return s;
  };
  /** Feeds a control message sealed in the sender's session, or a MEDIA datagram with its media token. */
  const feed = (m: Message, from: { address: string; port: number }) => {
    if (m.type === MessageType.MEDIA) return media(encode(m), from);
    broker.handleDatagram(sealForBroker(hello(from), m), from);
  };
  const media = (d: Buffer, from = P) => {
    hello(from).keys.mediaToken.copy(d, 40);
    broker.handleDatagram(d, from);
  };
  const announce = (from = P, id = 0x1aaa99, epoch = 1) => feed({ type: MessageType.ANNOUNCE, producerId: id, requestId: 1, epoch, frameKey: Buffer.alloc(32, 1), auth: Buffer.alloc(0), metadata }, from);
  const subscribe = (from: { address: string; port: number }, id = 0x1aaa99) => feed({ type: MessageType.SUBSCRIBE, producerId: id, requestId: 2 }, from);
  const heartbeat = (from: { address: string; port: number }, role: number, id = 0) => feed({ type: MessageType.HEARTBEAT, producerId: id, requestId: 0, role: role as 1 }, from);
  return { broker, socket, feed, media, announce, hello, subscribe, heartbeat, advance: (ms: number) => { now += ms; broker.sweep(now); } };
}

const original1Flags = (sent: Buffer[]) => sent[1][13];

describe('Broker', () => {
  it('forwards the very same Buffer to every subscriber: no copy, no re-encoding', () => {
    const t = setup();
    t.announce();
    t.subscribe(C1);
    t.subscribe(C2);
    t.socket.clear();
    const [d] = new MediaPacketizer({ producerId: 0x1aaa99, epoch: 1, maxDatagramBytes: 1200 }).packetize(Track.VIDEO, Buffer.alloc(100, 1), 0, 1);
    t.media(d);
    expect(t.socket.sent.map((s) => s.port)).toEqual([C1.port, C2.port]);
    expect(t.socket.sent.every((s) => s.msg === d)).toBe(true);
  });

  it('with fan-out threads, tells them who watches what in order, hands each MEDIA over once, and sheds on their backlog', () => {
    const fanout = new RecordingFanout();
    const t = setup({ fanout, options: { fanoutMinSubscribers: 1 } });
    t.announce();
    t.subscribe(C1);
    t.subscribe(C2);
    t.feed({ type: MessageType.UNSUBSCRIBE, producerId: 0x1aaa99, requestId: 3 }, C2);
    t.socket.clear();
    const p = new MediaPacketizer({ producerId: 0x1aaa99, epoch: 1, maxDatagramBytes: 1200 });
    const [d] = p.packetize(Track.VIDEO, Buffer.alloc(100, 1), 0, 1);
    const out = t.broker.counters.datagramsOut;
    t.media(d);
    expect(fanout.published).toEqual([d]); // the very Buffer, once, whatever the number of viewers
    expect(t.socket.sent).toEqual([]); // none sent by the main thread
    expect(t.broker.counters.datagramsOut - out).toBe(1);
    // Over the send queue bound (their backlog counts): the next frame is shed whole.
    fanout.queued = t.broker.options.maxSendQueueBytes + 1;
    t.advance(2);
    const frame = p.packetize(Track.VIDEO, Buffer.alloc(3000, 2), 100, 1);
    for (const f of frame) t.media(f);
    expect(fanout.published).toHaveLength(1);
    expect(t.broker.counters.framesShed).toBe(1);
    // A datagram the threads could not take counts as shed too.
    fanout.queued = 0;
    fanout.accept = false;
    t.advance(2);
    t.media(p.packetize(Track.VIDEO, Buffer.alloc(100, 3), 200, 1)[0]);
    expect(t.broker.counters.datagramsShed).toBe(frame.length + 1);
    t.advance(3100); // C1 and C2 fall silent: their leases end
    expect(fanout.calls).toEqual([
      `open 1 ${C1.address}:${C1.port}`, 'subscribe 1aaa99 1', `open 2 ${C2.address}:${C2.port}`, 'subscribe 1aaa99 2', 'unsubscribe 1aaa99 2',
      'close 1', 'close 2',
    ]);
  });

  it('with fan-out threads, still sends itself to producers with fewer subscribers than fanoutMinSubscribers', () => {
    const fanout = new RecordingFanout();
    const t = setup({ fanout, options: { fanoutMinSubscribers: 2 } });
    t.announce();
    t.subscribe(C1);
    t.socket.clear();
    const p = new MediaPacketizer({ producerId: 0x1aaa99, epoch: 1, maxDatagramBytes: 1200 });
    const [d1] = p.packetize(Track.VIDEO, Buffer.alloc(100, 1), 0, 1);
    t.media(d1);
    expect(t.socket.sent.map((s) => [s.msg, s.port])).toEqual([[d1, C1.port]]);
    t.subscribe(C2);
    t.socket.clear();
    const [d2] = p.packetize(Track.VIDEO, Buffer.alloc(100, 2), 100, 2);
    t.media(d2);
    expect(t.socket.sent).toEqual([]);
    expect(fanout.published).toEqual([d2]);
  });

  it('answers a subscribe to an unknown ID with UNKNOWN_PRODUCER', () => {
    const t = setup();
    t.subscribe(C1, 0x123);
    const [ack] = t.socket.to(C1.port);
    expect(ack).toMatchObject({ type: MessageType.ACK, status: Status.UNKNOWN_PRODUCER, requestId: 2 });
  });

  it('replays the latest whole frame to a new subscriber at once', () => {
    const t = setup();
    t.announce();
    const pk = new MediaPacketizer({ producerId: 0x1aaa99, epoch: 1, maxDatagramBytes: 300 });
    for (const d of pk.packetize(Track.VIDEO, Buffer.alloc(1000, 7), 0, 1)) t.media(d);
    t.subscribe(C1);
    const got = t.socket.to(C1.port);
    expect(got[0]).toMatchObject({ type: MessageType.ACK, status: Status.OK });
    expect(got.slice(1).map((m) => m.type === MessageType.MEDIA && m.fragIndex)).toEqual([0, 1, 2, 3]);
    // Copies flagged RETRANSMIT: sent before the subscriber joined, so its loss count starts after them.
    expect(got.slice(1).every((m) => m.type === MessageType.MEDIA && (m.flags & MediaFlag.RETRANSMIT) !== 0)).toBe(true);
  });

  it('drops a client whose lease lapsed, and only then', () => {
    const t = setup();
    t.announce();
    t.subscribe(C1);
    t.advance(2000);
    t.heartbeat(C1, Role.CLIENT);
    t.heartbeat(P, Role.PRODUCER, 0x1aaa99);
    t.advance(2999);
    expect(t.broker.clientCount).toBe(1);
    t.heartbeat(P, Role.PRODUCER, 0x1aaa99);
    t.advance(2);
    expect(t.broker.clientCount).toBe(0);
    expect(t.broker.subscriptionCount).toBe(0);
  });

  it('marks a silent producer offline, tells its subscribers, keeps them, and resumes on return', () => {
    const t = setup();
    t.announce();
    t.subscribe(C1);
    t.socket.clear();
    t.heartbeat(C1, Role.CLIENT);
    t.advance(2500);
    t.heartbeat(C1, Role.CLIENT);
    t.advance(600); // producer unheard for 3100 ms
    expect(t.socket.to(C1.port).filter((m) => m.type === MessageType.NOTICE)).toEqual([
      expect.objectContaining({ event: NoticeEvent.PRODUCER_OFFLINE, producerId: 0x1aaa99 }),
    ]);
    expect(t.broker.subscriptionCount).toBe(1);
    t.socket.clear();
    t.announce({ address: P.address, port: 4999 }, 0x1aaa99, 2); // restarted, new port and epoch
    expect(t.socket.to(C1.port)).toEqual([expect.objectContaining({ type: MessageType.NOTICE, event: NoticeEvent.PRODUCER_ONLINE })]);
  });

  it('lists an offline producer for offlineRetentionMs, then forgets it; one somebody waits for stays', () => {
    const t = setup({ options: { offlineRetentionMs: 10_000 } });
    const listed = (): string[] => {
      t.socket.clear();
      t.feed({ type: MessageType.LIST, producerId: 0, requestId: 9 }, C2);
      const reply = t.socket.to(C2.port).find((m) => m.type === MessageType.LIST_REPLY);
      return reply?.type === MessageType.LIST_REPLY ? reply.producers.map((p) => `${p.id.toString(16)} ${p.online ? 'online' : 'offline'}`) : [];
    };
    t.announce(P, 0x1aaa99);
    t.announce(P, 0x2bbb88);
    t.subscribe(C1, 0x2bbb88);
    t.feed({ type: MessageType.GOODBYE, producerId: 0x1aaa99, requestId: 0, reason: 0 }, P);
    t.feed({ type: MessageType.GOODBYE, producerId: 0x2bbb88, requestId: 0, reason: 0 }, P);
    expect(listed()).toEqual(['1aaa99 offline', '2bbb88 offline']);
    for (let ms = 0; ms < 9_900; ms += 1000) {
      t.heartbeat(C1, Role.CLIENT);
      t.heartbeat(C2, Role.CLIENT);
      t.advance(1000);
    }
    expect(listed()).toEqual(['1aaa99 offline', '2bbb88 offline']);
    t.heartbeat(C1, Role.CLIENT);
    t.advance(200); // 10.1 s offline
    expect(listed()).toEqual(['2bbb88 offline']); // C1 still waits for it
  });

  it('renews a producer lease on MEDIA at the next sweep: never early, at most one sweep late', () => {
    const t = setup();
    t.announce();
    t.subscribe(C1);
    const pk = new MediaPacketizer({ producerId: 0x1aaa99, epoch: 1, maxDatagramBytes: 1200 });
    const offline = () => t.socket.to(C1.port).filter((m) => m.type === MessageType.NOTICE && m.event === NoticeEvent.PRODUCER_OFFLINE);
    const keepClient = () => t.heartbeat(C1, Role.CLIENT);
    t.advance(2950);
    t.media(pk.packetize(Track.VIDEO, Buffer.alloc(10, 1), 0, 1)[0]); // last datagram, at 2950 ms
    // Sweeps every 100 ms from here, as the entry point runs them.
    let sinceMedia = 0;
    while (offline().length === 0 && sinceMedia < 5000) {
      if (sinceMedia % 1000 === 0) keepClient();
      t.advance(100);
      sinceMedia += 100;
    }
    expect(offline()).toHaveLength(1);
    expect(sinceMedia).toBeGreaterThan(3000); // not before its lease
    expect(sinceMedia).toBeLessThanOrEqual(3200); // lease + one sweep to notice it + one to act
  });

  it('refuses another address announcing a live ID', () => {
    const t = setup();
    t.announce();
    t.announce({ address: '10.9.9.9', port: 1 });
    expect(t.socket.to(1)).toEqual([expect.objectContaining({ status: Status.ID_TAKEN })]);
    expect(t.broker.counters.announcesRefused).toBe(1);
  });

  it('answers a client\'s heartbeat OK in its session, and a producer heartbeat for an ID its session does not hold NOT_REGISTERED', () => {
    const t = setup();
    t.heartbeat(C1, Role.CLIENT);
    t.heartbeat(P, Role.PRODUCER, 0x1aaa99);
    expect(t.socket.to(C1.port)[0]).toMatchObject({ status: Status.OK });
    expect(t.socket.to(P.port)[0]).toMatchObject({ status: Status.NOT_REGISTERED });
  });

  it('enforces subscriptions per client', () => {
    const t = setup();
    for (const id of [1, 2, 3, 4]) t.announce({ address: P.address, port: 4000 + id }, id);
    for (const id of [1, 2, 3, 4]) t.subscribe(C1, id);
    const acks = t.socket.to(C1.port).filter((m) => m.type === MessageType.ACK);
    expect(acks.map((a) => a.type === MessageType.ACK && a.status)).toEqual([Status.OK, Status.OK, Status.OK, Status.LIMIT_REACHED]);
  });

  it('serves nothing outside a session: unsealed requests are dropped unanswered, an unknown session gets 24 bytes at most', () => {
    const t = setup();
    t.announce();
    t.socket.clear();
    const subscribe = encode({ type: MessageType.SUBSCRIBE, producerId: 0x1aaa99, requestId: 2 }); // forgeable: no session
    t.broker.handleDatagram(subscribe, C1);
    expect(t.broker.counters.drops.get('FC_DROP_UNTAGGED')).toBe(1);
    const forged = encode({ type: MessageType.SUBSCRIBE, producerId: 0x1aaa99, requestId: 2, sessionId: 0x12345678 });
    t.broker.handleDatagram(forged, C1);
    expect(t.broker.counters.drops.get('FC_DROP_UNKNOWN_SESSION')).toBe(1);
    const [d] = new MediaPacketizer({ producerId: 0x1aaa99, epoch: 1, maxDatagramBytes: 1200 }).packetize(Track.VIDEO, Buffer.alloc(100), 0, 1);
    t.media(d);
    expect(t.broker.subscriptionCount).toBe(0);
    const toC1 = t.socket.sent.filter((x) => x.port === C1.port);
    expect(toC1.map((x) => decode(x.msg).type)).toEqual([MessageType.SESSION_UNKNOWN]);
    expect(toC1[0].msg.length).toBeLessThanOrEqual(forged.length);
    t.socket.clear();
    const hello = encode(new PeerHandshake().hello(1));
    t.broker.handleDatagram(hello, C2);
    expect(t.socket.sent).toHaveLength(1);
    expect(t.socket.sent[0].msg.length).toBeLessThanOrEqual(hello.length);
  });

  it('refuses a token obtained from another address, and an expired one', () => {
    const t = setup();
    const hs = new PeerHandshake();
    t.broker.handleDatagram(encode(hs.hello(1)), C1);
    const [challenge] = t.socket.to(C1.port);
    const token = (challenge as { detail: { token: Buffer } }).detail.token;
    t.socket.clear();
    t.broker.handleDatagram(encode(hs.hello(2, token)), C2);
    expect(t.socket.to(C2.port)).toEqual([expect.objectContaining({ status: Status.VALIDATE })]);
    expect(t.broker.counters.tokensRefused).toBe(1);
    t.advance(31_000);
    t.socket.clear();
    t.broker.handleDatagram(encode(hs.hello(3, token)), C1);
    expect(t.socket.to(C1.port)).toEqual([expect.objectContaining({ status: Status.VALIDATE })]);
    expect(t.broker.sessionCount).toBe(0);
  });

  it('drops a datagram whose tag is wrong or that it has seen before, and neither renews consent', () => {
    const t = setup();
    t.announce();
    t.subscribe(C1);
    const s = t.hello(C1);
    t.advance(2000);
    const unsubscribe = sealForBroker(s, { type: MessageType.UNSUBSCRIBE, producerId: 0x1aaa99, requestId: 7 });
    const forged = Buffer.from(unsubscribe);
    forged[forged.length - 1] ^= 1;
    t.broker.handleDatagram(forged, C1);
    expect(t.broker.counters.drops.get('FC_DROP_BAD_TAG')).toBe(1);
    expect(t.broker.subscriptionCount).toBe(1);
    const heartbeat = sealForBroker(s, { type: MessageType.HEARTBEAT, producerId: 0, requestId: 8, role: Role.CLIENT });
    t.broker.handleDatagram(heartbeat, C1);
    t.advance(2000);
    t.broker.handleDatagram(heartbeat, C1); // a copy: refused, and it keeps nothing alive
    expect(t.broker.counters.drops.get('FC_DROP_REPLAY')).toBe(1);
    t.advance(1100);
    expect(t.broker.subscriptionCount).toBe(0); // consent lapsed 3 s after the last authentic datagram
    expect(t.broker.sessionCount).toBe(0); // the producer's, silent as long, lapsed too
  });

  it('moves a session to a new address only once that address echoes a challenge (PROTOCOL.md §4.12)', () => {
    const t = setup();
    t.announce();
    t.subscribe(C1);
    const s = t.hello(C1);
    const moved = { address: '10.0.0.9', port: 6001 };
    t.socket.clear();
    t.broker.handleDatagram(sealForBroker(s, { type: MessageType.HEARTBEAT, producerId: 0, requestId: 9, role: Role.CLIENT }), moved);
    expect(t.broker.counters.drops.get('FC_DROP_PATH_UNPROVEN')).toBe(1);
    const [challenge] = t.socket.to(moved.port);
    expect(challenge.type).toBe(MessageType.PATH_CHALLENGE);
    const [d] = new MediaPacketizer({ producerId: 0x1aaa99, epoch: 1, maxDatagramBytes: 1200 }).packetize(Track.VIDEO, Buffer.alloc(100), 0, 1);
    t.media(d);
    expect(t.socket.sent.filter((x) => x.port === moved.port)).toHaveLength(1); // still streams to the proven path only
    t.broker.handleDatagram(sealForBroker(s, { type: MessageType.PATH_RESPONSE, producerId: 0, requestId: 0, nonce: Buffer.alloc(8) }), moved);
    expect(t.broker.counters.drops.get('FC_DROP_PATH_UNPROVEN')).toBe(2); // the wrong nonce moves nothing
    const nonce = (challenge as { nonce: Buffer }).nonce;
    t.broker.handleDatagram(sealForBroker(s, { type: MessageType.PATH_RESPONSE, producerId: 0, requestId: 0, nonce }), moved);
    t.socket.clear();
    const [d2] = new MediaPacketizer({ producerId: 0x1aaa99, epoch: 1, maxDatagramBytes: 1200 }).packetize(Track.VIDEO, Buffer.alloc(100), 0, 1);
    d2.writeUInt32BE(1, 20); // the next seq
    t.media(d2);
    expect(t.socket.sent.map((x) => x.port)).toEqual([moved.port]);
  });

  it('forwards MEDIA only with its session\'s token, once per seq, and never passes the token on', () => {
    const t = setup();
    t.announce();
    t.subscribe(C1);
    t.socket.clear();
    const [d] = new MediaPacketizer({ producerId: 0x1aaa99, epoch: 1, maxDatagramBytes: 1200 }).packetize(Track.VIDEO, Buffer.alloc(100), 0, 1);
    t.broker.handleDatagram(Buffer.from(d), P); // no token
    expect(t.broker.counters.drops.get('FC_DROP_NOT_OWNER')).toBe(1);
    t.media(d);
    expect(t.socket.sent).toHaveLength(1);
    expect(t.socket.sent[0].msg.subarray(40, 48).equals(Buffer.alloc(8))).toBe(true);
    t.media(d); // the same seq again
    expect(t.broker.counters.drops.get('FC_DROP_REPLAY')).toBe(1);
    expect(t.socket.sent).toHaveLength(1);
  });

  it('limits control datagrams per session, bursts included, and refills with time', () => {
    const t = setup();
    t.hello(C1);
    t.hello(C2);
    for (let i = 0; i < 60; i++) t.heartbeat(C1, Role.CLIENT);
    expect(t.socket.to(C1.port)).toHaveLength(50);
    expect(t.broker.counters.drops.get('FC_DROP_RATE_LIMITED')).toBe(10);
    t.heartbeat(C2, Role.CLIENT); // another session has its own bucket
    expect(t.socket.to(C2.port)).toHaveLength(1);
    t.advance(100); // 5 tokens back
    t.socket.clear();
    for (let i = 0; i < 10; i++) t.heartbeat(C1, Role.CLIENT);
    expect(t.socket.to(C1.port)).toHaveLength(5);
  });

  describe('with a producer secret', () => {
    const secretSetup = () => {
      const t = setup({ options: { producerSecrets: new Map([[0x1aaa99, 's3cret']]) } });
      const signed = (from: { address: string; port: number }, epoch: number, secret = 's3cret'): Buffer => {
        const s = t.hello(from);
        return sealForBroker(s, { type: MessageType.ANNOUNCE, producerId: 0x1aaa99, requestId: 1, epoch, frameKey: Buffer.alloc(32, 1), auth: announceAuth(secret, s.keys.binding, 0x1aaa99), metadata });
      };
      const status = (port: number) => t.socket.to(port).filter((m) => m.type === MessageType.ACK).map((m) => m.type === MessageType.ACK && m.status);
      return { ...t, signed, status };
    };

    it('takes an announce that proves the secret in its session, and refuses unsigned and wrongly signed ones', () => {
      const t = secretSetup();
      t.feed({ type: MessageType.ANNOUNCE, producerId: 0x1aaa99, requestId: 1, epoch: 1, frameKey: Buffer.alloc(32, 1), auth: Buffer.alloc(0), metadata }, { address: 'x', port: 1 });
      t.broker.handleDatagram(t.signed({ address: 'x', port: 2 }, 1, 'guess'), { address: 'x', port: 2 });
      t.broker.handleDatagram(t.signed(P, 1), P);
      expect([1, 2].map((p) => t.status(p)[0])).toEqual([Status.AUTH_FAILED, Status.AUTH_FAILED]);
      expect(t.status(P.port)).toEqual([Status.OK]);
    });

    it('a proof is bound to its session: copied into another it fails; the restarted producer takes over at once', () => {
      const t = secretSetup();
      const original = t.signed(P, 1);
      t.broker.handleDatagram(original, P);
      // The attacker's own session, carrying the original's auth field: refused.
      const thief = { address: '10.6.6.6', port: 666 };
      const ts = t.hello(thief);
      const stolenAuth = decode(original) as { auth: Buffer };
      t.broker.handleDatagram(sealForBroker(ts, { type: MessageType.ANNOUNCE, producerId: 0x1aaa99, requestId: 1, epoch: 1, frameKey: Buffer.alloc(32, 1), auth: stolenAuth.auth, metadata }), thief);
      expect(t.status(666)).toEqual([Status.AUTH_FAILED]);
      // The original datagram sent again from another address: not of its session's path, nothing happens.
      t.broker.handleDatagram(original, thief);
      expect(t.status(666)).toEqual([Status.AUTH_FAILED]);
      const restarted = { address: P.address, port: 4001 };
      t.broker.handleDatagram(t.signed(restarted, 2), restarted); // a new session proves the secret: takes over while the old lease lives
      expect(t.status(4001)).toEqual([Status.OK]);
    });
  });

  describe('loss recovery (PROTOCOL.md §3.6)', () => {
    const stream = (t: ReturnType<typeof setup>, frames: number) => {
      const pk = new MediaPacketizer({ producerId: 0x1aaa99, epoch: 1, maxDatagramBytes: 300 });
      const sent: Buffer[] = [];
      for (let n = 0; n < frames; n++) for (const d of pk.packetize(Track.VIDEO, Buffer.alloc(500, n), n * 83, 1)) {
        t.media(d);
        sent.push(d);
      }
      return sent;
    };
    const nak = (t: ReturnType<typeof setup>, from: { address: string; port: number }, first: number, count = 1, epoch = 1) =>
      t.feed({ type: MessageType.NAK, producerId: 0x1aaa99, requestId: 0, epoch, track: Track.VIDEO, ranges: [{ first, count }] }, from);

    const naksTo = (t: ReturnType<typeof setup>, port: number) => t.socket.to(port).filter((m) => m.type === MessageType.NAK);
    const repairOf = (d: Buffer) => {
      const r = Buffer.from(d);
      r[13] |= MediaFlag.RETRANSMIT;
      return r;
    };

    it('asks the producer in its session for a gap in its seqs at once, and forwards the repair as an ordinary datagram', () => {
      const t = setup();
      t.announce();
      t.subscribe(C1);
      const pk = new MediaPacketizer({ producerId: 0x1aaa99, epoch: 1, maxDatagramBytes: 300 });
      const sent = [0, 1, 2].flatMap((n) => pk.packetize(Track.VIDEO, Buffer.alloc(500, n), n * 83, 1)); // 2 fragments a frame
      t.socket.clear();
      for (const [i, d] of sent.entries()) if (i !== 2) t.media(d); // frame 1's first fragment lost on the uplink
      expect(naksTo(t, P.port)).toEqual([expect.objectContaining({ producerId: 0x1aaa99, epoch: 1, track: Track.VIDEO, ranges: [{ first: 2, count: 1 }] })]);
      t.socket.clear();
      t.media(repairOf(sent[2]));
      const out = t.socket.to(C1.port);
      expect(out).toHaveLength(1);
      expect(out[0]).toMatchObject({ type: MessageType.MEDIA, seq: 2, flags: MediaFlag.KEYFRAME }); // the flag cleared
      expect(t.broker.counters.uplinkRepairsIn).toBe(1);
      // The late repair of frame 1 did not replace frame 2 as the picture a new subscriber gets.
      t.subscribe(C2);
      expect(t.socket.to(C2.port).filter((m) => m.type === MessageType.MEDIA).map((m) => m.type === MessageType.MEDIA && m.frameNo)).toEqual([2, 2]);
    });

    it('asks for the lost last fragment of a frame after the tail grace, retries, and gives up after half the budget', () => {
      const t = setup({ options: { latencyMs: 120 } });
      t.announce();
      t.subscribe(C1);
      const [first] = new MediaPacketizer({ producerId: 0x1aaa99, epoch: 1, maxDatagramBytes: 300 }).packetize(Track.VIDEO, Buffer.alloc(500, 1), 0, 1);
      t.socket.clear();
      t.media(first);
      t.broker.repairTick(1005);
      expect(naksTo(t, P.port)).toHaveLength(0); // its second fragment may still be on its way
      t.broker.repairTick(1011);
      expect(naksTo(t, P.port)).toEqual([expect.objectContaining({ ranges: [{ first: 1, count: 1 }] })]);
      for (let ms = 1012; ms <= 1200; ms += 5) t.broker.repairTick(ms);
      const naks = naksTo(t, P.port).length;
      expect(naks).toBeGreaterThanOrEqual(2); // retried
      expect(naks).toBeLessThanOrEqual(4); // every 20 ms until 60 ms after the gap was seen, no more
      expect(t.broker.counters.uplinkAbandoned).toBe(1);
    });

    it('sends what a subscriber NAKs again to it alone, flagged RETRANSMIT, byte for byte otherwise', () => {
      const t = setup();
      t.announce();
      t.subscribe(C1);
      t.subscribe(C2);
      const sent = stream(t, 2);
      t.socket.clear();
      nak(t, C1, 1, 2);
      expect(t.socket.to(C2.port)).toHaveLength(0);
      const again = t.socket.sent.filter((x) => x.port === C1.port);
      expect(again).toHaveLength(2);
      for (const [i, { msg }] of again.entries()) {
        const original = sent[1 + i];
        expect(msg).not.toBe(original); // a copy: the original may still be queued for others
        expect(msg[13]).toBe(original[13] | MediaFlag.RETRANSMIT);
        expect(Buffer.compare(msg.subarray(14), original.subarray(14))).toBe(0);
        expect(msg.subarray(0, 13).equals(original.subarray(0, 13))).toBe(true);
      }
      expect(original1Flags(sent)).toBe(1); // the original is untouched
      expect(t.broker.counters.retransmitsOut).toBe(2);
    });

    it('answers nothing for datagrams too old to arrive in time, of another epoch, or to a non-subscriber', () => {
      const t = setup();
      t.announce();
      t.subscribe(C1);
      stream(t, 1);
      t.hello(C2);
      t.socket.clear();
      nak(t, C2, 0); // in a session but not subscribed
      expect(t.broker.counters.drops.get('FC_DROP_NOT_SUBSCRIBED')).toBe(1);
      const snap = t.broker.statsSnapshot();
      expect(snap.datagramsIn).toBe(snap.mediaIn + snap.controlIn + snap.dropped); // counted once, as a drop
      nak(t, C1, 0, 1, 2); // another epoch
      t.advance(241); // two budgets of 120 ms
      nak(t, C1, 0);
      expect(t.socket.sent.filter((x) => x.port !== P.port)).toHaveLength(0);
      expect(t.broker.counters.retransmitsUnavailable).toBe(2);
    });

    it('limits retransmissions per source IP too: more sessions from one IP buy no more repairs', () => {
      const t = setup({ options: { maxRetransmitsPerSecondPerIp: 1500 } });
      t.announce();
      const viewers = [0, 1, 2, 3].map((i) => ({ address: '10.0.0.9', port: 6000 + i }));
      for (const v of viewers) t.subscribe(v);
      stream(t, 300);
      t.socket.clear();
      for (const v of viewers) t.feed({ type: MessageType.NAK, producerId: 0x1aaa99, requestId: 0, epoch: 1, track: Track.VIDEO, ranges: [{ first: 88, count: 512 }] }, v);
      // Four subscribers of 1000 a second each, but one IP: 1500 in all, not 2048.
      expect(t.broker.counters.retransmitsOut).toBe(1500);
      expect(t.broker.counters.retransmitsThrottled).toBe(4 * 512 - 1500);
    });

    it('lets a subscriber\'s repairs follow its stream\'s rate: half of it, above the 1000 a second floor', () => {
      const t = setup();
      t.announce();
      t.subscribe(C1);
      const pk = new MediaPacketizer({ producerId: 0x1aaa99, epoch: 1, maxDatagramBytes: 300 });
      const send = (frames: number) => {
        for (let n = 0; n < frames; n++) for (const d of pk.packetize(Track.VIDEO, Buffer.alloc(500, n), n, 1)) t.media(d);
      };
      t.advance(1);
      send(2200); // 4400 datagrams in the second the sweep measures
      t.advance(1000);
      send(1100); // 2200 more, seqs 4400-6599: the last 2048 are held
      t.socket.clear();
      const first = 6600 - 2048;
      for (let k = 0; k < 2; k++) nak(t, C1, first + k * 1024, 1024);
      // Version 1 stopped at 1000 a second whatever the stream; 4400 datagrams a second allow 2200.
      expect(t.broker.counters.retransmitsOut).toBe(2048);
      expect(t.broker.counters.retransmitsThrottled).toBe(0);
    });

    it('limits retransmissions per subscriber, and a NAK cannot make it loop beyond its history', () => {
      const t = setup({ options: { historyDatagrams: 512 } });
      t.announce();
      t.subscribe(C1);
      stream(t, 300); // 600 datagrams, more than the history's 512 slots
      t.socket.clear();
      for (let i = 0; i < 3; i++) t.feed({ type: MessageType.NAK, producerId: 0x1aaa99, requestId: 0, epoch: 1, track: Track.VIDEO, ranges: Array.from({ length: 64 }, (_, k) => ({ first: k * 1024, count: 1024 })) }, C1);
      // 512 held, asked for three times: the budget (1000 a second, bursts as many) stops it at 1000.
      expect(t.broker.counters.retransmitsOut).toBe(1000);
      // ...and no NAK looked up more datagrams than the history has slots.
      expect(t.broker.counters.retransmitsOut + t.broker.counters.retransmitsUnavailable).toBeLessThanOrEqual(3 * t.broker.options.historyDatagrams);
      expect(t.broker.counters.retransmitsThrottled).toBeGreaterThan(0);
      const before = t.broker.counters.retransmitsOut;
      t.advance(100);
      nak(t, C1, 599); // still held, and 100 tokens came back
      expect(t.broker.counters.retransmitsOut).toBe(before + 1);
    });

    it('sheds whole frames, never parts, while the send queue is over its bound, and sends no repairs then', () => {
      const t = setup();
      t.announce();
      t.subscribe(C1);
      t.socket.clear();
      const pk = new MediaPacketizer({ producerId: 0x1aaa99, epoch: 1, maxDatagramBytes: 300 });
      const frame = (n: number) => pk.packetize(Track.VIDEO, Buffer.alloc(700, n), n * 83, 1); // 3 fragments
      const [a, b, c] = [frame(0), frame(1), frame(2)];
      t.media(a[0]);
      t.socket.queuedBytes = 2 * 1024 * 1024; // the kernel stopped taking datagrams mid-frame
      for (const d of a.slice(1)) t.media(d); // frame 0 was started: it is finished
      t.advance(83); // (the queue is asked about at most once a millisecond)
      for (const d of b) t.media(d); // frame 1 starts while full: shed whole
      nak(t, C1, 0);
      t.socket.queuedBytes = 0;
      t.advance(83);
      for (const d of c) t.media(d);
      const frames = t.socket.to(C1.port).map((m) => m.type === MessageType.MEDIA && `${m.frameNo}.${m.fragIndex}`);
      expect(frames).toEqual(['0.0', '0.1', '0.2', '2.0', '2.1', '2.2']);
      expect(t.broker.counters).toMatchObject({ framesShed: 1, datagramsShed: 3, retransmitsOut: 0, retransmitsThrottled: 1 });
      const snap = t.broker.statsSnapshot();
      expect(snap.datagramsIn).toBe(snap.mediaIn + snap.controlIn + snap.dropped); // shed datagrams were received, and counted
    });

    it('keeps each subscriber\'s receiver report for stats', () => {
      const t = setup();
      t.announce();
      t.subscribe(C1);
      t.feed({
        type: MessageType.RECEIVER_REPORT, producerId: 0x1aaa99, requestId: 0, fractionLost: 64, cumulativeLost: 5, expected: 100,
        jitterUs: 2500, framesComplete: 9, framesDropped: 1, retransmitsReceived: 5,
      }, C1);
      expect(t.broker.subscriberQuality()).toEqual([{
        producer: 0x1aaa99, client: `${C1.address}:${C1.port}`, lossPct: 25, totalLossPct: 5, jitterMs: 2.5, framesComplete: 9, framesDropped: 1, retransmits: 0,
      }]);
      expect(t.broker.statsSnapshot()).toMatchObject({ subscribersReporting: 1, worstReportedLossPct: 25, worstReportedJitterMs: 2.5, reportsIn: 1 });
      t.advance(5001);
      expect(t.broker.subscriberQuality()).toEqual([]); // stale: not reporting any more
    });
  });

  it('counts malformed datagrams by reason and never throws', () => {
    const t = setup();
    t.broker.handleDatagram(Buffer.from('hello world'), C1);
    t.broker.handleDatagram(Buffer.alloc(0), C1);
    expect(t.broker.counters.drops.get('FC_ERR_BAD_MAGIC')).toBe(1);
    expect(t.broker.counters.drops.get('FC_ERR_TOO_SHORT')).toBe(1);
    expect(t.socket.sent).toHaveLength(0); // nothing is answered to garbage
  });
});

describe('Broker under overload (PROTOCOL.md §3.5)', () => {
  it('sheds a share of frames whole while busy with a backlog, raised fast and lowered slowly, and counts them', () => {
    const t = setup();
    t.announce();
    t.subscribe(C1);
    const pk = new MediaPacketizer({ producerId: 0x1aaa99, epoch: 1, maxDatagramBytes: 1200 });
    const send = (frames: number) => {
      for (let n = 0; n < frames; n++) for (const d of pk.packetize(Track.VIDEO, Buffer.alloc(100, n), n, 1)) t.media(d);
    };
    for (let i = 0; i < 5; i++) t.broker.setLoad(1, 2 * 1024 * 1024);
    expect(t.broker.shedShare).toBeCloseTo(1 - 0.8 ** 5, 5);
    send(1000);
    expect(t.broker.counters.framesShedBusy).toBeGreaterThan(640);
    expect(t.broker.counters.framesShedBusy).toBeLessThan(690);
    expect(t.broker.counters.framesShed).toBe(t.broker.counters.framesShedBusy);
    // Busy but no backlog (it keeps up): the share comes down, a twentieth at a time.
    t.broker.setLoad(1, 0);
    expect(t.broker.shedShare).toBeLessThan(1 - 0.8 ** 5);
    for (let i = 0; i < 200; i++) t.broker.setLoad(0.3, 0);
    expect(t.broker.shedShare).toBe(0);
    const shed = t.broker.counters.framesShed;
    send(100);
    expect(t.broker.counters.framesShed).toBe(shed);
  });

  it('answers no NAK and asks the producer for no repair while overloaded', () => {
    const t = setup();
    t.announce();
    t.subscribe(C1);
    const pk = new MediaPacketizer({ producerId: 0x1aaa99, epoch: 1, maxDatagramBytes: 300 });
    const sent = [0, 1].flatMap((n) => pk.packetize(Track.VIDEO, Buffer.alloc(500, n), n, 1));
    t.broker.setLoad(1, 2 * 1024 * 1024);
    t.socket.clear();
    for (const [i, d] of sent.entries()) if (i !== 1) t.media(d);
    t.feed({ type: MessageType.NAK, producerId: 0x1aaa99, requestId: 0, epoch: 1, track: Track.VIDEO, ranges: [{ first: 0, count: 1 }] }, C1);
    expect(t.socket.to(P.port).filter((m) => m.type === MessageType.NAK)).toHaveLength(0);
    expect(t.broker.counters.retransmitsOut).toBe(0);
  });
});

describe('Broker memory ceiling (PROTOCOL.md §5.3)', () => {
  /** A frame that lies: `fragCount` fragments claimed, each datagram `bytes` long (PROTOCOL.md §3.2 allows it). */
  const lyingFragments = (id: number, frameNo: number, fragCount: number, bytes: number, count: number): Buffer[] => {
    const payload = bytes - 48;
    const out: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      out.push(encode({
        type: MessageType.MEDIA, producerId: id, epoch: 1, track: Track.VIDEO, flags: 1, fragIndex: i, fragCount, seq: frameNo * 100_000 + i,
        frameNo, timestampMs: 0, frameBytes: fragCount * payload, fragOffset: i * payload, payload: Buffer.alloc(payload, 7),
      }));
    }
    return out;
  };

  it('refuses limits that do not fit the ceiling, in one line', () => {
    expect(() => new Broker({ socket: new RecordingSocket(), clock: () => 0, options: { maxSessions: 1_000_000 } }))
      .toThrow(/^the memory ceiling \(512 MiB\) is below what the limits need: 7325 MiB for 1000000 sessions, .* raise it or lower those limits$/);
  });

  it('holds one producer\'s lying frames to its cache share, and lets the largest holder go so an honest producer keeps instant join', () => {
    // A ceiling that leaves 6 MiB for caches; 4 MiB per producer.
    const probe = new Broker({ socket: new RecordingSocket(), clock: () => 0, options: { maxSessions: 100, maxProducers: 20, maxRateTrackedAddresses: 1000 } });
    const fixed = probe.memory.ceilingBytes - probe.memory.cacheBytes;
    const t = setup({ options: { maxSessions: 100, maxProducers: 20, maxRateTrackedAddresses: 1000, maxMemoryBytes: fixed + 6 * 2 ** 20 } });
    expect(t.broker.memory.cacheBytes).toBe(6 * 2 ** 20);
    const attackers = [0xa1, 0xa2, 0xa3].map((id, i) => ({ id, from: { address: `10.9.0.${i + 1}`, port: 4000 } }));
    for (const a of attackers) t.announce(a.from, a.id);
    // Each claims a 4096-fragment frame of 60 KB datagrams (240 MB) and sends 200 of them (12 MB).
    for (const a of attackers) for (const d of lyingFragments(a.id, 1, 4096, 60_000, 200)) t.media(d, a.from);
    expect(t.broker.cacheUsage.bytes).toBeLessThanOrEqual(6 * 2 ** 20);
    // The honest producer's 3-datagram frame is cached, whatever the attackers keep sending.
    t.announce(P);
    const honest = new MediaPacketizer({ producerId: 0x1aaa99, epoch: 1, maxDatagramBytes: 1200 }).packetize(Track.VIDEO, Buffer.alloc(3000, 5), 0, 1);
    for (const d of honest) t.media(d);
    for (const a of attackers) for (const d of lyingFragments(a.id, 2, 4096, 60_000, 200)) t.media(d, a.from);
    expect(t.broker.cacheUsage.bytes).toBeLessThanOrEqual(6 * 2 ** 20);
    expect(t.broker.cacheUsage.evictions).toBeGreaterThan(0);
    t.socket.clear();
    t.subscribe(C1);
    const replayed = t.socket.sent.filter((s) => s.port === C1.port && s.msg[3] === MessageType.MEDIA).map((s) => s.msg);
    // Copies flagged RETRANSMIT (sent before the subscriber joined), otherwise byte for byte.
    expect(replayed.map((d) => Buffer.concat([d.subarray(0, 13), Buffer.of(d[13] & ~MediaFlag.RETRANSMIT), d.subarray(14)]))).toEqual(honest);
    expect(t.broker.statsSnapshot()).toMatchObject({ cacheLimitBytes: 6 * 2 ** 20, memoryCeilingBytes: fixed + 6 * 2 ** 20 });
  });
});

describe('RefusalReport (PROTOCOL.md §5.4)', () => {
  it('turns any number of refusals and drops into one set of counts per look', () => {
    const t = setup();
    const report = new RefusalReport(t.broker.counters);
    t.announce(P);
    expect(report.take()).toBeNull();
    // 1000 ANNOUNCEs of a taken ID from another proven session, and garbage.
    for (let i = 0; i < 1000; i++) t.announce({ address: '10.7.0.1', port: 4000 + (i % 10) });
    for (let i = 0; i < 500; i++) t.broker.handleDatagram(Buffer.from('not framecast'), C1);
    const r = report.take();
    expect(r).not.toBeNull();
    expect(r!.byReason.REFUSED_ID_TAKEN).toBeGreaterThan(400); // the rest were over the sessions' control rate
    expect(r!.byReason.FC_ERR_BAD_MAGIC).toBe(500);
    expect(r!.total).toBe(Object.values(r!.byReason).reduce((a, b) => a + b, 0));
    expect(report.take()).toBeNull(); // nothing new, nothing to log
  });
});

describe('Broker against impossible sources', () => {
  it('drops a datagram from source port 0 (always forged) and survives a socket that throws on send', () => {
    const socket = new RecordingSocket();
    const broker = new Broker({ socket, clock: () => 1000 });
    const hello = encode({ type: MessageType.HELLO, producerId: 0, requestId: 1, token: Buffer.alloc(0), publicKey: Buffer.alloc(32, 5) });
    broker.handleDatagram(hello, { address: '127.0.0.1', port: 0 });
    expect(broker.counters.drops.get('FC_DROP_BAD_SOURCE')).toBe(1);
    expect(socket.sent).toEqual([]);
    const throwing = new Broker({ socket: { send: () => { throw new RangeError('ERR_SOCKET_BAD_PORT'); } }, clock: () => 1000 });
    expect(() => throwing.handleDatagram(hello, { address: '127.0.0.1', port: 9 })).not.toThrow();
    expect(throwing.counters.sendErrors).toBe(1);
  });
});

describe('Broker as an edge (PROTOCOL.md §5.5)', () => {
  /** An upstream that records what it is asked. */
  const recordingUpstream = () => {
    const calls: string[] = [];
    const link: UpstreamLink = {
      want: (id) => void calls.push(`want ${id.toString(16)}`),
      release: (id) => void calls.push(`release ${id.toString(16)}`),
      list: async () => ({ producers: [], truncated: false }),
      nak: () => {},
    };
    return { calls, link };
  };
  const acks = (t: ReturnType<typeof setup>, port: number) => t.socket.to(port).filter((m) => m.type === MessageType.ACK).map((m) => (m as { status: number }).status);

  it('answers a SUBSCRIBE for an ID it does not carry once upstream has, and stops asking upstream for an ID no one here waits for', () => {
    const up = recordingUpstream();
    const t = setup({ upstream: up.link });
    t.subscribe(C1, 0x1aaa99);
    expect(up.calls).toEqual(['want 1aaa99']);
    expect(acks(t, C1.port)).toEqual([]); // not yet: waiting for upstream
    t.broker.edge!.notLive(0x1aaa99);
    expect(acks(t, C1.port)).toEqual([Status.UNKNOWN_PRODUCER]);
    expect(up.calls).toEqual(['want 1aaa99', 'release 1aaa99']);
    t.subscribe(C1, 0x1aaa99); // the client asks again: so does the edge
    expect(up.calls.at(-1)).toBe('want 1aaa99');
    t.broker.edge!.accepted(0x1aaa99, { metadata, online: true, epoch: 5, frameKey: Buffer.alloc(32, 9) });
    expect(acks(t, C1.port).at(-1)).toBe(Status.OK);
    expect(t.broker.subscriptionCount).toBe(1);
  });

  it('redirects a viewer\'s SUBSCRIBE to the least-loaded edge that proved the edge secret, never an edge\'s own, and takes no address without the proof', () => {
    const t = setup({ options: { redirect: true, edgeSecret: 'edges-only' } });
    t.announce();
    const E1 = { address: '10.0.0.8', port: 7001 };
    const E2 = { address: '10.0.0.9', port: 7002 };
    const edge = (from: typeof E1, advertise: string, load: number, secret = 'edges-only') =>
      t.feed({ type: MessageType.EDGE, producerId: 0, requestId: 0, load, advertise, auth: edgeAuth(secret, t.hello(from).keys.binding, advertise) }, from);
    // A viewer claiming to be an edge without the secret: its address is not taken.
    edge(C2, '203.0.113.7:5000', 0, 'guessed');
    t.subscribe(C1);
    expect(acks(t, C1.port)).toEqual([Status.OK]);
    edge(E1, 'edge-1.example:5000', 10);
    edge(E2, 'edge-2.example:5000', 3);
    const redirects = () => t.socket.to(C1.port).filter((m) => m.type === MessageType.ACK && m.status === Status.REDIRECT).map((m) => (m as { detail: { redirect: string } }).detail.redirect);
    for (let i = 0; i < 9; i++) t.subscribe(C1);
    // Load 3 + those sent there since, against 10: E2 takes the first seven, then they alternate.
    expect(redirects()).toEqual([...Array(7).fill('edge-2.example:5000'), 'edge-1.example:5000', 'edge-2.example:5000']);
    // The edges' own SUBSCRIBEs are served, as are those of a session that said it is an edge without an address.
    t.subscribe(E1);
    expect(acks(t, E1.port)).toEqual([Status.OK]);
    t.feed({ type: MessageType.EDGE, producerId: 0, requestId: 0, load: 0, advertise: '', auth: Buffer.alloc(0) }, C2);
    t.subscribe(C2);
    expect(acks(t, C2.port).at(-1)).toBe(Status.OK);
    // An edge that left (GOODBYE) is sent no one; with none left, the broker serves the viewer itself.
    t.feed({ type: MessageType.GOODBYE, producerId: 0, requestId: 0, reason: 0 }, E2);
    t.socket.clear();
    for (let i = 0; i < 3; i++) t.subscribe(C1);
    expect(redirects()).toEqual(Array(3).fill('edge-1.example:5000'));
    t.feed({ type: MessageType.GOODBYE, producerId: 0, requestId: 0, reason: 0 }, E1);
    t.socket.clear();
    t.subscribe(C1);
    expect(redirects()).toEqual([]);
    expect(acks(t, C1.port)).toEqual([Status.OK]);
    edge({ address: E1.address, port: 7003 }, 'edge-1.example:5000', 0); // back, in a new session
    t.socket.clear();
    t.subscribe(C1);
    expect(redirects()).toEqual(['edge-1.example:5000']);
  });

  it('lets a client wait upstream for no more IDs than it may subscribe to', () => {
    const up = recordingUpstream();
    const t = setup({ upstream: up.link, options: { maxSubscriptionsPerClient: 3 } });
    for (const id of [1, 2, 3, 4]) t.subscribe(C1, id);
    expect(up.calls).toEqual(['want 1', 'want 2', 'want 3']);
    expect(acks(t, C1.port)).toEqual([Status.LIMIT_REACHED]);
  });
});

describe('Broker answers what PROTOCOL.md §4.1-4.3 say', () => {
  it('answers an ANNOUNCE that does not decode (no title) with BAD_REQUEST and its reason, so the producer stops retrying', () => {
    const t = setup();
    t.feed({ type: MessageType.ANNOUNCE, producerId: 0x1aaa99, requestId: 4, epoch: 1, frameKey: Buffer.alloc(32, 1), auth: Buffer.alloc(0), metadata: { ...metadata, title: undefined } as never }, P);
    expect(t.socket.to(P.port)).toEqual([expect.objectContaining({
      type: MessageType.ACK, requestId: 4, status: Status.BAD_REQUEST, ackedType: MessageType.ANNOUNCE, detail: { message: 'metadata.title must be a string' },
    })]);
    expect(t.broker.producerCount).toBe(0);
  });

  it('answers UNSUBSCRIBE with OK once, then NOT_SUBSCRIBED', () => {
    const t = setup();
    t.announce();
    t.subscribe(C1);
    t.socket.clear();
    t.feed({ type: MessageType.UNSUBSCRIBE, producerId: 0x1aaa99, requestId: 5 }, C1);
    t.feed({ type: MessageType.UNSUBSCRIBE, producerId: 0x1aaa99, requestId: 6 }, C1);
    expect(t.socket.to(C1.port).map((m) => m.type === MessageType.ACK && m.status)).toEqual([Status.OK, Status.NOT_SUBSCRIBED]);
  });
});
