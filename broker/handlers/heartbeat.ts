import type { HeartbeatMessage } from '../../protocol/codec.ts';
import { Role, Status } from '../../protocol/constants.ts';
import type { PeerSession } from '../sessions.ts';
import type { BrokerContext } from './context.ts';

/** HEARTBEAT (PROTOCOL.md §4.7): answered OK; a producer's also renews its ID's lease. */
export function handleHeartbeat(ctx: BrokerContext, m: HeartbeatMessage, s: PeerSession): void {
  // The session's consent was renewed on receipt. A producer's heartbeat also renews its lease
  // on the ID, which only the owning session can (PROTOCOL.md §5.2).
  if (m.role === Role.CLIENT) return ctx.ack(s, m, Status.OK);
  const p = ctx.channels.get(m.producerId)?.producer;
  if (p == null || p.session !== s) return ctx.ack(s, m, Status.NOT_REGISTERED);
  p.lastHeardMs = ctx.now();
  ctx.ack(s, m, Status.OK);
}
