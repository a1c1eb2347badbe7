import type { NakMessage } from '../../protocol/codec.ts';
import { markRetransmit } from '../../protocol/media-header.ts';
import type { PeerSession } from '../sessions.ts';
import type { BrokerContext } from './context.ts';

/** Share of a stream's datagram rate that one subscriber may have sent again. */
const REPAIR_SHARE = 0.5;

/**
 * Loss recovery (PROTOCOL.md §3.6): sends the datagrams asked for again, to this subscriber
 * only, flagged RETRANSMIT, while they are younger than the latency budget and within its
 * retransmission budget. Nothing is answered for datagrams no longer held.
 */
export function handleNak(ctx: BrokerContext, m: NakMessage, s: PeerSession): void {
  const c = ctx.counters;
  c.naksIn++;
  const sub = s.client?.subscriptions.get(m.producerId);
  const ch = ctx.channels.get(m.producerId);
  if (sub === undefined || ch === undefined) return ctx.dropControl('FC_DROP_NOT_SUBSCRIBED');
  const now = ctx.now();
  if (ctx.sendQueueFull()) {
    // Repairs would only lengthen the queue that is shedding frames.
    for (const r of m.ranges) c.retransmitsThrottled += r.count;
    return;
  }
  // The budget follows the stream (PROTOCOL.md §3.6): a subscriber may be sent again up to half
  // of what its stream sends, never less than the configured floor; an IP's budget grows by the same factor.
  const floor = ctx.options.maxRetransmitsPerSecondPerSubscriber;
  const rate = Math.max(floor, REPAIR_SHARE * ch.datagramsPerSecond);
  const ipRate = (ctx.options.maxRetransmitsPerSecondPerIp * rate) / floor;
  sub.retransmitTokens = Math.min(rate, sub.retransmitTokens + ((now - sub.retransmitRefillMs) * rate) / 1000);
  sub.retransmitRefillMs = now;
  const history = ch.history;
  // No more lookups than the history holds: a NAK cannot make the broker loop for long.
  let lookups = history.capacity;
  for (const r of m.ranges) {
    for (let seq = r.first, end = r.first + r.count; seq < end; seq++) {
      if (sub.retransmitTokens < 1 || lookups-- <= 0) {
        c.retransmitsThrottled += end - seq;
        break;
      }
      const copy = history.get(m.track, m.epoch, seq >>> 0, now, ctx.historyMs);
      if (copy === null) {
        c.retransmitsUnavailable++;
        continue;
      }
      if (!ctx.takeRetransmit(s.ip, ipRate)) {
        // The budget of the sender's IP, all its sessions together, is spent.
        c.retransmitsThrottled += end - seq;
        break;
      }
      sub.retransmitTokens--;
      sub.retransmits++;
      c.retransmitsOut++;
      markRetransmit(copy); // a copy of its own: the flag marks only this one
      ctx.send(copy, s);
    }
  }
}
