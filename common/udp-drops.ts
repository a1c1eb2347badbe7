import { readFileSync } from 'node:fs';

/**
 * Datagrams the kernel dropped for one UDP socket because its receive buffer was full: the
 * `drops` column of /proc/net/udp (udp6), found by the socket's local port. Linux only; null
 * elsewhere or when the socket is not listed. Reads a small file: call it now and then, never
 * per datagram.
 */
export function receiveBufferDrops(localPort: number, family: 'IPv4' | 'IPv6'): number | null {
  let table: string;
  try {
    table = readFileSync(family === 'IPv6' ? '/proc/net/udp6' : '/proc/net/udp', 'utf8');
  } catch {
    return null;
  }
  const port = `:${localPort.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const line of table.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 13 || !cols[1].endsWith(port)) continue;
    const drops = Number(cols[cols.length - 1]);
    return Number.isFinite(drops) ? drops : null;
  }
  return null;
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
