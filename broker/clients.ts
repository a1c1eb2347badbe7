/** A client known to the broker: its address, lease and subscriptions (PROTOCOL.md §5.2). */
export interface ClientEntry {
  readonly key: string;
  readonly address: string;
  readonly port: number;
  lastHeardMs: number;
  readonly subscriptions: Set<number>;
}

export function addressKey(address: string, port: number): string {
  return `${address}:${port}`;
}
