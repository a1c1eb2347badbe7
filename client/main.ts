import readline from 'node:readline';
import { createLogger } from '../common/logger.ts';
import { runMain } from '../common/run.ts';
import { connectToBroker, followBrokerName } from '../common/socket.ts';
import { enlargeReceiveBuffer, receiveBufferDrops } from '../common/udp-drops.ts';
import { formatProducerId } from '../protocol/ids.ts';
import { FramecastClient } from './client.ts';
import { HELP_TEXT, parseCommand, type Command } from './commands.ts';
import { loadClientConfig } from './config.ts';
import { describeMetadata, formatBrokerStats, formatList, formatStatus } from './format.ts';

await runMain('client', async (main) => {
  const config = loadClientConfig(process.argv);
  const interactive = process.stdin.isTTY === true && config.durationS === null;
  // At a prompt without a log file, log lines go through the prompt-safe printer, and only
  // warnings and worse: the events themselves are printed as sentences, once.
  let printLine = (line: string): void => void process.stderr.write(line);
  const atPrompt = interactive && config.logFile === undefined && config.logFormat !== 'json';
  const log = createLogger('client', atPrompt && config.logLevel === 'info' ? 'warn' : config.logLevel, config.logFile,
    { format: config.logFormat, ...(atPrompt ? { to: (line: string) => printLine(line) } : {}) });
  main.log = log;
  const { socket, name, resolved } = await connectToBroker(config.broker.host, config.broker.port, config.localPort);
  const brokerName = `${config.broker.host}:${config.broker.port}`;
  if (!resolved) log.warn({ broker: brokerName }, 'the broker name does not resolve yet; looking it up again until it does');
  socket.on('error', (err) => log.debug({ err: err.message }, 'socket error'));
  log.info({ localPort: socket.address().port, broker: `${config.broker.host}:${config.broker.port}` }, 'socket connected to broker');
  const client = new FramecastClient({
    socket, clock: () => performance.now(),
    options: { heartbeatIntervalMs: config.heartbeatIntervalMs, leaseIntervals: config.leaseIntervals, maxDatagramBytes: config.maxDatagramBytes, recordDir: config.recordDir, latencyMs: config.latencyMs, passphrase: config.passphrase },
  });
  socket.on('message', (msg) => client.link.handleDatagram(msg));
  const startedMs = performance.now();

  let rl: readline.Interface | null = null;
  /** Prints a line without tearing the prompt the person is typing at. */
  const say = (text: string): void => {
    if (rl !== null && interactive) {
      readline.clearLine(process.stdout, 0);
      readline.cursorTo(process.stdout, 0);
      process.stdout.write(`${text}\n`);
      rl.prompt(true);
    } else {
      process.stdout.write(`${text}\n`);
    }
  };
  printLine = (line) => say(line.trimEnd());
  client.on('event', (text) => {
    log.info(text);
    say(text);
  });
  followBrokerName(client.link, name, (address) => client.emit('event', `the broker name ${config.broker.host} resolves to ${address} now: following it`));
  const rcv = enlargeReceiveBuffer(socket, config.receiveBufferBytes);
  if (rcv.short) {
    say(`warning: the system gives this client a ${Math.round(rcv.grantedBytes / 1024)} KiB receive buffer, not the ${Math.round(config.receiveBufferBytes / 1024)} KiB asked: ` +
      `big frames may overflow it (as root: sysctl -w net.core.rmem_max=${config.receiveBufferBytes})`);
  }
  const local = socket.address();
  const dropsAtStart = receiveBufferDrops(local.port, local.family as 'IPv4' | 'IPv6');
  /** Datagrams the system dropped because this client's receive buffer was full, since it started; null where it cannot tell. */
  const bufferDrops = (): number | null => {
    const now = receiveBufferDrops(local.port, local.family as 'IPv4' | 'IPv6');
    return now === null || dropsAtStart === null ? null : now - dropsAtStart;
  };
  client.on('firstFrame', (id, bytes) => say(`${formatProducerId(id)}: frames are arriving (first frame ${bytes} bytes)`));

  const subscribe = async (id: number): Promise<void> => {
    const r = await client.subscribe(id);
    const name = formatProducerId(id);
    if (r.ok) say(`subscribed to ${name}${r.metadata ? `: ${describeMetadata(r.metadata)}` : ''}${r.online === false ? ' (offline for now)' : ''}`);
    else if (r.waiting === true) say(`${name}: ${r.message} (unsubscribe ${name} to stop)`);
    else say(`cannot subscribe to ${name}: ${r.message}`);
  };

  const run = async (cmd: Command): Promise<boolean> => {
    switch (cmd.kind) {
      case 'empty': return true;
      case 'error': say(`error: ${cmd.message}`); return true;
      case 'help': say(HELP_TEXT); return true;
      case 'quit': return false;
      case 'subscribe': await subscribe(cmd.id); return true;
      case 'unsubscribe': {
        const r = await client.unsubscribe(cmd.id);
        say(r.ok ? `unsubscribed from ${formatProducerId(cmd.id)}` : `cannot unsubscribe from ${formatProducerId(cmd.id)}: ${r.message}`);
        return true;
      }
      case 'list': {
        const r = await client.list();
        say(r === null ? 'error: the broker did not answer' : formatList(r.producers, r.truncated));
        return true;
      }
      case 'stats': {
        const now = performance.now();
        const subs = client.active();
        say(subs.length === 0 ? 'no subscriptions' : subs.map((s) => formatStatus(s, now)).join('\n'));
        const drops = bufferDrops();
        say(`client: ${client.unsolicited} datagrams ignored (not subscribed), ${client.malformed} malformed` +
          (drops === null ? '' : `, ${drops} lost in its own receive buffer (${Math.round(rcv.grantedBytes / 1024)} KiB)`));
        const b = await client.brokerStats();
        say(b === null ? 'broker: did not answer' : formatBrokerStats(b));
        return true;
      }
    }
  };

  let closing = false;
  const quit = (code = 0): void => {
    if (closing) return;
    closing = true;
    const summary = {
      type: 'summary',
      durationS: Number(((performance.now() - startedMs) / 1000).toFixed(3)),
      producers: Object.fromEntries([...client.subscriptions.values()].map((s) => [formatProducerId(s.id), s.summary])),
      ignored: client.unsolicited,
      malformed: client.malformed,
      receiveBufferBytes: rcv.grantedBytes,
      receiveBufferDrops: bufferDrops(),
    };
    client.close();
    rl?.close();
    if (!interactive) process.stdout.write(`${JSON.stringify(summary)}\n`);
    else process.stdout.write('bye\n');
    setImmediate(() => socket.close(() => process.exit(code)));
  };
  process.once('SIGINT', () => quit());
  process.once('SIGTERM', () => quit());

  client.start();
  for (const id of config.subscribe) await subscribe(id);

  const statusS = config.statusIntervalS ?? (interactive ? 5 : 0);
  if (statusS > 0) {
    setInterval(() => {
      const now = performance.now();
      for (const s of client.active()) if (s.summary.frames > 0 || !s.online) say(formatStatus(s, now));
    }, statusS * 1000).unref();
  }

  if (config.durationS !== null) {
    setTimeout(() => quit(), config.durationS * 1000);
    return;
  }
  rl = readline.createInterface({ input: process.stdin, output: process.stdout, terminal: interactive, prompt: 'framecast> ' });
  if (interactive) {
    say(`connected to broker ${config.broker.host}:${config.broker.port}; type help for commands`);
    rl.prompt();
  }
  // Commands run one at a time, in the order typed or piped.
  let queue = Promise.resolve(true);
  rl.on('line', (line) => {
    queue = queue.then(async (goOn) => {
      if (!goOn || closing) return false;
      const more = await run(parseCommand(line));
      if (!more) quit();
      else if (interactive) rl?.prompt();
      return more;
    });
  });
  rl.on('SIGINT', () => quit());
  rl.on('close', () => void queue.then(() => quit()));
});
