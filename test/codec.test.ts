import { describe, expect, it } from 'vitest';
import {
  CONTROL_HEADER_BYTES, checkMedia, decode, encode, encodeControl, encodeMedia, GoodbyeReason, MessageType, NoticeEvent, ProtocolError,
  ProtocolErrorCode as E, Role, Status, Track, type Message,
} from '../protocol/index.ts';
import { xorshift32 } from './helpers/prng.ts';

const metadata = {
  title: 'Test card',
  video: { codec: 'mjpeg', width: 320, height: 240, fps: 12 },
  audio: { codec: 'pcm_mulaw', sampleRate: 8000, channels: 1 },
};

const media: Message = {
  type: MessageType.MEDIA, producerId: 0x1aaa99, epoch: 0xdeadbeef, track: Track.VIDEO, flags: 1,
  fragIndex: 1, fragCount: 3, seq: 7, frameNo: 2, timestampMs: 166, frameBytes: 10, fragOffset: 4,
  payload: Buffer.from('abcd'),
};

const roundTrips: Message[] = [
  media,
  { type: MessageType.ANNOUNCE, producerId: 0x1aaa99, requestId: 1, epoch: 42, frameKey: Buffer.alloc(32, 1), auth: Buffer.alloc(0), metadata },
  { type: MessageType.ANNOUNCE, producerId: 2, requestId: 1, epoch: 42, frameKey: Buffer.alloc(32, 1), auth: Buffer.alloc(32, 9), metadata: { ...metadata, audio: null } },
  { type: MessageType.SUBSCRIBE, producerId: 0x1aaa99, requestId: 2 },
  { type: MessageType.UNSUBSCRIBE, producerId: 0x1aaa99, requestId: 3 },
  { type: MessageType.ACK, producerId: 0x1aaa99, requestId: 2, status: Status.OK, ackedType: MessageType.SUBSCRIBE, detail: { metadata, online: true, heartbeatIntervalMs: 1000, leaseMs: 3000 } },
  { type: MessageType.ACK, producerId: 0x1aaa99, requestId: 2, status: Status.UNKNOWN_PRODUCER, ackedType: MessageType.SUBSCRIBE, detail: {} },
  { type: MessageType.ACK, producerId: 5, requestId: 9, status: Status.LIMIT_REACHED, ackedType: MessageType.SUBSCRIBE, detail: { message: 'at most 3' } },
  { type: MessageType.LIST, producerId: 0, requestId: 4 },
  { type: MessageType.LIST_REPLY, producerId: 0, requestId: 4, truncated: false, producers: [{ id: 0x1aaa99, online: true, viewers: 2, metadata }] },
  { type: MessageType.GOODBYE, producerId: 0x1aaa99, requestId: 0, reason: GoodbyeReason.NORMAL },
  { type: MessageType.GOODBYE, producerId: 0, requestId: 0, reason: GoodbyeReason.SHUTDOWN },
  { type: MessageType.HEARTBEAT, producerId: 0, requestId: 0, role: Role.CLIENT },
  { type: MessageType.NOTICE, producerId: 0x1aaa99, requestId: 0, event: NoticeEvent.PRODUCER_OFFLINE },
  { type: MessageType.NOTICE, producerId: 0x1aaa99, requestId: 0, event: NoticeEvent.PRODUCER_ONLINE, epoch: 7, frameKey: Buffer.alloc(32, 5), encrypted: true },
  { type: MessageType.ACK, producerId: 0x1aaa99, requestId: 2, status: Status.OK, ackedType: MessageType.SUBSCRIBE, detail: { metadata: { ...metadata, encrypted: true }, online: true, epoch: 9, frameKey: Buffer.alloc(32, 6) } },
  { type: MessageType.STATS, producerId: 0, requestId: 5 },
  { type: MessageType.HELLO, producerId: 0, requestId: 6, token: Buffer.alloc(0), publicKey: Buffer.alloc(32, 0x11) },
  { type: MessageType.HELLO, producerId: 0, requestId: 7, token: Buffer.alloc(20, 0xab), publicKey: Buffer.alloc(32, 0x22) },
  { type: MessageType.ACK, producerId: 0, requestId: 7, sessionId: 0x01020304, packetNo: 0, status: Status.OK, ackedType: MessageType.HELLO, detail: { publicKey: Buffer.alloc(32, 0x33), heartbeatIntervalMs: 1000, leaseMs: 3000 } },
  { type: MessageType.PATH_CHALLENGE, producerId: 0, requestId: 0, sessionId: 9, packetNo: 0, nonce: Buffer.alloc(8, 0x44) },
  { type: MessageType.PATH_RESPONSE, producerId: 0, requestId: 0, sessionId: 9, packetNo: 0, nonce: Buffer.alloc(8, 0x44) },
  { type: MessageType.SESSION_UNKNOWN, producerId: 0, requestId: 0, unknownSessionId: 0xcafe },
  { type: MessageType.ACK, producerId: 0, requestId: 6, status: Status.VALIDATE, ackedType: MessageType.HELLO, detail: { token: Buffer.alloc(20, 0xcd) } },
  { type: MessageType.STATS_REPLY, producerId: 0, requestId: 5, stats: { datagramsIn: 10, 'drop.FC_ERR_BAD_MAGIC': 2 } },
  { type: MessageType.NAK, producerId: 0x1aaa99, requestId: 0, epoch: 0xdeadbeef, track: Track.AUDIO, ranges: [{ first: 7, count: 1 }, { first: 0xfffffff0, count: 1024 }] },
  {
    type: MessageType.RECEIVER_REPORT, producerId: 0x1aaa99, requestId: 0, fractionLost: 13, cumulativeLost: 70, expected: 1400,
    jitterUs: 1234, framesComplete: 120, framesDropped: 1, retransmitsReceived: 65, audience: 2000,
  },
  { type: MessageType.EDGE, producerId: 0, requestId: 0, load: 1234, auth: Buffer.alloc(32, 0x5a), advertise: 'edge-7.framecast.example:5000' },
  { type: MessageType.EDGE, producerId: 0, requestId: 0, load: 0, auth: Buffer.alloc(0), advertise: '' },
  { type: MessageType.ACK, producerId: 0x1aaa99, requestId: 8, status: Status.REDIRECT, ackedType: MessageType.SUBSCRIBE, detail: { redirect: 'edge-7.framecast.example:5000' } },
];

describe('codec round trips', () => {
  it.each(roundTrips.map((m) => [m.type, m] as const))('type 0x%s survives encode and decode', (_t, m) => {
    // Decoded control messages carry their session ID and packet number (0: a handshake datagram).
    expect(decode(encode(m))).toEqual(m.type === MessageType.MEDIA ? m : { sessionId: 0, packetNo: 0, ...m });
  });

  it('lays out a MEDIA header exactly as PROTOCOL.md §3 says', () => {
    expect(encodeMedia({ ...media, token: Buffer.from('0102030405060708', 'hex') } as never).toString('hex')).toBe(
      '4643' + '02' + '01' + '001aaa99' + 'deadbeef' + '00' + '01' + '0001' + '0003' + '0000' +
      '00000007' + '00000002' + '000000a6' + '0000000a' + '00000004' + '0102030405060708' + '61626364');
  });

  it('lays out a HEARTBEAT and its ACK exactly as PROTOCOL.md §4 says, with room for the tag', () => {
    expect(encodeControl({ type: MessageType.HEARTBEAT, producerId: 0x1aaa99, requestId: 5, sessionId: 0xabcdef01, role: Role.PRODUCER }).toString('hex'))
      .toBe('4643021700' + '1aaa99' + 'abcdef01' + '00000000' + '00000005' + '0100000000000000' + '00'.repeat(16));
    expect(encodeControl({ type: MessageType.ACK, producerId: 0, requestId: 7, sessionId: 2, status: Status.NOT_REGISTERED, ackedType: MessageType.HEARTBEAT, detail: {} }).toString('hex'))
      .toBe('464302130000000000000002000000000000000' + '7' + '04' + '17' + '00'.repeat(16));
  });

  it('lays out a SESSION_UNKNOWN exactly as PROTOCOL.md §4.13 says: 24 bytes, no tag', () => {
    expect(encodeControl({ type: MessageType.SESSION_UNKNOWN, producerId: 0, requestId: 0, unknownSessionId: 0x0badf00d }).toString('hex'))
      .toBe('464302200000000000000000' + '00000000' + '00000000' + '0badf00d');
  });

  it('lays out a NAK exactly as PROTOCOL.md §4.10 says', () => {
    const nak = encode({ type: MessageType.NAK, producerId: 0x1aaa99, requestId: 0, sessionId: 3, epoch: 1, track: Track.VIDEO, ranges: [{ first: 5, count: 3 }] });
    expect(nak.toString('hex')).toBe('4643021c001aaa99' + '00000003' + '00000000' + '00000000' + '00000001' + '00' + '01' + '00000005' + '0003' + '00'.repeat(16));
  });

  it('reads a RECEIVER_REPORT without the audience field (26 bytes) as one viewer\'s', () => {
    const full = encode({ type: MessageType.RECEIVER_REPORT, producerId: 1, requestId: 0, fractionLost: 0, cumulativeLost: 0, expected: 9, jitterUs: 0, framesComplete: 1, framesDropped: 0, retransmitsReceived: 0, audience: 7 });
    expect(full.length).toBe(CONTROL_HEADER_BYTES + 30);
    expect(decode(full)).toMatchObject({ audience: 7, expected: 9 });
    expect(decode(full.subarray(0, CONTROL_HEADER_BYTES + 26))).toMatchObject({ audience: 1, expected: 9 });
  });

  it('refuses to encode beyond the size limit', () => {
    expect(() => encodeMedia({ ...media, payload: Buffer.alloc(1200) } as never, 1200)).toThrow(ProtocolError);
  });
});

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s/g, ''), 'hex');
const mediaHex = (o: { track?: string; frag?: string; frameBytes?: string; offset?: string; payload?: string }): Buffer => hex(
  '4643 02 01 001aaa99 00000001' + (o.track ?? '00') + '01' + (o.frag ?? '00000001') + '0000 00000000 00000000 00000000' +
  (o.frameBytes ?? '00000002') + (o.offset ?? '00000000') + '0000000000000000' + (o.payload ?? 'aabb'));
/** A handshake control datagram (session 0, packet 0): header, then body. */
const ctl = (typePid: string, requestId: string, body = ''): Buffer => hex('464302' + typePid + '00000000' + '00000000' + requestId + body);

describe('malformed datagrams', () => {
  const table: [string, Buffer, string][] = [
    ['empty', hex(''), E.TOO_SHORT],
    ['three bytes', hex('464302'), E.TOO_SHORT],
    ['foreign magic', hex('474302170000000000000000'), E.BAD_MAGIC],
    ['version 1', hex('464301170000000000000000'), E.BAD_VERSION],
    ['unknown type', ctl('7f00000000', '00000000'), E.UNKNOWN_TYPE],
    ['control header cut short', hex('464302170000000000000000000000'), E.TOO_SHORT],
    ['session datagram too short for its tag', hex('46430217' + '00000000' + '00000001' + '00000001' + '00000000' + '00'.repeat(8)), E.TOO_SHORT],
    ['MEDIA shorter than its header', hex('464302010000000100000000'), E.TOO_SHORT],
    ['MEDIA track 2', mediaHex({ track: '02' }), E.BAD_TRACK],
    ['fragment index beyond count', mediaHex({ frag: '00030003' }), E.BAD_FRAGMENT],
    ['zero fragment count', mediaHex({ frag: '00000000' }), E.BAD_FRAGMENT],
    ['frame size that lies (too small)', mediaHex({ frameBytes: '00000001' }), E.BAD_LENGTH],
    ['last fragment short of the frame size', mediaHex({ frameBytes: '00000009' }), E.BAD_LENGTH],
    ['offset past the frame', mediaHex({ frag: '00010002', frameBytes: '00000004', offset: 'ffffffff' }), E.BAD_LENGTH],
    ['empty payload', mediaHex({ payload: '' , frameBytes: '00000000' }), E.BAD_LENGTH],
    ['absurd fragment count', mediaHex({ frag: '0000ffff' }), E.BAD_LENGTH],
    ['HEARTBEAT without role', ctl('1700000000', '00000000'), E.BAD_LENGTH],
    ['HEARTBEAT with unknown role', ctl('1700000000', '00000000', '0900000000000000'), E.BAD_FIELD],
    ['HEARTBEAT of the version 1 form', ctl('1700000000', '00000000', '0100'), E.BAD_LENGTH],
    ['HELLO not padded to 256 bytes', ctl('1b00000000', '00000001', '00'.repeat(64)), E.BAD_LENGTH],
    ['HELLO with a 5-byte token', ctl('1b00000000', '00000001', '05' + '00'.repeat(235)), E.BAD_FIELD],
    ['SUBSCRIBE with trailing bytes', ctl('11001aaa99', '00000001', '00'), E.BAD_LENGTH],
    ['ACK with undefined status', ctl('1300000000', '00000000', '6311'), E.BAD_FIELD],
    ['ACK for an unknown type', ctl('1300000000', '00000000', '007f'), E.BAD_FIELD],
    ['ACK with a short publicKey', ctl('1300000000', '00000000', '001b' + '81a97075626c69634b6579c40401020304'), E.BAD_FIELD],
    ['ANNOUNCE with broken msgpack', ctl('10001aaa99', '00000001', '00000001' + '00'.repeat(32) + '00' + 'de0005'), E.BAD_BODY],
    ['ANNOUNCE with a string for metadata', ctl('10001aaa99', '00000001', '00000001' + '00'.repeat(32) + '00' + 'a161'), E.BAD_FIELD],
    ['ANNOUNCE with a 7-byte auth', ctl('10001aaa99', '00000001', '00000001' + '00'.repeat(32) + '07' + '00'.repeat(7) + '80'), E.BAD_FIELD],
    ['ANNOUNCE cut inside its auth', ctl('10001aaa99', '00000001', '00000001' + '00'.repeat(32) + '20' + '00'.repeat(10)), E.TOO_SHORT],
    ['ANNOUNCE cut inside its frame key', ctl('10001aaa99', '00000001', '00000001' + '00'.repeat(20)), E.TOO_SHORT],
    ['NOTICE PRODUCER_ONLINE without its key', ctl('18001aaa99', '00000000', '02' + '00' + '00000001'), E.BAD_LENGTH],
    ['NOTICE PRODUCER_ONLINE with undefined flags', ctl('18001aaa99', '00000000', '02' + '80' + '00000001' + '00'.repeat(32)), E.BAD_FIELD],
    ['LIST_REPLY that is not a map', ctl('1500000000', '00000000', '90'), E.BAD_BODY],
    ['NOTICE with unknown event', ctl('18001aaa99', '00000000', '63'), E.BAD_FIELD],
    ['PATH_CHALLENGE with a 4-byte nonce', ctl('1e00000000', '00000000', '01020304'), E.BAD_LENGTH],
    ['SESSION_UNKNOWN cut short', ctl('2000000000', '00000000', '0102'), E.BAD_LENGTH],
    ['NAK without ranges', ctl('1c001aaa99', '00000000', '00000001' + '00' + '00'), E.BAD_FIELD],
    ['NAK with 65 ranges', ctl('1c001aaa99', '00000000', '00000001' + '00' + '41' + '000000000001'.repeat(65)), E.BAD_FIELD],
    ['NAK whose range count lies', ctl('1c001aaa99', '00000000', '00000001' + '00' + '02' + '000000000001'), E.BAD_LENGTH],
    ['NAK range of 0', ctl('1c001aaa99', '00000000', '00000001' + '00' + '01' + '000000050000'), E.BAD_FIELD],
    ['NAK range of 1025', ctl('1c001aaa99', '00000000', '00000001' + '00' + '01' + '000000050401'), E.BAD_FIELD],
    ['NAK for track 2', ctl('1c001aaa99', '00000000', '00000001' + '02' + '01' + '000000050001'), E.BAD_TRACK],
    ['RECEIVER_REPORT cut short', ctl('1d001aaa99', '00000000', '00'.repeat(25)), E.BAD_LENGTH],
    ['EDGE with an address and no proof', ctl('2100000000', '00000000', '00000001' + '00' + Buffer.from('a:1').toString('hex')), E.BAD_FIELD],
    ['RECEIVER_REPORT with half an audience', ctl('1d001aaa99', '00000000', '00'.repeat(28)), E.BAD_LENGTH],
  ];
  it.each(table.map(([name, buf, code]) => [name, code, buf] as const))('%s gives %s', (_name, code, buf) => {
    let caught: unknown;
    try {
      decode(buf);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ProtocolError);
    expect((caught as ProtocolError).code).toBe(code);
  });

  it('checkMedia agrees with decode on every MEDIA case', () => {
    for (const [, buf, code] of table) {
      if (buf.length >= 4 && buf[3] === MessageType.MEDIA && buf.length >= 48) expect(checkMedia(buf)).toBe(code);
    }
  });
});

describe('fuzzing the decoder', () => {
  const rand = xorshift32(0x9e3779b9); // seeded: a failure can be replayed
  const seeds = roundTrips.map((m) => encode(m));

  it('throws nothing but ProtocolError for 50,000 random and mutated datagrams', () => {
    let decoded = 0;
    let refused = 0;
    for (let i = 0; i < 50_000; i++) {
      let buf: Buffer;
      if (i % 2 === 0) {
        buf = Buffer.from(seeds[i % seeds.length]);
        const flips = 1 + Math.floor(rand() * 4);
        for (let f = 0; f < flips; f++) buf[Math.floor(rand() * buf.length)] = Math.floor(rand() * 256);
        if (rand() < 0.2) buf = buf.subarray(0, Math.floor(rand() * buf.length));
      } else {
        buf = Buffer.alloc(Math.floor(rand() * 80));
        for (let j = 0; j < buf.length; j++) buf[j] = Math.floor(rand() * 256);
        if (rand() < 0.5 && buf.length >= 4) { buf[0] = 0x46; buf[1] = 0x43; buf[2] = 2; }
      }
      try {
        decode(buf);
        decoded++;
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        refused++;
      }
    }
    expect(decoded + refused).toBe(50_000);
    expect(refused).toBeGreaterThan(1000);
    expect(decoded).toBeGreaterThan(100);
  });
});

describe('sizes on the wire, as PROTOCOL.md §4.14 gives them', () => {
  const meta = { title: 'Producer 1AAA99', video: { codec: 'mjpeg', width: 320, height: 240, fps: 12 }, audio: { codec: 'pcm_mulaw', sampleRate: 8000, channels: 1 } };
  const key = Buffer.alloc(32);
  it.each(([
    ['HELLO', { type: MessageType.HELLO, producerId: 0, requestId: 1, token: Buffer.alloc(0), publicKey: key }, 256],
    ['ACK VALIDATE', { type: MessageType.ACK, producerId: 0, requestId: 1, status: Status.VALIDATE, ackedType: MessageType.HELLO, detail: { token: Buffer.alloc(20) } }, 51],
    ['ACK OK to HELLO', { type: MessageType.ACK, producerId: 0, requestId: 1, sessionId: 5, status: Status.OK, ackedType: MessageType.HELLO, detail: { publicKey: key, heartbeatIntervalMs: 1000, leaseMs: 3000 } }, 117],
    ['SESSION_UNKNOWN', { type: MessageType.SESSION_UNKNOWN, producerId: 0, requestId: 0, unknownSessionId: 5 }, 24],
    ['HEARTBEAT', { type: MessageType.HEARTBEAT, producerId: 0, requestId: 1, sessionId: 5, role: Role.CLIENT }, 44],
    ['ACK OK to HEARTBEAT', { type: MessageType.ACK, producerId: 0, requestId: 1, sessionId: 5, status: Status.OK, ackedType: MessageType.HEARTBEAT, detail: {} }, 38],
    ['SUBSCRIBE', { type: MessageType.SUBSCRIBE, producerId: 1, requestId: 1, sessionId: 5 }, 36],
    ['ACK OK to ANNOUNCE', { type: MessageType.ACK, producerId: 1, requestId: 1, sessionId: 5, status: Status.OK, ackedType: MessageType.ANNOUNCE, detail: { heartbeatIntervalMs: 1000, leaseMs: 3000 } }, 73],
    ['ACK OK to SUBSCRIBE', { type: MessageType.ACK, producerId: 1, requestId: 1, sessionId: 5, status: Status.OK, ackedType: MessageType.SUBSCRIBE, detail: { metadata: meta, online: true, epoch: 123456789, frameKey: key, heartbeatIntervalMs: 1000, leaseMs: 3000 } }, 256],
    ['ANNOUNCE', { type: MessageType.ANNOUNCE, producerId: 1, requestId: 1, sessionId: 5, epoch: 1, frameKey: key, auth: Buffer.alloc(0), metadata: meta }, 185],
    ['NOTICE PRODUCER_ONLINE', { type: MessageType.NOTICE, producerId: 1, requestId: 0, sessionId: 5, event: NoticeEvent.PRODUCER_ONLINE, epoch: 1, frameKey: key, encrypted: false }, 74],
    ['NOTICE PRODUCER_OFFLINE', { type: MessageType.NOTICE, producerId: 1, requestId: 0, sessionId: 5, event: NoticeEvent.PRODUCER_OFFLINE }, 37],
    ['PATH_CHALLENGE', { type: MessageType.PATH_CHALLENGE, producerId: 0, requestId: 0, sessionId: 5, nonce: Buffer.alloc(8) }, 44],
  ] as [string, Message, number][]).map(([name, m, bytes]) => [name, bytes, m] as const))('%s is %i bytes', (_name, bytes, m) => {
    expect(encode(m).length).toBe(bytes);
  });
});
