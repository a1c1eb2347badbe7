import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { Proc, startBroker } from './helpers/procs.ts';
import { expectSampleFramesInOrder, summaryOf } from './helpers/recording.ts';

/** UDP sockets bound to `port` on this machine, from /proc/net/udp; `connected`: only those with a peer. */
function socketsOnPort(port: number, connected = false): number {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  return readFileSync('/proc/net/udp', 'utf8').split('\n').map((l) => l.trim().split(/\s+/))
    .filter((f) => f[1]?.endsWith(`:${hex}`) && (!connected || f[2] !== '00000000:0000')).length;
}

async function until(what: string, ok: () => boolean, timeoutMs: number): Promise<void> {
  for (const end = performance.now() + timeoutMs; !ok();) {
    if (performance.now() > end) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// --connected-sockets and --fanout-threads (issue 6): a socket per client on the broker's own
// port, on the main thread or on fan-out threads. Streams arrive whole through them, replies still
// come from the one port (the clients' sockets are connected to it and would drop anything else),
// what the clients send through them reaches the broker (heartbeats at 250 ms: a lost one would
// end a lease within the run), and a leaving client's socket goes.
it.each([
  ['--connected-sockets'],
  ['--fanout-threads 2 --fanout-min-subscribers 1'],
])('with %s, streams flow through a socket per client, opened on join and closed on leave', async (flags) => {
  const broker = await startBroker([...flags.split(' '), '--heartbeat-ms', '250'], { LOG_LEVEL: 'info' });
  const producer = new Proc('producer/main.ts', ['--id', '1AAA99', '--broker', broker.address, '--heartbeat-ms', '250'], { LOG_LEVEL: 'info' });
  await producer.waitFor(/"msg":"announced"/);
  // The shared socket, and the producer's own (PROTOCOL.md §3.5: its media queued apart).
  await until('the producer\'s socket', () => socketsOnPort(broker.port) === 2, 5000);
  const dir = mkdtempSync(join(tmpdir(), 'framecast-connected-'));
  try {
    const recorder = new Proc('client/main.ts', ['--broker', broker.address, '--heartbeat-ms', '250', '--subscribe', '1AAA99', '--duration', '3', '--record', dir]);
    const viewer = new Proc('client/main.ts', ['--broker', broker.address, '--heartbeat-ms', '250']);
    viewer.write('subscribe 1AAA99');
    await viewer.waitFor(/^1AAA99: frames are arriving/);
    await until('a socket per client', () => socketsOnPort(broker.port) === 4, 5000);
    expect(socketsOnPort(broker.port, true)).toBe(3); // connected, each to its client or producer
    const s = await summaryOf(recorder, '1AAA99');
    expect(s.frames).toBeGreaterThanOrEqual(20);
    expectSampleFramesInOrder(join(dir, '1AAA99.mjpeg'), s.frames);
    // The recorder quit (goodbye): its socket is closed; the viewer's stays and still streams.
    await until('the leaving client\'s socket closed', () => socketsOnPort(broker.port) === 3, 5000);
    viewer.write('stats');
    await viewer.waitForNext(/^1AAA99: 1\d\.\d fps/);
    // The broker's log may trail the socket's closing: wait for the line, then check it is the only one.
    const [left] = await broker.proc.waitFor(/^.*"msg":"client left".*$/);
    expect(left).toContain('"reason":"goodbye"');
    expect(broker.proc.stderrLines.filter((l) => l.includes('"msg":"client left"'))).toHaveLength(1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
