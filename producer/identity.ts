import { Resolver } from 'node:dns/promises';
import { hostname, networkInterfaces } from 'node:os';
import { autoProducerId } from '../common/config.ts';
import { formatProducerId } from '../protocol/ids.ts';

/** What `--id auto` settled on, and from what. */
export interface AutoIdentity {
  readonly id: number;
  readonly title: string;
  /** The name it was derived from: a Compose replica's container name, or the host name. */
  readonly name: string;
  /** Compose replica slot (1-based), or null when none was found. */
  readonly slot: number | null;
}

/** The names this machine's own addresses resolve back to (Docker's DNS knows containers' names). */
export async function ownReverseNames(timeoutMs = 1000): Promise<string[]> {
  const resolver = new Resolver({ timeout: timeoutMs, tries: 2 });
  const addresses = Object.values(networkInterfaces()).flat()
    .filter((a) => a !== undefined && a.family === 'IPv4' && !a.internal).map((a) => a!.address);
  // A PTR query of its own (Resolver.reverse came back empty from Docker's DNS, which answers this).
  const ptr = (ip: string): string => `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
  const names = await Promise.all(addresses.map((a) => resolver.resolvePtr(ptr(a)).catch(() => [] as string[])));
  return names.flat();
}

/** `framecast_producer_2.framecast_default` (Compose v1) or `framecast-producer-2.…` (v2): slot 2. */
export function replicaSlot(name: string): { name: string; slot: number } | null {
  const first = name.split('.')[0];
  // A name made of the address (Kubernetes answers `10-244-1-5.…`) says nothing of a slot.
  if (/^\d+-\d+-\d+-\d+$/.test(first)) return null;
  const m = /^(.+)[_-](\d{1,5})$/.exec(first);
  return m === null || Number(m[2]) < 1 ? null : { name: first, slot: Number(m[2]) };
}

/**
 * `--id auto`: an identity that survives a container being recreated. Under Kubernetes a
 * StatefulSet's pod index (PRODUCER_INDEX, 0-based) is the slot less one. Under Docker Compose each
 * replica's container is named after its slot, and Docker's DNS answers a reverse lookup of the
 * container's own address with that name. Slot N takes the Nth of `ids` and `titles`
 * (PRODUCER_IDS, PRODUCER_TITLES); slots past the list take an ID derived from the container's
 * name, the same on every recreate. Without such a name the host name is used: a container's
 * host name is its ID, new on each recreate (the caller says so).
 */
export async function autoIdentity(ids: readonly number[], titles: readonly string[], names: () => Promise<string[]> = ownReverseNames, index = process.env.PRODUCER_INDEX): Promise<AutoIdentity> {
  // Kubernetes: a StatefulSet's pod index (0-based, from the downward API) names the slot.
  const replica = index !== undefined && /^\d{1,5}$/.test(index) ? { name: hostname(), slot: Number(index) + 1 }
    : (await names()).map(replicaSlot).find((r) => r !== null) ?? null;
  if (replica === null) {
    const id = autoProducerId(hostname());
    return { id, title: `Producer ${formatProducerId(id)}`, name: hostname(), slot: null };
  }
  const id = ids[replica.slot - 1] ?? autoProducerId(replica.name);
  const title = titles[replica.slot - 1] || `Producer ${formatProducerId(id)}`;
  return { id, title, name: replica.name, slot: replica.slot };
}
