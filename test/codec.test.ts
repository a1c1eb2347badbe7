import { describe, expect, it } from 'vitest';
import {
  checkMedia, decode, encode, encodeControl, encodeMedia, GoodbyeReason, MessageType, NoticeEvent, ProtocolError,
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
  { type: MessageType.ANNOUNCE, producerId: 0x1aaa99, requestId: 1, epoch: 42, auth: Buffer.alloc(0), metadata },
  { type: MessageType.ANNOUNCE, producerId: 2, requestId: 1, epoch: 42, auth: Buffer.alloc(36, 9), metadata: { ...metadata, audio: null } },
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
  { type: MessageType.STATS, producerId: 0, requestId: 5 },
  { type: MessageType.HELLO, producerId: 0, requestId: 6, token: Buffer.alloc(0) },
  { type: MessageType.HELLO, producerId: 0, requestId: 7, token: Buffer.alloc(20, 0xab) },
  { type: MessageType.ACK, producerId: 0, requestId: 6, status: Status.VALIDATE, ackedType: MessageType.HELLO, detail: { token: Buffer.alloc(20, 0xcd) } },
  { type: MessageType.STATS_REPLY, producerId: 0, requestId: 5, stats: { datagramsIn: 10, 'drop.FC_ERR_BAD_MAGIC': 2 } },
  { type: MessageType.NAK, producerId: 0x1aaa99, requestId: 0, epoch: 0xdeadbeef, track: Track.AUDIO, ranges: [{ first: 7, count: 1 }, { first: 0xfffffff0, count: 1024 }] },
  {
    type: MessageType.RECEIVER_REPORT, producerId: 0x1aaa99, requestId: 0, fractionLost: 13, cumulativeLost: 70, expected: 1400,
    jitterUs: 1234, framesComplete: 120, framesDropped: 1, retransmitsReceived: 65,
  },
];

describe('codec round trips', () => {
  it.each(roundTrips.map((m) => [m.type, m] as const))('type 0x%s survives encode and decode', (_t, m) => {
    expect(decode(encode(m))).toEqual(m);
  });

  it('lays out a MEDIA header exactly as PROTOCOL.md §3 says', () => {
    expect(encodeMedia(media).toString('hex')).toBe(
      '4643' + '01' + '01' + '001aaa99' + 'deadbeef' + '00' + '01' + '0001' + '0003' + '0000' +
      '00000007' + '00000002' + '000000a6' + '0000000a' + '00000004' + '61626364');
  });

  it('lays out a HEARTBEAT and its ACK exactly as PROTOCOL.md §4 says', () => {
    expect(encodeControl({ type: MessageType.HEARTBEAT, producerId: 0x1aaa99, requestId: 0, role: Role.PRODUCER }).toString('hex'))
      .toBe('4643011700' + '1aaa99' + '00000000' + '0100');
    expect(encodeControl({ type: MessageType.ACK, producerId: 0, requestId: 7, status: Status.NOT_REGISTERED, ackedType: MessageType.HEARTBEAT, detail: {} }).toString('hex'))
      .toBe('464301130000000000000007' + '04' + '17');
  });

  it('lays out a NAK exactly as PROTOCOL.md §4.10 says', () => {
    const nak = encode({ type: MessageType.NAK, producerId: 0x1aaa99, requestId: 0, epoch: 1, track: Track.VIDEO, ranges: [{ first: 5, count: 3 }] });
    expect(nak.toString('hex')).toBe('4643011c001aaa9900000000' + '00000001' + '00' + '01' + '00000005' + '0003');
  });

  it('refuses to encode beyond the size limit', () => {
    expect(() => encodeMedia({ ...media, payload: Buffer.alloc(1200) } as never, 1200)).toThrow(ProtocolError);
  });
});

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s/g, ''), 'hex');
const mediaHex = (o: { track?: string; frag?: string; frameBytes?: string; offset?: string; payload?: string }): Buffer => hex(
  '4643 01 01 001aaa99 00000001' + (o.track ?? '00') + '01' + (o.frag ?? '00000001') + '0000 00000000 00000000 00000000' +
  (o.frameBytes ?? '00000002') + (o.offset ?? '00000000') + (o.payload ?? 'aabb'));

describe('malformed datagrams', () => {
  const table: [string, Buffer, string][] = [
    ['empty', hex(''), E.TOO_SHORT],
    ['three bytes', hex('464301'), E.TOO_SHORT],
    ['foreign magic', hex('474301170000000000000000'), E.BAD_MAGIC],
    ['future version', hex('464302170000000000000000'), E.BAD_VERSION],
    ['unknown type', hex('4643017f0000000000000000'), E.UNKNOWN_TYPE],
    ['control header cut short', hex('464301170000000000'), E.TOO_SHORT],
    ['MEDIA shorter than its header', hex('464301010000000100000000'), E.TOO_SHORT],
    ['MEDIA track 2', mediaHex({ track: '02' }), E.BAD_TRACK],
    ['fragment index beyond count', mediaHex({ frag: '00030003' }), E.BAD_FRAGMENT],
    ['zero fragment count', mediaHex({ frag: '00000000' }), E.BAD_FRAGMENT],
    ['frame size that lies (too small)', mediaHex({ frameBytes: '00000001' }), E.BAD_LENGTH],
    ['last fragment short of the frame size', mediaHex({ frameBytes: '00000009' }), E.BAD_LENGTH],
    ['offset past the frame', mediaHex({ frag: '00010002', frameBytes: '00000004', offset: 'ffffffff' }), E.BAD_LENGTH],
    ['empty payload', mediaHex({ payload: '' , frameBytes: '00000000' }), E.BAD_LENGTH],
    ['absurd fragment count', mediaHex({ frag: '0000ffff' }), E.BAD_LENGTH],
    ['HEARTBEAT without role', hex('464301170000000000000000'), E.BAD_LENGTH],
    ['HEARTBEAT with unknown role', hex('4643011700000000000000000900'), E.BAD_FIELD],
    ['HEARTBEAT of the old 1-byte form', hex('46430117000000000000000001'), E.BAD_LENGTH],
    ['HELLO not padded to 64 bytes', hex('4643011b0000000000000001' + '00'.repeat(20)), E.BAD_LENGTH],
    ['HELLO with a 5-byte token', hex('4643011b0000000000000001' + '05' + '00'.repeat(51)), E.BAD_FIELD],
    ['SUBSCRIBE with trailing bytes', hex('46430111001aaa990000000100'), E.BAD_LENGTH],
    ['ACK with undefined status', hex('464301130000000000000000' + '6311'), E.BAD_FIELD],
    ['ACK for an unknown type', hex('464301130000000000000000' + '007f'), E.BAD_FIELD],
    ['ANNOUNCE with broken msgpack', hex('46430110001aaa9900000001' + '00000001' + '00' + 'de0005'), E.BAD_BODY],
    ['ANNOUNCE with a string for metadata', hex('46430110001aaa9900000001' + '00000001' + '00' + 'a161'), E.BAD_FIELD],
    ['ANNOUNCE with a 7-byte auth', hex('46430110001aaa9900000001' + '00000001' + '07' + '00'.repeat(7) + '80'), E.BAD_FIELD],
    ['ANNOUNCE cut inside its auth', hex('46430110001aaa9900000001' + '00000001' + '24' + '00'.repeat(10)), E.TOO_SHORT],
    ['LIST_REPLY that is not a map', hex('464301150000000000000000' + '90'), E.BAD_BODY],
    ['NOTICE with unknown event', hex('46430118001aaa990000000063'), E.BAD_FIELD],
    ['NAK without ranges', hex('4643011c001aaa9900000000' + '00000001' + '00' + '00'), E.BAD_FIELD],
    ['NAK with 65 ranges', hex('4643011c001aaa9900000000' + '00000001' + '00' + '41' + '000000000001'.repeat(65)), E.BAD_FIELD],
    ['NAK whose range count lies', hex('4643011c001aaa9900000000' + '00000001' + '00' + '02' + '000000000001'), E.BAD_LENGTH],
    ['NAK range of 0', hex('4643011c001aaa9900000000' + '00000001' + '00' + '01' + '000000050000'), E.BAD_FIELD],
    ['NAK range of 1025', hex('4643011c001aaa9900000000' + '00000001' + '00' + '01' + '000000050401'), E.BAD_FIELD],
    ['NAK for track 2', hex('4643011c001aaa9900000000' + '00000001' + '02' + '01' + '000000050001'), E.BAD_TRACK],
    ['RECEIVER_REPORT cut short', hex('4643011d001aaa9900000000' + '00'.repeat(25)), E.BAD_LENGTH],
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
      if (buf.length >= 4 && buf[3] === MessageType.MEDIA && buf.length >= 40) expect(checkMedia(buf)).toBe(code);
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
        if (rand() < 0.5 && buf.length >= 4) { buf[0] = 0x46; buf[1] = 0x43; buf[2] = 1; }
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
