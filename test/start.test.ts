import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { splitMjpeg } from '../protocol/index.ts';
import { describe, expect, it } from 'vitest';
import { freeUdpPort, Proc } from './helpers/procs.ts';

/** `npm start` (scripts/start.ts) as a newcomer meets it: mistakes stop it before anything starts, in the role's own words. */
describe('npm start tells the truth', () => {
  it.each([
    [{ FRAME_RATE: 'abc' }, "producer: FRAME_RATE: frame rate must be a number in (0, 240], got 'abc'"],
    [{ HEARTBEAT_INTERVAL_MS: '0' }, "broker: HEARTBEAT_INTERVAL_MS: heartbeat interval must be an integer in 50..600000, got '0'"],
    [{ MAX_DATAGRAM_BYTES: '10' }, 'broker: MAX_DATAGRAM_BYTES: max datagram bytes must be'],
    [{ CLIENT_RECEIVE_BUFFER_BYTES: 'lots' }, "client: CLIENT_RECEIVE_BUFFER_BYTES: receive buffer must be an integer"],
  ])('%o stops it with that role\'s own line, before anything starts', async (env, line) => {
    const port = await freeUdpPort();
    const start = new Proc('scripts/start.ts', [], { ...env, BROKER_PORT: String(port) });
    // Version 1: the producers died silently and the user saw "no producers are live".
    expect((await start.exited).code).toBe(2);
    expect(start.stderrLines[0].startsWith(line)).toBe(true);
    expect(start.stdoutLines.join('\n')).not.toMatch(/Framecast: broker on/);
  });

  it('names a busy port before anything starts', async () => {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    const port = s.address().port;
    try {
      const start = new Proc('scripts/start.ts', [], { BROKER_PORT: String(port) });
      expect((await start.exited).code).toBe(1);
      expect(start.stderrLines[0]).toBe(`start: port ${port} is in use (another npm start, a broker, or Docker Compose's published port?): stop it, or set BROKER_PORT in .env`);
    } finally {
      s.close();
    }
  });

  it('starts the broker first, then the producers and the client, and stops them all when the client ends', async () => {
    const port = await freeUdpPort();
    const start = new Proc('scripts/start.ts', [], { BROKER_PORT: String(port) });
    await start.waitFor(/^Framecast: broker on 127\.0\.0\.1:\d+, producers 1AAA99, 2BBB88, 3CCC77/, 15_000);
    start.child.stdin.end('list\n');
    expect((await start.exited).code).toBe(0);
    // Nothing of it is left: the port is free again.
    const s = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(port, '127.0.0.1', () => resolve());
    });
    s.close();
  });

  it('three different streams, watched live: npm start, then view, then the page\'s API', async () => {
    const port = await freeUdpPort();
    const start = new Proc('scripts/start.ts', [], { BROKER_PORT: String(port) });
    await start.waitFor(/^Framecast: broker on 127\.0\.0\.1:\d+, producers 1AAA99, 2BBB88, 3CCC77/, 15_000);
    start.write('view');
    const [, url] = await start.waitFor(/^live view: (http:\/\/127\.0\.0\.1:\d+\/)$/);
    const samples: Record<string, Buffer[]> = {
      '1AAA99': splitMjpeg(readFileSync('samples/sample.mjpeg')),
      '2BBB88': splitMjpeg(readFileSync('samples/bars.mjpeg')),
      '3CCC77': splitMjpeg(readFileSync('samples/night.mjpeg')),
    };
    for (const id of Object.keys(samples)) {
      const r = await fetch(`${url}api/subscribe`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ id }) });
      expect(r.status).toBe(200);
    }
    for (const id of Object.keys(samples)) {
      await expect.poll(async () => (await fetch(`${url}snapshot/${id}.jpg`)).status, { timeout: 10_000 }).toBe(200);
      const snap = Buffer.from(await (await fetch(`${url}snapshot/${id}.jpg`)).arrayBuffer());
      // Each producer streams its own sample: the snapshot is a frame of it, and of no other.
      for (const [other, otherFrames] of Object.entries(samples)) expect(otherFrames.some((f) => f.equals(snap))).toBe(other === id);
    }
    start.child.stdin.end();
    expect((await start.exited).code).toBe(0);
  });
});
