import type { GoodbyeMessage } from '../../protocol/codec.ts';
import { NoticeEvent } from '../../protocol/constants.ts';
import type { PeerSession } from '../sessions.ts';
import type { BrokerContext } from './context.ts';

/** GOODBYE (PROTOCOL.md §4.6): a client leaves, or a producer ends its stream. */
export function handleGoodbye(ctx: BrokerContext, m: GoodbyeMessage, s: PeerSession): void {
  if (m.producerId === 0) return ctx.closeSession(s, 'goodbye');
  const ch = ctx.channels.get(m.producerId);
  const p = ch?.producer;
  if (ch === undefined || p == null || p.session !== s || !p.online) return;
  ctx.setOffline(ch, NoticeEvent.PRODUCER_ENDED, 'goodbye');
}
