import type { PeerSender, Subscriber } from './channel.ts';
import type { PeerSession } from './sessions.ts';

/** A client known to the broker: its session and subscriptions (PROTOCOL.md §5.2). */
export interface ClientEntry {
  /** Names it in channels' fan-out lists: its session ID, which outlives an address change. */
  readonly key: string;
  readonly session: PeerSession;
  /** Its connected socket (PeerSockets), or null. */
  out: PeerSender | null;
  /** Its name in the fan-out threads (Fanout), when the broker runs with them; 0 otherwise. */
  peer: number;
  /** Producer ID to this client's place in that channel. */
  readonly subscriptions: Map<number, Subscriber>;
}

export function addressKey(address: string, port: number): string {
  return `${address}:${port}`;
}
