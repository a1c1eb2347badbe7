import type { EdgeMessage } from '../../protocol/codec.ts';
import { verifyEdgeAuth } from '../../protocol/session-crypto.ts';
import type { PeerSession } from '../sessions.ts';
import type { BrokerContext } from './context.ts';

/**
 * EDGE (PROTOCOL.md §5.5): a session says it is an edge (so its SUBSCRIBEs are never
 * redirected) and, proving the edge secret, where viewers reach it and its load. An address
 * without the proof is not taken: a viewer could otherwise send everyone's viewers anywhere.
 */
export function handleEdge(ctx: BrokerContext, m: EdgeMessage, s: PeerSession): void {
  const secret = ctx.options.edgeSecret;
  let advertise: string | null = null;
  if (m.advertise !== '') {
    if (secret === null || !verifyEdgeAuth(m.auth, secret, s.keys.binding, m.advertise)) return ctx.counters.countRefusal('REFUSED_AUTH_FAILED');
    advertise = m.advertise;
  }
  // A new load report: the viewers sent there meanwhile are in it.
  s.edge = { advertise, load: m.load, heardMs: ctx.now(), assigned: 0 };
  if (advertise !== null) ctx.edgeRegistered(s);
}
