import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { jpegSize, parseWav, splitMjpeg, wavHeader } from '../protocol/index.ts';
import { parseCommand } from '../client/commands.ts';
import { audioChunk } from '../producer/source.ts';

describe('sample media', () => {
  const mjpeg = readFileSync('samples/sample.mjpeg');
  it('splits the sample into its 120 JPEG frames, covering every byte', () => {
    const frames = splitMjpeg(mjpeg);
    expect(frames).toHaveLength(120);
    expect(frames.reduce((n, f) => n + f.length, 0)).toBe(mjpeg.length);
    for (const f of frames) {
      expect(f.subarray(0, 2).toString('hex')).toBe('ffd8');
      expect(f.subarray(-2).toString('hex')).toBe('ffd9');
    }
    expect(jpegSize(frames[0])).toEqual({ width: 320, height: 240 });
  });

  it('ignores junk between and after frames', () => {
    const frames = splitMjpeg(mjpeg).slice(0, 2);
    const junk = Buffer.concat([Buffer.from('garbage'), frames[0], Buffer.from([0xff, 0x00, 0x12]), frames[1], frames[1].subarray(0, 100)]);
    const out = splitMjpeg(junk);
    expect(out).toHaveLength(2);
    expect(out[1].equals(frames[1])).toBe(true);
  });

  it('reads the mu-law WAV and writes a header ffprobe-compatible in shape', () => {
    const wav = parseWav(readFileSync('samples/sample.wav'));
    expect(wav).toMatchObject({ codec: 'pcm_mulaw', sampleRate: 8000, channels: 1 });
    expect(wav.data.length).toBe(80_000);
    const h = wavHeader('pcm_mulaw', 8000, 1, wav.data.length)!;
    expect(parseWav(Buffer.concat([h, wav.data]))).toMatchObject({ codec: 'pcm_mulaw', sampleRate: 8000 });
  });

  it('chunks audio in step with video: 120 frames at 12 fps cover the 10 s track exactly', () => {
    const wav = parseWav(readFileSync('samples/sample.wav'));
    let total = 0;
    for (let i = 0; i < 120; i++) total += audioChunk(wav, i, 12).length;
    expect(total).toBe(wav.data.length);
  });
});

describe('client commands', () => {
  it.each([
    ['subscribe 1AAA99', { kind: 'subscribe', id: 0x1aaa99 }],
    ['  SUB 1aaa99 ', { kind: 'subscribe', id: 0x1aaa99 }],
    ['unsubscribe 0x2BBB88', { kind: 'unsubscribe', id: 0x2bbb88 }],
    ['list', { kind: 'list' }],
    ['', { kind: 'empty' }],
    ['quit', { kind: 'quit' }],
  ])('%s', (line, want) => expect(parseCommand(line)).toEqual(want));

  it.each([
    ['subscribe', 'usage: subscribe <producer_id>'],
    ['subscribe XYZ', "'XYZ' is not a producer ID"],
    ['subscribe 123456789', "'123456789' is not a producer ID"],
    ['subscribe 0', "'0' is not a producer ID"],
    ['dance', "unknown command 'dance'"],
    ['list all', 'list takes no arguments'],
  ])('%s is refused with a clear message', (line, msg) => {
    const c = parseCommand(line);
    expect(c.kind).toBe('error');
    expect((c as { message: string }).message).toContain(msg);
  });
});

describe('automatic producer IDs', async () => {
  const { autoProducerId, parseIdOrAuto } = await import('../common/config.ts');
  const { autoIdentity, replicaSlot } = await import('../producer/identity.ts');
  it('gives replicas distinct six-digit IDs from their names, the same one each time', () => {
    const ids = ['3f2a9c1b7e01', '3f2a9c1b7e02', 'a81c0d5e9f10', 'framecast_producer_1'].map(autoProducerId);
    expect(new Set(ids).size).toBe(4);
    for (const id of ids) expect(id.toString(16)).toMatch(/^[0-9a-f]{6}$/);
    expect(parseIdOrAuto('auto')).toBe('auto');
    expect(parseIdOrAuto(' AUTO ')).toBe('auto');
    expect(parseIdOrAuto('1AAA99')).toBe(0x1aaa99);
  });
  it('reads the Compose replica slot from the container name (v1 and v2 spellings)', () => {
    expect(replicaSlot('framecast_producer_2.framecast_default')).toEqual({ name: 'framecast_producer_2', slot: 2 });
    expect(replicaSlot('framecast-producer-12.framecast_default')).toEqual({ name: 'framecast-producer-12', slot: 12 });
    expect(replicaSlot('3f2a9c1b7e01')).toBeNull();
    expect(replicaSlot('producer_0')).toBeNull();
    expect(replicaSlot('10-244-1-5.framecast-origins.framecast.svc.cluster.local')).toBeNull();
  });
  it('takes slot N\'s ID and title from the lists, past them an ID from the name, with no name the host name', async () => {
    const ids = [0x1aaa99, 0x2bbb88];
    const names = (n: string[]) => async () => n;
    expect(await autoIdentity(ids, ['Test card', ''], names(['x_producer_1.x_default']), undefined))
      .toEqual({ id: 0x1aaa99, title: 'Test card', name: 'x_producer_1', slot: 1 });
    expect(await autoIdentity(ids, ['Test card', ''], names(['x_producer_2.x_default']), undefined))
      .toEqual({ id: 0x2bbb88, title: 'Producer 2BBB88', name: 'x_producer_2', slot: 2 });
    const third = await autoIdentity(ids, [], names(['x_producer_3.x_default']), undefined);
    expect(third).toEqual({ id: autoProducerId('x_producer_3'), title: expect.stringMatching(/^Producer [0-9A-F]{6}$/), name: 'x_producer_3', slot: 3 });
    // The same slot after a recreate: the same ID.
    expect((await autoIdentity(ids, [], names(['x_producer_3.x_default']), undefined)).id).toBe(third.id);
    expect((await autoIdentity(ids, [], names(['somehost.lan']), undefined)).slot).toBeNull();
    // A Kubernetes StatefulSet's pod index 1 (the second pod): slot 2.
    expect(await autoIdentity(ids, ['a', 'b'], names(['10-244-1-5.x']), '1')).toMatchObject({ id: 0x2bbb88, title: 'b', slot: 2 });
  });
});

describe('MjpegStream (live Motion-JPEG from a pipe)', async () => {
  const { MjpegStream, splitMjpeg } = await import('../protocol/mjpeg.ts');
  const { readFileSync } = await import('node:fs');
  const frames = splitMjpeg(readFileSync('samples/sample.mjpeg')).slice(0, 5);
  it('gives each whole frame once, however the pipe cuts the bytes, skipping what lies between frames', () => {
    const all = Buffer.concat(frames.flatMap((f) => [f, Buffer.from('noise')]));
    for (const size of [1, 7, 1000, 65_536]) {
      const s = new MjpegStream();
      const got: Buffer[] = [];
      for (let i = 0; i < all.length; i += size) got.push(...s.push(all.subarray(i, i + size)));
      expect(got.map((g) => frames.findIndex((f) => f.equals(g)))).toEqual([0, 1, 2, 3, 4]);
    }
  });
  it('throws away a frame that grows past the limit without ending, and goes on with the next', () => {
    const s = new MjpegStream(20_000);
    expect(s.push(Buffer.concat([frames[0].subarray(0, 100), Buffer.alloc(30_000, 0x11)]))).toEqual([]);
    expect(s.discarded).toBe(1);
    expect(s.push(frames[1])).toEqual([frames[1]]);
  });
});
