import readline from 'node:readline';
import { createLogger } from '../common/logger.ts';
import { runMain } from '../common/run.ts';
import { connectToBroker, followBrokerName } from '../common/socket.ts';
import { enlargeReceiveBuffer, receiveBufferDrops } from '../common/udp-drops.ts';
import { formatProducerId } from '../protocol/ids.ts';
import { FramecastClient } from './client.ts';
import { HELP_TEXT, parseCommand, type Command } from './commands.ts';
import { loadClientConfig } from './config.ts';
import { ConfigError, parseEndpoint } from '../common/config.ts';
import { HttpView } from './sinks/http-view.ts';
import { recordTo } from './sinks/recorder.ts';
import { pipeFrames } from './sinks/stdout.ts';
import { showOnScreen } from './sinks/screen.ts';
import { describeMetadata, formatBrokerStats, formatList, formatStatus } from './format.ts';

await runMain('client', async (main) => {
  const config = loadClientConfig(process.argv);
  const interactive = process.stdin.isTTY === true && config.durationS === null;
  // With --stdout the frames own standard output: every line for a person goes to standard error.
  const out = config.stdoutId === null ? process.stdout : process.stderr;
  // At a prompt without a log file, log lines go through the prompt-safe printer, and only
  // warnings and worse: the events themselves are printed as sentences, once.
  let printLine = (line: string): void => void process.stderr.write(line);
  const atPrompt = interactive && config.logFile === undefined && config.logFormat !== 'json';
  const log = createLogger('client', atPrompt && config.logLevel === 'info' ? 'warn' : config.logLevel, config.logFile,
    { format: config.logFormat, ...(atPrompt ? { to: (line: string) => printLine(line) } : {}) });
  main.log = log;
  const { socket, name, resolved } = await connectToBroker(config.brokers, config.localPort);
  const brokerName = `${name.current.host}:${name.current.port}`;
  if (!resolved) log.warn({ broker: brokerName }, 'the broker name does not resolve yet; looking it up again until it does');
  socket.on('error', (err) => log.debug({ err: err.message }, 'socket error'));
  log.info({ localPort: socket.address().port, broker: brokerName }, 'socket connected to broker');
  const client = new FramecastClient({
    socket, clock: () => performance.now(),
    options: { heartbeatIntervalMs: config.heartbeatIntervalMs, leaseIntervals: config.leaseIntervals, maxDatagramBytes: config.maxDatagramBytes, latencyMs: config.latencyMs, passphrase: config.passphrase },
  });
  socket.on('message', (msg) => client.link.handleDatagram(msg));
  const startedMs = performance.now();

  let rl: readline.Interface | null = null;
  /** Prints a line without tearing the prompt the person is typing at. */
  const say = (text: string): void => {
    if (rl !== null && interactive) {
      readline.clearLine(out, 0);
      readline.cursorTo(out, 0);
      out.write(`${text}\n`);
      rl.prompt(true);
    } else {
      out.write(`${text}\n`);
    }
  };
  printLine = (line) => say(line.trimEnd());
  // The outputs, each listening to the core's facts: the screen (and the log), the recorder.
  showOnScreen(client, (text) => {
    log.info(text);
    say(text);
  });
  if (config.recordDir !== null) recordTo(client, config.recordDir, { tell: say });
  const stdoutSink = config.stdoutId === null ? null : pipeFrames(client, config.stdoutId, process.stdout, () => quit());
  const view = new HttpView(client);
  /** Starts the live view where asked, or on first `view` at 127.0.0.1:8080 (any free port if that is taken). */
  const startView = async (where: { host: string; port: number } | null): Promise<string> => {
    if (view.listening) return view.url;
    try {
      return await view.listen(where?.host ?? '127.0.0.1', where?.port ?? 8080);
    } catch (err) {
      if (where !== null || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      return await view.listen('127.0.0.1', 0);
    }
  };
  const viewText = (url: string): string => [`live view: ${url}`,
    ...client.active().map((s) => `  ${formatProducerId(s.id)}: ${url}stream/${formatProducerId(s.id)}.mjpg (snapshot: ${url}snapshot/${formatProducerId(s.id)}.jpg)`)].join('\n');
  if (config.http !== null) {
    const url = await startView(config.http).catch((err: NodeJS.ErrnoException) => {
      throw new ConfigError(`cannot serve the live view on ${config.http!.host}:${config.http!.port}: ${err.code ?? err.message}`);
    });
    log.info({ url }, 'live view');
    if (config.durationS === null) say(`live view: ${url}`);
    else out.write(`live view: ${url}\n`);
  }
  // Sent to an edge (PROTOCOL.md §5.5): the socket moves there and every subscription follows;
  // at most once every few seconds, so two brokers that send us to each other cannot spin us.
  let redirectedMs = -Infinity;
  client.on('redirected', (to) => {
    if (performance.now() - redirectedMs < 5000) return;
    redirectedMs = performance.now();
    let endpoint: { host: string; port: number };
    try {
      endpoint = parseEndpoint(to, 'redirect');
    } catch {
      return say(`the broker sent us to '${to.slice(0, 40)}', which is not host:port: staying`);
    }
    void name.redirect(endpoint).then((ok) => {
      if (!ok) return say(`the broker sent us to ${to}, which cannot be reached: staying`);
      say(`the broker sent us to the edge ${to}: subscribing there`);
      client.link.brokerMoved();
    });
  });
  followBrokerName(client.link, name, {
    failoverAfterMs: 2 * config.heartbeatIntervalMs,
    onMoved: (address) => {
      log.info({ address }, 'the broker name resolves to a new address: following it');
      say(`the broker name ${name.current.host} resolves to ${address} now: following it`);
    },
    onFailover: (to) => {
      log.info({ broker: `${to.host}:${to.port}` }, 'moving to the next broker');
      say(`the broker does not answer: moving to the next one, ${to.host}:${to.port}`);
    },
  });
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
      case 'view': {
        try {
          say(viewText(await startView(null)));
        } catch (err) {
          say(`error: cannot serve the live view: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        }
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
      // With --stdout: frames skipped because the reader of standard output fell behind.
      ...(stdoutSink === null ? {} : { stdoutSkipped: stdoutSink.skipped() }),
    };
    client.close();
    view.close();
    rl?.close();
    if (!interactive) out.write(`${JSON.stringify(summary)}\n`);
    else out.write('bye\n');
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
  rl = readline.createInterface({ input: process.stdin, output: out, terminal: interactive, prompt: 'framecast> ' });
  if (interactive) {
    say(`connected to broker ${brokerName}${name.count > 1 ? ` (then ${config.brokers.slice(1).map((b) => `${b.host}:${b.port}`).join(', ')} if it stops answering)` : ''}; type help for commands`);
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
