import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseWav } from '../protocol/index.ts';
import { spawnSync } from 'node:child_process';
import { Proc, ROOT, startBroker } from './helpers/procs.ts';
import { expectSampleFramesInOrder, summaryOf } from './helpers/recording.ts';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function startProducer(id: string, broker: string, extra: string[] = []): Proc {
  return new Proc('producer/main.ts', ['--id', id, '--broker', broker, '--rate', '12', ...extra], { LOG_LEVEL: 'info' });
}

describe('end to end, one process per role', () => {
  it('records two producers\' frames byte-identical and in order, with their audio', async () => {
    const broker = await startBroker();
    const p1 = startProducer('1AAA99', broker.address);
    const p2 = startProducer('2BBB88', broker.address);
    await Promise.all([p1.waitFor(/"msg":"announced"/), p2.waitFor(/"msg":"announced"/)]);
    const dir = mkdtempSync(join(tmpdir(), 'framecast-rec-'));
    dirs.push(dir);
    const client = new Proc('client/main.ts', ['--broker', broker.address, '--subscribe', '1AAA99', '--subscribe', '2BBB88', '--duration', '3', '--record', dir]);
    const summaries = { '1AAA99': await summaryOf(client, '1AAA99'), '2BBB88': await summaryOf(client, '2BBB88') };
    expect((await client.exited).code).toBe(0);

    for (const [id, s] of Object.entries(summaries)) {
      expect(s.frames).toBeGreaterThanOrEqual(20); // 3 s at 12 fps is 36
      // Byte-identical and in order; gaps only where frames were dropped.
      expect(expectSampleFramesInOrder(join(dir, `${id}.mjpeg`), s.frames)).toBe(s.framesDropped);
      const wav = parseWav(readFileSync(join(dir, `${id}.wav`)));
      expect(wav.codec).toBe('pcm_mulaw');
      expect(wav.data.length).toBe(s.audioBytes);
      expect(s.audioBytes).toBeGreaterThan(8000); // > 1 s of 8 kHz audio
    }
  });

  it('drives the client through stdin: list, subscribe, stats, bad input, unknown ID, unsubscribe', async () => {
    const broker = await startBroker();
    const p1 = startProducer('1AAA99', broker.address, ['--title', 'Test card']);
    await p1.waitFor(/"msg":"announced"/);
    const client = new Proc('client/main.ts', ['--broker', broker.address]);
    client.write('list');
    await client.waitFor(/1AAA99\s+online\s+0 viewers\s+'Test card' mjpeg 320x240 @ 12 fps, pcm_mulaw 8000 Hz/);
    client.write('subscribe 1AAA99');
    await client.waitFor(/^subscribed to 1AAA99: 'Test card'/);
    await client.waitFor(/^1AAA99: frames are arriving/);
    client.write('subscribe 9F9F9F');
    // Not live (yet): it stays wanted, shown as such, until the user unsubscribes (PROTOCOL.md §5.1).
    await client.waitFor(/^9F9F9F: no such producer is live yet; staying subscribed and asking again until it is \(unsubscribe 9F9F9F to stop\)$/);
    client.write('subscribe nope');
    await client.waitFor(/^error: 'nope' is not a producer ID/);
    client.write('frobnicate');
    await client.waitFor(/^error: unknown command 'frobnicate' \(type help\)$/);
    client.write('stats');
    await client.waitFor(/^1AAA99: .*frames \d+ complete/);
    await client.waitFor(/^broker: producers 1, clients 1, subscriptions 1/);
    await client.waitFor(/^9F9F9F: not live yet \(asking the broker again until it is\)$/);
    client.write('unsubscribe 9F9F9F');
    await client.waitFor(/^unsubscribed from 9F9F9F$/);

    client.write('unsubscribe 1AAA99');
    await client.waitFor(/^unsubscribed from 1AAA99$/);
    client.write('stats');
    await client.waitForNext(/^broker: producers 1, clients 1, subscriptions 0/);
    const [, before] = await client.waitFor(/^client: (\d+) datagrams ignored/);
    // The flow has stopped: over the next second (a dozen frames, ~100 datagrams) nothing more comes.
    await new Promise((r) => setTimeout(r, 1000));
    client.write('stats');
    const [, after] = await client.waitForNext(/^client: (\d+) datagrams ignored/);
    expect(Number(after)).toBe(Number(before));

    client.child.stdin.end(); // EOF quits, with a summary
    await client.waitFor(/^\{"type":"summary"/);
    expect((await client.exited).code).toBe(0);
    expect(client.stderrLines.filter((l) => /\bat .*\.ts:\d+/.test(l))).toEqual([]); // no stack traces
  });
});

describe('bad command-line input', () => {
  it.each([
    ['broker/main.ts', ['--port', '70000'], /^broker: --port: port must be an integer in 0\.\.65535, got '70000'$/],
    ['broker/main.ts', ['--frobnicate'], /^broker: unknown option '--frobnicate'$/],
    ['broker/main.ts', ['--fanout-threads', '65'], /^broker: --fanout-threads: fan-out threads must be an integer in 0\.\.64, got '65'$/],
    ['broker/main.ts', ['--fanout-threads', '2', '--connected-sockets'], /^broker: --fanout-threads sends through connected sockets of its own: leave out --connected-sockets$/],
    ['broker/main.ts', ['--max-memory-mb', '64'], /^broker: the memory ceiling \(64 MiB\) is below what the limits need: 88 MiB for 12000 sessions, .* raise it or lower those limits$/],
    ['producer/main.ts', ['--passphrase', 'short'], /^producer: --passphrase: passphrase must be 10 to 79 characters, got 5$/],
    ['producer/main.ts', ['--id', 'XYZ'], /^producer: --id: producer ID must be 1 to 8 hexadecimal digits/],
    ['producer/main.ts', ['--id', '1AAA99', '--video', 'samples/missing.mjpeg'], /^producer: cannot read video 'samples\/missing.mjpeg': ENOENT$/],
    ['producer/main.ts', ['--id', '1AAA99', '--rate', '0'], /^producer: --rate: frame rate must be a number in \(0, 240\]/],
    ['client/main.ts', ['--broker', 'nowhere'], /^client: --broker: broker address must be host:port, got 'nowhere'$/],
    ['client/main.ts', ['--subscribe', 'G1'], /^client: --subscribe: producer ID must be/],
  ])('%s %s fails fast with one line', async (script, args, re) => {
    const p = new Proc(script, args);
    const { code } = await p.exited;
    expect(code).toBe(2);
    expect(p.stderrLines[0]).toMatch(re);
    expect(p.stderrLines.join('\n')).not.toMatch(/\n\s+at /);
  });

  it('a bad .env value fails fast too, naming the variable', async () => {
    const p = new Proc('broker/main.ts', [], { BROKER_PORT: 'eighty' });
    expect((await p.exited).code).toBe(2);
    expect(p.stderrLines[0]).toBe("broker: BROKER_PORT: port must be an integer in 0..65535, got 'eighty'");
  });

  it('a flag overrides a bad environment value, an empty one means the default, and --help works whatever the environment holds', async () => {
    // Each default used to parse its variable eagerly: BROKER_PORT=eighty failed even with --port 0.
    const broker = new Proc('broker/main.ts', ['--port', '0', '--host', '127.0.0.1'], { BROKER_PORT: 'eighty' });
    await broker.waitFor(/^broker listening on 127\.0\.0\.1:\d+$/);
    // An empty variable is unset (Docker Compose hands on `${VAR:-}`): the default applies.
    const blank = new Proc('broker/main.ts', ['--port', '0', '--host', '127.0.0.1'], { LATENCY_MS: '', BROKER_MAX_MEMORY_MB: '', BROKER_OFFLINE_RETENTION_S: '' });
    await blank.waitFor(/^broker listening on 127\.0\.0\.1:\d+$/);
    const producer = new Proc('producer/main.ts', ['--id', '1AAA99', '--broker', '127.0.0.1:1', '--rate', '12'], { FRAME_RATE: 'abc', BROKER_PORT: 'eighty', LOG_LEVEL: 'info' });
    await producer.waitFor(/"fps":12,.*"msg":"sample loaded"/);
    const help = new Proc('client/main.ts', ['--help'], { LATENCY_MS: 'abc' });
    expect((await help.exited).code).toBe(0);
    expect(help.stdoutLines.join('\n')).toMatch(/--latency-ms <ms>[\s\S]*env: LATENCY_MS/);
  });
});

describe('early exits with --log-file', () => {
  it('a broker on a busy port, a second broker on the same port, and a client at the end of its piped input exit with the right code, one line, and their log written', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'framecast-logs-'));
    try {
      const first = await startBroker();
      // Version 1 crashed here with "sonic boom is not ready yet" and a stack trace, and wrote no log.
      const second = new Proc('broker/main.ts', ['--port', String(first.port), '--host', '127.0.0.1', '--log-file', join(dir, 'broker.log')]);
      expect((await second.exited).code).toBe(1);
      expect(second.stderrLines).toEqual([`broker: cannot listen on 127.0.0.1:${first.port}: EADDRINUSE (another broker, or another program, has it)`]);
      expect(readFileSync(join(dir, 'broker.log'), 'utf8')).toContain('"msg":"cannot listen on 127.0.0.1');
      const client = new Proc('client/main.ts', ['--broker', first.address, '--log-file', join(dir, 'client.log')], { LOG_LEVEL: 'info' });
      client.child.stdin.end('list\n');
      expect((await client.exited).code).toBe(0);
      expect(client.stderrLines.join('\n')).not.toMatch(/sonic boom|\n\s+at /);
      expect(readFileSync(join(dir, 'client.log'), 'utf8')).toContain('"msg":"socket connected to broker"');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('installing', () => {
  it('npm install has nothing to warn a newcomer about (allowScripts in package.json covers every install script)', () => {
    const r = spawnSync('npm', ['install', '--dry-run', '--no-audit', '--no-fund'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(0);
    expect(`${r.stdout}${r.stderr}`).not.toMatch(/npm warn/i);
  });
});

describe('passphrase encryption end to end (PROTOCOL.md §3.7)', () => {
  it('records frames byte-identical with the passphrase; says so in one line without it or with another', async () => {
    const broker = await startBroker();
    const producer = new Proc('producer/main.ts', ['--id', '3CCC77', '--broker', broker.address, '--rate', '12'], { LOG_LEVEL: 'info', PASSPHRASE: 'correct horse battery' });
    await producer.waitFor(/"msg":"announced"/);
    const dirs3 = ['right', 'wrong', 'none'].map(() => mkdtempSync(join(tmpdir(), 'framecast-enc-')));
    dirs.push(...dirs3);
    const client = (passphrase: string | null, dir: string): Proc => new Proc(
      'client/main.ts', ['--broker', broker.address, '--subscribe', '3CCC77', '--duration', '3', '--record', dir, ...(passphrase === null ? [] : ['--passphrase', passphrase])],
      { PASSPHRASE: '' },
    );
    const right = client('correct horse battery', dirs3[0]);
    const wrong = client('not the right passphrase', dirs3[1]);
    const none = client(null, dirs3[2]);
    const [r, w, n] = await Promise.all([summaryOf(right, '3CCC77'), summaryOf(wrong, '3CCC77'), summaryOf(none, '3CCC77')]);
    await Promise.all([right.exited, wrong.exited, none.exited]);
    expect(r.frames).toBeGreaterThanOrEqual(20);
    expect(r.framesUndecryptable).toBe(0);
    expect(expectSampleFramesInOrder(join(dirs3[0], '3CCC77.mjpeg'), r.frames)).toBe(r.framesDropped);
    for (const [proc, s, line] of [
      [wrong, w, /^3CCC77: frames do not decrypt with this passphrase \(wrong passphrase\?\)$/],
      [none, n, /^3CCC77 is encrypted: start the client with --passphrase \(or PASSPHRASE\) to watch it$/],
    ] as const) {
      expect(s.frames).toBe(0);
      expect(s.framesUndecryptable).toBeGreaterThanOrEqual(20);
      expect(proc.stdoutLines.filter((l) => line.test(l))).toHaveLength(1); // one line, not one per frame
      expect(proc.stderrLines.filter((l) => /\bat .*\.ts:\d+/.test(l))).toEqual([]);
    }
    expect(r.framesForged + w.framesForged + n.framesForged).toBe(0);
  });
});
