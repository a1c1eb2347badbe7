import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { splitMjpeg } from '../protocol/index.ts';
import { Proc, startBroker } from './helpers/procs.ts';
import { SAMPLE_FRAMES, summaryOf } from './helpers/recording.ts';
import { until } from './helpers/until.ts';

const ffmpeg = spawnSync('ffmpeg', ['-version'], { stdio: 'ignore' }).status === 0 && spawnSync('ffprobe', ['-version'], { stdio: 'ignore' }).status === 0;
const noFfmpeg = ffmpeg ? '' : ' (skipped: ffmpeg and ffprobe are not installed; Debian: ffmpeg)';
const dir = mkdtempSync(join(tmpdir(), 'framecast-view-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A part of a multipart/x-mixed-replace stream: its headers and its body. */
interface Part {
  readonly headers: Record<string, string>;
  readonly body: Buffer;
}

/** Reads `n` parts of a Motion-JPEG stream over HTTP, as a camera viewer would, then hangs up. */
function readParts(url: string, n: number): Promise<{ contentType: string; parts: Part[] }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, (res) => {
      const contentType = res.headers['content-type'] ?? '';
      const boundary = /boundary=([^;]+)/.exec(contentType)?.[1];
      if (res.statusCode !== 200 || boundary === undefined) return reject(new Error(`${res.statusCode} ${contentType}`));
      let buf = Buffer.alloc(0);
      const parts: Part[] = [];
      res.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        for (;;) {
          const headEnd = buf.indexOf('\r\n\r\n');
          if (headEnd < 0) return;
          const lines = buf.subarray(0, headEnd).toString('latin1').split('\r\n');
          if (lines[0] !== `--${boundary}`) return reject(new Error(`no boundary: ${lines[0]}`));
          const headers = Object.fromEntries(lines.slice(1).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
          const length = Number(headers['content-length']);
          if (buf.length < headEnd + 4 + length + 2) return;
          parts.push({ headers, body: buf.subarray(headEnd + 4, headEnd + 4 + length) });
          buf = buf.subarray(headEnd + 4 + length + 2);
          if (parts.length === n) {
            req.destroy();
            return resolve({ contentType, parts });
          }
        }
      });
    });
    req.on('error', reject);
  });
}

async function get(url: string): Promise<{ status: number; type: string; body: Buffer }> {
  const r = await fetch(url);
  return { status: r.status, type: r.headers.get('content-type') ?? '', body: Buffer.from(await r.arrayBuffer()) };
}

/** A client with the live view on a free port; resolves with the page's URL. */
async function viewingClient(brokerAddress: string, ids: string[], extra: string[] = []): Promise<{ proc: Proc; url: string }> {
  const proc = new Proc('client/main.ts', ['--broker', brokerAddress, ...ids.flatMap((id) => ['--subscribe', id]), '--http', '127.0.0.1:0', ...extra]);
  const [, url] = await proc.waitFor(/^live view: (http:\/\/127\.0\.0\.1:\d+\/)$/);
  for (const id of ids) await proc.waitFor(new RegExp(`^${id}: frames are arriving`));
  return { proc, url };
}

const stats = async (url: string) => (await (await fetch(`${url}api/stats`)).json()) as {
  subscriptions: { id: string; frames: number; fps: number }[];
  view: { viewers: number; skipped: number; maxBufferedBytes: number };
};


describe('the live view over HTTP', () => {
  it('streams the producer\'s frames byte-identical and in order as Motion-JPEG, serves the latest as a snapshot, and says 404 in one line for what is not there', async () => {
    const broker = await startBroker();
    new Proc('producer/main.ts', ['--id', '1AAA99', '--broker', broker.address]);
    const { url } = await viewingClient(broker.address, ['1AAA99']);

    const { contentType, parts } = await readParts(`${url}stream/1AAA99.mjpg`, 36);
    expect(contentType).toMatch(/^multipart\/x-mixed-replace; boundary=/);
    const idx = parts.map((p) => SAMPLE_FRAMES.findIndex((f) => f.equals(p.body)));
    expect(idx.every((i) => i >= 0)).toBe(true);
    // Each part is the next sample frame (the looping sample), with its own headers.
    for (let k = 1; k < idx.length; k++) expect(idx[k]).toBe((idx[k - 1] + 1) % SAMPLE_FRAMES.length);
    for (const p of parts) {
      expect(p.headers['content-type']).toBe('image/jpeg');
      expect(Number(p.headers['content-length'])).toBe(p.body.length);
      expect(p.headers['x-timestamp']).toMatch(/^\d+$/);
    }
    const ts = parts.map((p) => Number(p.headers['x-timestamp']));
    for (let k = 1; k < ts.length; k++) expect(ts[k] - ts[k - 1]).toBeCloseTo(1000 / 12, -1);

    const snap = await get(`${url}snapshot/1AAA99.jpg`);
    expect(snap.status).toBe(200);
    expect(snap.type).toBe('image/jpeg');
    expect(SAMPLE_FRAMES.some((f) => f.equals(snap.body))).toBe(true);

    // The sound, live: a WAV header (mu-law, 8 kHz, as the sample) and then the chunks as they come.
    const wav = await new Promise<Buffer>((resolve, reject) => http.get(`${url}audio/1AAA99.wav`, (res) => {
      let got = Buffer.alloc(0);
      res.on('data', (b: Buffer) => {
        got = Buffer.concat([got, b]);
        if (got.length >= 44 + 2000) {
          res.destroy();
          resolve(got);
        }
      });
    }).on('error', reject));
    expect(wav.subarray(0, 4).toString('latin1')).toBe('RIFF');
    expect(wav.readUInt16LE(20)).toBe(7); // mu-law
    expect(wav.readUInt32LE(24)).toBe(8000);

    for (const path of ['stream/2BBB88.mjpg', 'snapshot/ZZ.jpg', 'nothing-here']) {
      const r = await get(`${url}${path}`);
      expect(r.status).toBe(404);
      expect(r.type).toMatch(/^text\/plain/);
      expect(r.body.toString().trimEnd().split('\n')).toHaveLength(1);
    }
    // Only this machine's names: a page elsewhere cannot reach it by DNS rebinding.
    const rebound = await new Promise<number>((resolve) => http.get(`${url}api/stats`, { headers: { Host: 'attacker.example' } }, (r) => resolve(r.statusCode ?? 0)));
    expect(rebound).toBe(403);
    // Subscribing from a page takes JSON only: a cross-site form cannot post it.
    expect((await fetch(`${url}api/subscribe`, { method: 'POST', body: 'id=2BBB88', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } })).status).toBe(415);
  });

  it('a viewer that stops reading skips whole frames and never makes the client hold more than a frame for it; a closed one is freed', async () => {
    // Frames of about 200 kB at 24 fps (the sample's, padded with an APP15 segment), so that a
    // reader that never reads fills the TCP buffers within a second or two.
    const big = Buffer.concat(SAMPLE_FRAMES.map((f) => {
      const pad = Buffer.alloc(4 + 60_000);
      pad.writeUInt16BE(0xffef, 0);
      pad.writeUInt16BE(60_002, 2);
      return Buffer.concat([f.subarray(0, 2), pad, pad, pad, f.subarray(2)]);
    }));
    writeFileSync(join(dir, 'big.mjpeg'), big);
    const frameBytes = Math.max(...splitMjpeg(big).map((f) => f.length));
    const broker = await startBroker();
    new Proc('producer/main.ts', ['--id', '1AAA99', '--broker', broker.address, '--video', join(dir, 'big.mjpeg'), '--no-audio', '--rate', '24']);
    const { url } = await viewingClient(broker.address, ['1AAA99']);

    const port = Number(new URL(url).port);
    const stalled = net.connect(port, '127.0.0.1');
    stalled.write('GET /stream/1AAA99.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    stalled.pause(); // and never read
    const skipping = await until('the stalled viewer skips frames', async () => {
      const s = await stats(url);
      return s.view.viewers === 1 && s.view.skipped > 24 ? s : null;
    });
    // Meanwhile another viewer still gets every frame.
    const { parts } = await readParts(`${url}stream/1AAA99.mjpg`, 12);
    expect(parts).toHaveLength(12);
    const later = await stats(url);
    expect(later.view.skipped).toBeGreaterThan(skipping.view.skipped);
    // What it holds for the stalled one: at most the frame under way and the stream's own buffer.
    expect(later.view.maxBufferedBytes).toBeLessThanOrEqual(frameBytes + 64 * 1024);
    process.stdout.write(`figure: a viewer that never reads: ${later.view.skipped} frames skipped, at most ${later.view.maxBufferedBytes} bytes held for it (a frame is ${frameBytes})\n`);

    stalled.destroy();
    await until('the closed viewer is freed', async () => (await stats(url)).view.viewers === 0);
  });

  it('--stdout writes the stream\'s JPEG frames, byte-identical, for ffmpeg to read from a pipe' + noFfmpeg, async () => {
    const broker = await startBroker();
    new Proc('producer/main.ts', ['--id', '1AAA99', '--broker', broker.address]);
    const client = new Proc('client/main.ts', ['--broker', broker.address, '--subscribe', '1AAA99', '--stdout', '1AAA99', '--duration', '4'], {}, [], { rawStdout: true });
    const chunks = client.stdoutBytes;
    // With --stdout the text, the JSON summary too, goes to standard error.
    const s = await summaryOf(client, '1AAA99');
    const [line] = await client.waitFor(/^\{"type":"summary".*\}$/);
    expect((JSON.parse(line) as { stdoutSkipped: number }).stdoutSkipped).toBe(0); // a pipe that keeps up loses nothing
    await client.exited;
    const frames = splitMjpeg(Buffer.concat(chunks));
    expect(frames.length).toBe(s.frames);
    expect(frames.every((f) => SAMPLE_FRAMES.some((x) => x.equals(f)))).toBe(true);
    if (!ffmpeg) return;
    // The README's pipe, with ffmpeg in place of ffplay: every frame decodes, without an error.
    const decoded = spawnSync('ffmpeg', ['-hide_banner', '-v', 'error', '-f', 'mjpeg', '-i', '-', '-f', 'null', '-'], { input: Buffer.concat(chunks), encoding: 'latin1' });
    expect(decoded.status).toBe(0);
    expect(decoded.stderr).toBe('');
    const counted = spawnSync('ffprobe', ['-v', 'error', '-count_frames', '-show_entries', 'stream=nb_read_frames', '-of', 'csv=p=0', '-f', 'mjpeg', '-'], { input: Buffer.concat(chunks), encoding: 'latin1' });
    expect(Number(counted.stdout.trim())).toBe(frames.length);
  });

  it('--video - sends each Motion-JPEG frame from standard input as it arrives, byte-identical, and ends with the input', async () => {
    const broker = await startBroker();
    const client = new Proc('client/main.ts', ['--broker', broker.address, '--subscribe', '4DDD66', '--record', join(dir, 'live'), '--duration', '30'], { LOG_LEVEL: 'info' });
    await client.waitFor(/4DDD66: no such producer is live yet/);
    const producer = new Proc('producer/main.ts', ['--id', '4DDD66', '--broker', broker.address, '--video', '-', '--log-level', 'info']);
    // Written as a camera would: 48 frames at 12 fps, each in two pieces that split it.
    const stdin = producer.child.stdin;
    for (const f of SAMPLE_FRAMES.slice(0, 48)) {
      stdin.write(f.subarray(0, 1000));
      await new Promise((r) => setTimeout(r, 5));
      stdin.write(f.subarray(1000));
      await new Promise((r) => setTimeout(r, 78));
    }
    stdin.end();
    await producer.waitFor(/"msg":"stopped"/, 20_000);
    expect(producer.stderrLines.join('\n')).toMatch(/"why":"end of input"/);
    await client.waitFor(/producer 4DDD66 ended its stream/);
    await client.kill('SIGTERM');
    const got = splitMjpeg(readFileSync(join(dir, 'live', '4DDD66.mjpeg')));
    // The first frame describes the stream; frames before the broker accepted the producer had
    // nowhere to go. The rest arrive whole, in order, byte for byte.
    expect(got.length).toBeGreaterThan(30);
    const first = SAMPLE_FRAMES.findIndex((f) => f.equals(got[0]));
    expect(first).toBeGreaterThan(0);
    got.forEach((f, k) => expect(f.equals(SAMPLE_FRAMES[first + k])).toBe(true));
  });

  it.skipIf(!ffmpeg)('--record also muxes picture and sound into one Matroska file, both streams of the same length' + noFfmpeg, async () => {
    const broker = await startBroker();
    new Proc('producer/main.ts', ['--id', '1AAA99', '--broker', broker.address]);
    const client = new Proc('client/main.ts', ['--broker', broker.address, '--subscribe', '1AAA99', '--record', join(dir, 'mux'), '--duration', '5']);
    await client.waitFor(/^recorded 1AAA99 with picture and sound in sync: (.*\.mkv)$/, 20_000);
    const probe = spawnSync('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_type,codec_name:stream_tags=DURATION', '-of', 'json', join(dir, 'mux', '1AAA99.mkv')], { encoding: 'utf8' });
    const streams = (JSON.parse(probe.stdout) as { streams: { codec_type: string; codec_name: string; tags: { DURATION: string } }[] }).streams;
    expect(streams.map((s) => `${s.codec_type}/${s.codec_name}`).sort()).toEqual(['audio/pcm_s16le', 'video/mjpeg']);
    const seconds = (d: string) => d.split(':').reduce((t, x) => t * 60 + Number(x), 0);
    const [video, audio] = ['video', 'audio'].map((t) => seconds(streams.find((s) => s.codec_type === t)!.tags.DURATION));
    expect(video).toBeGreaterThan(4);
    expect(Math.abs(video - audio)).toBeLessThan(0.2);
    process.stdout.write(`figure: muxed recording: video ${video.toFixed(3)} s, audio ${audio.toFixed(3)} s\n`);
  });
});

