import { readFileSync } from 'node:fs';

/**
 * Datagrams the kernel dropped because a receive buffer was full, for the UDP sockets bound to
 * `localPort` (one for a client; the broker's shared socket and those connected to its peers):
 * the `drops` column of /proc/net/udp (udp6), summed. Linux only; null
 * elsewhere or when the socket is not listed. Reads a small file: call it now and then, never
 * per datagram.
 */
export function receiveBufferDrops(localPort: number, family: 'IPv4' | 'IPv6'): number | null {
  return receiveQueues(localPort, family)?.drops ?? null;
}

/**
 * For the UDP sockets bound to `localPort`: bytes waiting in the fullest receive buffer (what
 * has arrived and not been read yet, in the kernel's accounting), and datagrams dropped because
 * a buffer was full, summed. Linux (/proc/net/udp); null elsewhere or when none is listed.
 */
export function receiveQueues(localPort: number, family: 'IPv4' | 'IPv6'): { readonly maxQueuedBytes: number; readonly drops: number } | null {
  let table: string;
  try {
    table = readFileSync(family === 'IPv6' ? '/proc/net/udp6' : '/proc/net/udp', 'utf8');
  } catch {
    return null;
  }
  const port = `:${localPort.toString(16).toUpperCase().padStart(4, '0')}`;
  let found = false;
  let maxQueuedBytes = 0;
  let drops = 0;
  for (const line of table.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 13 || !cols[1].endsWith(port)) continue;
    found = true;
    const queued = Number.parseInt(cols[4].split(':')[1] ?? '0', 16);
    if (queued > maxQueuedBytes) maxQueuedBytes = queued;
    const d = Number(cols[cols.length - 1]);
    if (Number.isFinite(d)) drops += d;
  }
  return found ? { maxQueuedBytes, drops } : null;
}

/**
 * Asks for a receive buffer of `bytes`; returns what the kernel granted, in the same terms (Linux
 * reports twice what it grants: the other half is its bookkeeping), and whether it fell short
 * because of `net.core.rmem_max`.
 */
export function enlargeReceiveBuffer(socket: { setRecvBufferSize(n: number): void; getRecvBufferSize(): number }, bytes: number): { grantedBytes: number; short: boolean } {
  try {
    socket.setRecvBufferSize(bytes);
  } catch {
    // refused outright: what it has is what it gets
  }
  let granted: number;
  try {
    granted = socket.getRecvBufferSize();
  } catch {
    return { grantedBytes: 0, short: true };
  }
  if (process.platform === 'linux') granted = Math.floor(granted / 2);
  return { grantedBytes: granted, short: granted < bytes };
}
