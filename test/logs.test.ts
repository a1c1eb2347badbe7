import { spawn, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { statsLine } from '../broker/stats-line.ts';
import { prettyLine } from '../common/logger.ts';
import { Proc, ROOT, startBroker } from './helpers/procs.ts';

describe('logs people can read', () => {
  it('turns a pino line into one short line: time, level, role, message, then key=value', () => {
    const t = new Date(2026, 11, 2, 21, 59, 48, 123).getTime();
    expect(prettyLine(JSON.stringify({ level: 30, time: t, role: 'broker', name: 'broker', msg: 'broker listening', host: '127.0.0.1', port: 5000 })))
      .toBe('21:59:48.123 INFO  broker   broker listening host=127.0.0.1 port=5000\n');
    expect(prettyLine(JSON.stringify({ level: 40, time: t, role: 'client', msg: 'odd', why: 'two words', n: [1] })))
      .toBe('21:59:48.123 WARN  client   odd why="two words" n=[1]\n');
    expect(prettyLine('not json')).toBe('not json\n');
  });

  it('gives the stats line as rates with units, the levels, and only what changed since the last line', () => {
    const before = { datagramsIn: 1000, bytesIn: 1_000_000, datagramsOut: 5000, bytesOut: 5_000_000, naksIn: 4, framesShed: 0, producers: 2, clients: 5 };
    const after = { datagramsIn: 3000, bytesIn: 3_500_000, datagramsOut: 15_000, bytesOut: 17_500_000, naksIn: 4, framesShed: 3, producers: 2, clients: 6 };
    expect(statsLine(before, after, 10_000)).toEqual({
      in: '200 datagrams/s, 2.00 Mbit/s', out: '1000 datagrams/s, 10.00 Mbit/s', producers: 2, clients: 6, changes: { framesShed: 3 },
    });
  });

  it('a broker at --log-format pretty writes readable lines, its stats line with rates and units', async () => {
    const broker = await startBroker(['--log-format', 'pretty', '--stats-interval-s', '1'], { LOG_LEVEL: 'info' });
    const [line] = await broker.proc.waitFor(/^\d\d:\d\d:\d\d\.\d{3} INFO {2}broker {3}stats .*$/, 5000);
    expect(line).toMatch(/in="\d+ datagrams\/s, \d+\.\d\d Mbit\/s" out="\d+ datagrams\/s, \d+\.\d\d Mbit\/s"/);
    expect(broker.proc.stderrLines.filter((l) => l.startsWith('{'))).toEqual([]);
  });

  const hasScript = spawnSync('script', ['--version']).status === 0;
  it.skipIf(!hasScript)(`the client at a terminal prints each event once and no raw log line${hasScript ? '' : ' (skipped: util-linux script is not installed)'}`, async () => {
    const broker = await startBroker();
    // script gives the client a terminal of its own (a pseudo-terminal), as a person's would be.
    const cmd = `${process.execPath} --import tsx client/main.ts --broker ${broker.address} --subscribe 1AAA99 --status-interval 0`;
    const child = spawn('script', ['-qfc', cmd, '/dev/null'], { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'info' }, detached: true });
    let screen = '';
    try {
      const seen = (re: RegExp): Promise<void> => new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${re} not on the client's screen within 15 s:\n${screen}`)), 15_000);
        const look = (): void => {
          if (!re.test(screen)) return;
          clearTimeout(timer);
          child.stdout.off('data', look);
          resolve();
        };
        child.stdout.on('data', look);
      });
      child.stdout.on('data', (b: Buffer) => {
        screen += b.toString();
      });
      // Subscribed before the producer is live: when it comes, the client tells an event.
      await seen(/no such producer is live yet/);
      new Proc('producer/main.ts', ['--id', '1AAA99', '--broker', broker.address]);
      await seen(/frames are arriving/);
      child.stdin.write('quit\n');
      await new Promise((r) => child.once('exit', r));
    } finally {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    // Version 1 printed the event as a raw JSON log line over the prompt, then again as a sentence.
    expect(screen).not.toMatch(/\{"level"/);
    expect(screen.match(/subscribed to 1AAA99 \(it is live now\)/g)).toHaveLength(1);
  });
});
