import type { ReceiverReportMessage } from '../../protocol/codec.ts';
import type { PeerSession } from '../sessions.ts';
import type { BrokerContext } from './context.ts';

/** A subscriber's view of its reception (PROTOCOL.md §4.11), kept for stats. */
export function handleReport(ctx: BrokerContext, m: ReceiverReportMessage, s: PeerSession): void {
  const sub = s.client?.subscriptions.get(m.producerId);
  if (sub === undefined) return ctx.dropControl('FC_DROP_NOT_SUBSCRIBED');
  ctx.counters.reportsIn++;
  const { type: _t, producerId: _p, requestId: _r, sessionId: _s, packetNo: _n, ...report } = m;
  sub.report = report;
  sub.reportMs = ctx.now();
}
