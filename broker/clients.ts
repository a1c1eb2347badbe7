import type { PeerSender, Subscriber } from './channel.ts';

/** A client known to the broker: its address, lease and subscriptions (PROTOCOL.md §5.2). */
export interface ClientEntry {
  readonly key: string;
  readonly address: string;
  readonly port: number;
  lastHeardMs: number;
  /** Its connected socket (PeerSockets), or null. */
  readonly out: PeerSender | null;
  /** Its name in the fan-out threads (Fanout), when the broker runs with them; 0 otherwise. */
  readonly peer: number;
  /** Producer ID to this client's place in that channel. */
  readonly subscriptions: Map<number, Subscriber>;
}

export function addressKey(address: string, port: number): string {
  return `${address}:${port}`;
}
