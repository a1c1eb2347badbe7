import { createLogger } from '../common/logger.ts';
import { runMain } from '../common/run.ts';
import { connectToBroker, followBrokerName } from '../common/socket.ts';
import { formatProducerId } from '../protocol/ids.ts';
import { loadProducerConfig } from './config.ts';
import { Producer } from './producer.ts';
import { autoIdentity } from './identity.ts';
import { LiveInput, loadSource } from './source.ts';

await runMain('producer', async (run) => {
  const config = loadProducerConfig(process.argv);
  // `--video -`: Motion-JPEG from standard input, each frame sent as it arrives; the first one
  // gives the picture's size for the announcement.
  const auto = config.producerId === 'auto' ? await autoIdentity(config.autoIds, config.autoTitles) : null;
  // A replica slot's own sample, where PRODUCER_VIDEO_FILES (and PRODUCER_AUDIO_FILES) list one.
  const slot = (auto?.slot ?? 0) - 1;
  const videoPath = (slot >= 0 && config.autoVideos[slot]) || config.videoPath;
  const audioPath = config.audioPath === null ? null : (slot >= 0 && config.autoAudios[slot]) || config.audioPath;
  const live = videoPath === '-' ? new LiveInput(process.stdin) : null;
  const source = live === null ? loadSource(videoPath, audioPath, config.fps) : await live.first();
  const producerId = auto?.id ?? (config.producerId as number);
  const title = config.title ?? auto?.title ?? `Producer ${formatProducerId(producerId)}`;
  const log = createLogger('producer', config.logLevel, config.logFile, { format: config.logFormat }).child({ producer: formatProducerId(producerId) });
  run.log = log;
  if (auto !== null && auto.slot !== null) log.info({ container: auto.name, slot: auto.slot }, `ID ${formatProducerId(producerId)} by replica slot ${auto.slot}${auto.slot <= config.autoIds.length ? ' (PRODUCER_IDS)' : ' (from the container name)'}`);
  if (auto !== null && auto.slot === null) log.warn({ host: auto.name }, 'ID from the host name: no replica name found, so a recreated container gets a new ID');
  const { socket, name, resolved } = await connectToBroker(config.brokers);
  const brokerName = `${name.current.host}:${name.current.port}`;
  if (!resolved) log.warn({ broker: brokerName }, 'the broker name does not resolve yet; looking it up again until it does');
  // ICMP port unreachable while the broker is down: expected, and healed by heartbeats.
  socket.on('error', (err) => log.debug({ err: err.message }, 'socket error'));
  const producer = new Producer({
    socket, clock: () => performance.now(), source,
    options: {
      producerId, title, fps: config.fps, loop: config.loop,
      live: live !== null, maxDatagramBytes: config.maxDatagramBytes, heartbeatIntervalMs: config.heartbeatIntervalMs, leaseIntervals: config.leaseIntervals,
      secret: config.secret, passphrase: config.passphrase, latencyMs: config.latencyMs,
    },
  });
  socket.on('message', (msg) => producer.link.handleDatagram(msg));
  followBrokerName(producer.link, name, {
    failoverAfterMs: 2 * config.heartbeatIntervalMs,
    onMoved: (address) => log.warn({ broker: `${name.current.host}:${name.current.port}`, address }, 'the broker name resolves to a new address: following it'),
    onFailover: (to) => log.warn({ broker: `${to.host}:${to.port}` }, 'the broker does not answer: moving to the next in the list'),
  });
  producer.on('announced', () => log.info({ broker: `${name.current.host}:${name.current.port}`, title }, 'announced'));
  producer.on('refused', (why) => log.warn({ why }, 'announce refused'));
  producer.on('brokerUnreachable', () => log.warn('broker unreachable; retrying'));
  producer.on('brokerReachable', () => log.info('broker reachable again'));
  if (live === null) log.info({ frames: source.frames.length, width: source.width, height: source.height, fps: config.fps, audio: source.audio?.codec ?? null }, 'sample loaded');
  else log.info({ width: source.width, height: source.height }, 'live source on standard input: each frame sent as it arrives (video only)');

  let stopping = false;
  const stop = (why: string): void => {
    if (stopping) return;
    stopping = true;
    producer.stop();
    log.info({ why, framesSent: producer.framesSent, datagramsSent: producer.datagramsSent, bytesSent: producer.bytesSent, repairs: producer.repairs }, 'stopped');
    // Let the goodbye leave before the socket closes.
    setImmediate(() => socket.close(() => process.exit(0)));
  };
  producer.on('finished', () => stop('end of sample'));
  if (live !== null) {
    live.on('frame', (jpeg) => producer.sendLive(jpeg));
    live.on('end', () => stop('end of input'));
  }
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  setTimeout(() => producer.start(), config.startDelayMs);
});
