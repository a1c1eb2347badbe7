import dns from 'node:dns';
import { isIP } from 'node:net';

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string, family: number) => void;

/**
 * A dgram `lookup` that answers literal IP addresses synchronously. dgram's default runs every
 * send through dns.lookup, which defers each datagram to a later tick even for "127.0.0.1".
 */
export function literalFirstLookup(hostname: string, options: unknown, callback: LookupCallback): void {
  const family = isIP(hostname);
  if (family !== 0) {
    callback(null, hostname, family);
    return;
  }
  dns.lookup(hostname, options as dns.LookupOptions, callback as never);
}
