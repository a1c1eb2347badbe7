import type { AnnounceMessage } from '../../protocol/codec.ts';
import { Status } from '../../protocol/constants.ts';
import { verifyAnnounceAuth } from '../../protocol/session-crypto.ts';
import type { PeerSession } from '../sessions.ts';
import type { BrokerContext } from './context.ts';

/** ANNOUNCE (PROTOCOL.md §4.1): a session takes (or keeps) a producer ID, with its run's epoch and frame key. */
export function handleAnnounce(ctx: BrokerContext, m: AnnounceMessage, s: PeerSession): void {
  let ch = ctx.channels.get(m.producerId);
  const p = ch?.producer ?? null;
  const owner = p !== null && p.session === s;
  if (!owner && ctx.producersFromIp(s.ip) >= ctx.options.maxProducersPerIp) {
    ctx.counters.countRefusal('REFUSED_PRODUCERS_PER_IP');
    return ctx.ack(s, m, Status.LIMIT_REACHED, { message: `at most ${ctx.options.maxProducersPerIp} producers per IP address` });
  }
  // PROTOCOL.md §4.1: an ID with a secret takes only an ANNOUNCE that proves it in this session.
  const secret = ctx.options.producerSecrets.get(m.producerId);
  if (secret !== undefined && !verifyAnnounceAuth(m.auth, secret, s.keys.binding, m.producerId)) {
    ctx.counters.announcesRefused++;
    ctx.counters.countRefusal('REFUSED_AUTH_FAILED');
    ctx.emit('producerRefused', m.producerId, s.address, s.port);
    return ctx.ack(s, m, Status.AUTH_FAILED);
  }
  // PROTOCOL.md §5.3: an ID belongs to the session that announced it while its lease lives,
  // unless the new session proves the ID's secret (a restarted producer takes it at once).
  // (An edge's channel fed by its upstream yields to a producer announcing here.)
  if (p !== null && p.online && !owner && secret === undefined && p.session !== null && ctx.sessionLive(p.session)) {
    ctx.counters.announcesRefused++;
    ctx.counters.countRefusal('REFUSED_ID_TAKEN');
    ctx.emit('producerRefused', m.producerId, s.address, s.port);
    return ctx.ack(s, m, Status.ID_TAKEN);
  }
  if (ch === undefined) {
    if (ctx.channels.size >= ctx.options.maxProducers) return ctx.refuse('REFUSED_PRODUCERS', s, m, Status.LIMIT_REACHED, { message: `the broker carries at most ${ctx.options.maxProducers} producers` });
    ch = ctx.newChannel(m.producerId);
    ctx.channels.set(m.producerId, ch);
  }
  const now = ctx.now();
  // A new run (epoch and frame key, PROTOCOL.md §3.7) is news to subscribers even from the same session.
  const newRun = p === null || p.epoch !== m.epoch || !p.frameKey.equals(m.frameKey);
  const resumed = newRun || !p.online || !owner;
  if (p !== null && owner) {
    p.metadata = m.metadata;
    p.lastHeardMs = now;
    if (newRun) ch.clearCache();
    p.epoch = m.epoch;
    p.frameKey = m.frameKey;
  } else {
    if (p !== null && p.session === null) ctx.releaseUpstream(m.producerId);
    if (p !== null) p.session?.producerIds.delete(m.producerId);
    ch.clearCache();
    ch.producer = {
      session: s, metadata: m.metadata, epoch: m.epoch, frameKey: m.frameKey, lastHeardMs: now, mediaSinceSweep: false, online: false, offlineSinceMs: now,
    };
  }
  s.producerIds.add(m.producerId);
  ctx.openIngress(s);
  ctx.ack(s, m, Status.OK, ctx.leaseDetail());
  if (resumed || !ch.producer!.online) ctx.setOnline(ch);
}
