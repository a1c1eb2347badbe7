import dgram from 'node:dgram';
import { performance as nodePerformance } from 'node:perf_hooks';
import { createLogger } from '../common/logger.ts';
import { literalFirstLookup } from '../common/net.ts';
import { runMain } from '../common/run.ts';
import { formatProducerId } from '../protocol/ids.ts';
import { Broker, type Ingress, type PeerSockets } from './broker.ts';
import { FanoutThreads } from './fanout-threads.ts';
import { openPeerSocket } from './peer-socket.ts';
import { loadBrokerConfig } from './config.ts';
import { RefusalReport } from './refusal-report.ts';
import { enlargeReceiveBuffer, receiveQueues } from '../common/udp-drops.ts';
import { connectToBroker, followBrokerName } from '../common/socket.ts';
import { Upstream, UpstreamPool } from './upstream.ts';
import { BrokerMetrics, serveMetrics } from './metrics.ts';
import { statsLine } from './stats-line.ts';
import type { AddressInfo } from 'node:net';

/** Refusals and drops are logged as one line per this interval (PROTOCOL.md §5.4). */
const REFUSAL_LOG_INTERVAL_MS = 10_000;

/** How often the broker's load is looked at (PROTOCOL.md §3.5). */
const LOAD_INTERVAL_MS = 20;

/** How often gaps in producers' seqs are asked for again (a fraction of the 10 ms tail grace and the NAK retry). */
const REPAIR_TICK_MS = 5;

await runMain('broker', async (run) => {
  const config = loadBrokerConfig(process.argv);
  const log = createLogger('broker', config.logLevel, config.logFile, { format: config.logFormat });
  run.log = log;
  const type = config.host.includes(':') ? 'udp6' : 'udp4';
  // Every socket shares the port (SO_REUSEADDR): the kernel hands a producer's datagrams (and,
  // with connected sockets, a client's) to the socket connected to it, everyone else's to this one.
  const socket = dgram.createSocket({ type, lookup: literalFirstLookup, reuseAddr: true });
  /** A socket per producer session, for what it sends alone (PROTOCOL.md §3.5): a flood of media cannot crowd out clients' control. */
  const ingress: Ingress = {
    open(address, port) {
      const peer = openPeerSocket({
        type, host: config.host, port: socket.address().port, to: { address, port },
        onMessage: (msg, rinfo) => broker.handleDatagram(msg, rinfo),
        onError: () => broker.counters.sendErrors++,
        onReady: () => {
          try {
            peer.socket.setRecvBufferSize(config.options.socketBufferBytes);
          } catch {
            // the system's default: still apart from everyone else's
          }
        },
      });
      return peer;
    },
  };
  const peers: PeerSockets | undefined = config.options.connectedSockets ? {
    open(address, port) {
      const peer = openPeerSocket({
        type, host: config.host, port: socket.address().port, to: { address, port },
        onMessage: (msg, rinfo) => broker.handleDatagram(msg, rinfo),
        // A gone client's ICMP errors surface here: counted, never fatal.
        onError: () => broker.counters.sendErrors++,
      });
      // Until it is bound and connected (a few microseconds), sends go out through the shared socket.
      return {
        send: (msg: Buffer) => (peer.ready ? peer.socket.send(msg) : socket.send(msg, port, address)),
        close: () => peer.close(),
      };
    },
    close(sender) {
      (sender as unknown as { close(): void }).close();
    },
  } : undefined;


  // The port is shared with the broker's own connected sockets (SO_REUSEADDR), which would also
  // let a second broker bind it: a socket without the option is bound first, so a busy port
  // is refused as it would be without sharing.
  if (config.port !== 0) {
    const probe = dgram.createSocket({ type, lookup: literalFirstLookup });
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.bind(config.port, config.host, () => resolve());
    }).catch((err: NodeJS.ErrnoException) => {
      probe.close();
      throw new Error(`cannot listen on ${config.host}:${config.port}: ${err.code ?? err.message}${err.code === 'EADDRINUSE' ? ' (another broker, or another program, has it)' : ''}`);
    });
    await new Promise<void>((resolve) => probe.close(() => resolve()));
  }
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(config.port, config.host, () => {
      socket.off('error', reject);
      resolve();
    });
  }).catch((err: NodeJS.ErrnoException) => {
    throw new Error(`cannot listen on ${config.host}:${config.port}: ${err.code ?? err.message}`);
  });
  try {
    socket.setRecvBufferSize(config.options.socketBufferBytes);
    socket.setSendBufferSize(config.options.socketBufferBytes);
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'could not enlarge socket buffers');
  }
  const { port } = socket.address();
  // Fan-out threads bind their sockets to the port just bound (the real one when 0 was asked).
  const fanout = config.options.fanoutThreads === 0 ? undefined : await FanoutThreads.start({
    threads: config.options.fanoutThreads, type, host: config.host, port, socketBufferBytes: config.options.socketBufferBytes,
    onDatagram: (msg, rinfo) => broker.handleDatagram(msg, rinfo),
    onFailure: (err) => {
      // Its clients would get nothing more: end, so a supervisor restarts the broker and they heal.
      log.fatal({ err: err.message }, 'a fan-out thread failed');
      process.exit(1);
    },
    onOpenFailure: (client, error) => log.error({ client, err: error }, 'no fan-out socket for a client: it gets no media'),
  });
  if (fanout !== undefined) log.info({ threads: config.options.fanoutThreads }, 'fan-out threads started');
  // An edge (PROTOCOL.md §5.5): a client session to each upstream broker, all at once, so that
  // producers may be spread over origins. The links heartbeat twice as often as peers do, so a
  // dead upstream is noticed (a lease of those heartbeats: 1.5 s), and what it carried asked of the others.
  let upstream: UpstreamPool | undefined;
  /** An edge's load as its upstreams are told it: its audience, once the broker exists. */
  let edgeLoad = (): number => 0;
  const upstreamPorts: number[] = [];
  if (config.upstream.length > 0) {
    const heartbeatIntervalMs = Math.max(50, Math.round(config.options.heartbeatIntervalMs / 2));
    const links: Upstream[] = [];
    for (const endpoint of config.upstream) {
      const up = await connectToBroker([endpoint]);
      const link = new Upstream({
        socket: up.socket, clock: () => performance.now(), heartbeatIntervalMs, leaseIntervals: config.options.leaseMs / config.options.heartbeatIntervalMs, maxDatagramBytes: config.options.maxDatagramBytes,
        edge: { advertise: config.advertise, secret: config.options.edgeSecret, load: () => edgeLoad() },
      });
      up.socket.on('message', (d) => link.handleDatagram(d));
      up.socket.on('error', (err) => log.debug({ err: err.message }, 'upstream socket error'));
      enlargeReceiveBuffer(up.socket, config.options.socketBufferBytes);
      const where = `${endpoint.host}:${endpoint.port}`;
      followBrokerName(link.link, up.name, {
        failoverAfterMs: Infinity,
        onMoved: (address) => log.warn({ upstream: where, address }, 'the upstream name resolves to a new address: following it'),
      });
      link.link.on('unreachable', () => log.warn({ upstream: where }, 'upstream unreachable'));
      link.link.on('reachable', () => log.info({ upstream: where }, 'upstream reachable'));
      links.push(link);
      upstreamPorts.push(up.socket.address().port);
    }
    upstream = new UpstreamPool(links);
  }
  const broker = new Broker({ socket, clock: () => performance.now(), options: config.options, peers, fanout, ingress, upstream });
  edgeLoad = () => broker.audienceTotal;
  if (upstream !== undefined) {
    upstream.on('media', (d) => broker.feedUpstream(d));
    const edge = broker.edge!;
    upstream.on('accepted', (id, detail) => edge.accepted(id, detail));
    upstream.on('notLive', (id) => edge.notLive(id));
    upstream.on('refused', (id, status, message) => {
      log.warn({ producer: formatProducerId(id), message }, 'upstream refused a subscription');
      edge.refused(id, status);
    });
    upstream.on('notice', (m) => edge.notice(m));
    upstream.on('down', (i) => log.warn({ upstream: `${config.upstream[i].host}:${config.upstream[i].port}` }, 'an upstream broker does not answer: asking the others for what it carried'));
    upstream.start();
    // Receiver reports upstream: the edge's own reception, and the audience it serves.
    const reports = setInterval(() => {
      for (const r of edge.reports()) upstream!.report(r);
      for (const link of upstream!.links) link.announceEdge();
    }, 1000);
    reports.unref();
    log.info({ upstream: config.upstream.map((u) => `${u.host}:${u.port}`) }, 'edge: subscribing upstream on demand');
    process.stdout.write(`edge of ${config.upstream.map((u) => `${u.host}:${u.port}`).join(', ')} from local ports ${upstreamPorts.join(', ')}\n`);
  }
  broker.on('producerOnline', (id, address, port, title) => log.info({ producer: formatProducerId(id), address, port, title }, 'producer online'));
  broker.on('producerOffline', (id, reason) => log.info({ producer: formatProducerId(id), reason }, 'producer offline'));
  broker.on('clientJoined', (address, port) => log.info({ address, port }, 'client joined'));
  broker.on('clientLeft', (address, port, reason) => log.info({ address, port, reason }, 'client left'));
  broker.on('subscribed', (id, address, port) => log.info({ producer: formatProducerId(id), address, port }, 'subscribed'));
  broker.on('unsubscribed', (id, address, port) => log.info({ producer: formatProducerId(id), address, port }, 'unsubscribed'));
  socket.on('message', (msg, rinfo) => broker.handleDatagram(msg, rinfo));
  // Send failures (an unreachable subscriber, a full buffer) are counted, not fatal.
  socket.on('error', (err) => {
    broker.counters.sendErrors++;
    log.debug({ err: err.message }, 'socket error');
  });
  let stopping = false;
  const metricsServer = config.metrics === null ? null : await serveMetrics({
    ...config.metrics, metrics: new BrokerMetrics(broker), ready: () => !stopping,
  }).catch((err: NodeJS.ErrnoException) => {
    throw new Error(`cannot serve metrics on ${config.metrics!.host}:${config.metrics!.port}: ${err.code ?? err.message}`);
  });
  if (metricsServer !== null) {
    const a = metricsServer.address() as AddressInfo;
    const url = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
    log.info({ url: `${url}/metrics` }, 'metrics served');
    process.stdout.write(`metrics on ${url}/metrics\n`);
  }
  log.info({ host: config.host, port, heartbeatIntervalMs: config.options.heartbeatIntervalMs, leaseMs: config.options.leaseMs }, 'broker listening');
  // A line on stdout that scripts and tests can wait for, with the real port when 0 was asked.
  process.stdout.write(`broker listening on ${config.host}:${port}\n`);

  let fanoutErrors = 0;
  let elu = nodePerformance.eventLoopUtilization();
  const family = type === 'udp6' ? 'IPv6' : 'IPv4';
  const dropsAtStart = receiveQueues(port, family)?.drops ?? null;
  let dropsCheckedMs = performance.now();
  // Overload (PROTOCOL.md §3.5): how busy the thread was since the last look and, only when it
  // was (this reads a /proc file), how much waits unread; the drops once a second. Often enough
  // that a backlog is seen well before a receive buffer fills (4 MiB at 20,000 datagrams a second: 90 ms).
  const load = setInterval(() => {
    const now = performance.now();
    const busy = nodePerformance.eventLoopUtilization(elu).utilization;
    elu = nodePerformance.eventLoopUtilization();
    const countDrops = dropsAtStart !== null && now - dropsCheckedMs >= 1000;
    const queues = busy > config.options.maxBusyShare || countDrops ? receiveQueues(port, family) : null;
    broker.setLoad(busy, dropsAtStart === null ? null : queues?.maxQueuedBytes ?? 0);
    if (countDrops && queues !== null) {
      dropsCheckedMs = now;
      broker.counters.receiveBufferDrops = queues.drops - dropsAtStart;
    }
  }, LOAD_INTERVAL_MS);
  load.unref();
  const sweep = setInterval(() => {
    const now = performance.now();
    broker.sweep(now);
    if (fanout !== undefined) {
      const n = fanout.sendErrors();
      broker.counters.sendErrors += n - fanoutErrors;
      fanoutErrors = n;
    }
  }, config.options.sweepIntervalMs);
  sweep.unref();
  // Uplink loss recovery: NAK retries and lost frame tails are due within milliseconds.
  const repair = setInterval(() => broker.repairTick(performance.now()), REPAIR_TICK_MS);
  repair.unref();
  // Refusals and drops: one aggregated line per interval, whatever their number.
  const refusals = new RefusalReport(broker.counters);
  const refusalTimer = setInterval(() => {
    const r = refusals.take();
    if (r !== null) log.warn({ seconds: REFUSAL_LOG_INTERVAL_MS / 1000, total: r.total, ...r.byReason }, 'refused or dropped datagrams');
  }, REFUSAL_LOG_INTERVAL_MS);
  refusalTimer.unref();
  let stats: NodeJS.Timeout | undefined;
  if (config.statsIntervalMs > 0) {
    // Rates with units and what changed since the previous line; the totals are at /metrics.
    let prev: Record<string, number> | null = null;
    let prevMs = performance.now();
    stats = setInterval(() => {
      const now = performance.now();
      const snapshot = broker.statsSnapshot();
      const quality = broker.subscriberQuality().map((q) => ({ ...q, producer: formatProducerId(q.producer) }));
      log.info({ ...statsLine(prev, snapshot, now - prevMs), ...(quality.length > 0 ? { quality } : {}) }, 'stats');
      prev = snapshot;
      prevMs = now;
    }, config.statsIntervalMs);
    stats.unref();
  }

  const stop = (signal: string): void => {
    stopping = true;
    metricsServer?.close();
    log.info({ signal }, 'shutting down');
    broker.shutdown();
    clearInterval(sweep);
    clearInterval(repair);
    clearInterval(load);
    clearInterval(refusalTimer);
    if (stats) clearInterval(stats);
    // Let the goodbyes leave the socket before closing it.
    setImmediate(() => {
      void fanout?.stop();
      socket.close(() => process.exit(0));
    });
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
});
