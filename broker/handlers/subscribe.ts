import type { AckDetail, SubscribeMessage, UnsubscribeMessage } from '../../protocol/codec.ts';
import { Status } from '../../protocol/constants.ts';
import { newSubscriber, type Subscriber } from '../channel.ts';
import type { PeerSession } from '../sessions.ts';
import type { BrokerContext } from './context.ts';

/** SUBSCRIBE (PROTOCOL.md §4.2): a session watches a producer ID; the latest frame goes out at once. */
export function handleSubscribe(ctx: BrokerContext, m: SubscribeMessage, s: PeerSession): void {
  // Spreading viewers (PROTOCOL.md §5.5): a viewer, not an edge, is sent to the least-loaded edge.
  if (ctx.options.redirect && s.edge === null) {
    const to = ctx.pickEdge();
    if (to !== null) return ctx.ack(s, m, Status.REDIRECT, { redirect: to });
  }
  const ch = ctx.channels.get(m.producerId);
  if (ch === undefined || ch.producer === null) {
    if (ctx.askUpstream(s, m)) return; // an edge: answered when its upstream broker has
    return ctx.ack(s, m, Status.UNKNOWN_PRODUCER);
  }
  const client = ctx.clientOf(s, m);
  if (client === null) return;
  const p = ch.producer;
  const detail: AckDetail = { metadata: p.metadata, online: p.online, epoch: p.epoch, frameKey: p.frameKey, ...ctx.leaseDetail() };
  if (client.subscriptions.has(m.producerId)) return ctx.ack(s, m, Status.OK, detail); // a retry
  if (client.subscriptions.size >= ctx.options.maxSubscriptionsPerClient) {
    return ctx.refuse('REFUSED_SUBSCRIPTIONS_PER_CLIENT', s, m, Status.LIMIT_REACHED, { message: `at most ${ctx.options.maxSubscriptionsPerClient} subscriptions per client` });
  }
  if (ch.subscribers.length >= ctx.options.maxSubscribersPerProducer) {
    return ctx.refuse('REFUSED_VIEWERS_PER_PRODUCER', s, m, Status.LIMIT_REACHED, { message: `at most ${ctx.options.maxSubscribersPerProducer} viewers per producer` });
  }
  const sub: Subscriber = newSubscriber(client.key, s.address, s.port, client.out, ctx.options.maxRetransmitsPerSecondPerSubscriber, ctx.now());
  ch.addSubscriber(sub);
  client.subscriptions.set(m.producerId, sub);
  ctx.fanout?.subscribe(ch.id, client.peer);
  ctx.ack(s, m, Status.OK, detail);
  ctx.emit('subscribed', m.producerId, s.address, s.port);
  // Instant join (PROTOCOL.md §3.5): the latest whole frame now, not at the next frame.
  if (ch.producer.online) {
    for (const d of ch.replayDatagrams()) ctx.send(d, s);
  }
}

/** UNSUBSCRIBE (PROTOCOL.md §4.2): OK when it ended a subscription, NOT_SUBSCRIBED when there was none (a retry too). */
export function handleUnsubscribe(ctx: BrokerContext, m: UnsubscribeMessage, s: PeerSession): void {
  const client = s.client;
  const had = client?.subscriptions.delete(m.producerId) ?? false;
  if (had) {
    ctx.channels.get(m.producerId)?.removeSubscriber(client!.key);
    ctx.fanout?.unsubscribe(m.producerId, client!.peer);
  }
  ctx.ack(s, m, had ? Status.OK : Status.NOT_SUBSCRIBED);
  if (had) ctx.emit('unsubscribed', m.producerId, s.address, s.port);
}
