import { execFileSync, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { afterEach } from 'vitest';

/**
 * Datagrams with forged source addresses on loopback, as an attacker on the same network sends
 * them (PROTOCOL.md §7). Node has no raw sockets: each forger sends from a socket of its own and
 * an nftables rule in the output hook rewrites that socket's source address and port to the
 * forged ones, so the receiver cannot tell them from the real peer's. Needs root and nft.
 */
const TABLE = `fc_forge_${process.pid}`;

/** Why forged-source tests cannot run here, or null when they can. */
export const cannotForge: string | null = (() => {
  if (process.getuid?.() !== 0) return 'needs root, for nftables';
  if (spawnSync('nft', ['--version']).status !== 0) return 'nft (nftables) is not installed';
  return null;
})();

const sockets: dgram.Socket[] = [];
let tableMade = false;

afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
  if (tableMade) {
    spawnSync('nft', ['delete', 'table', 'ip', TABLE]);
    tableMade = false;
  }
});

export interface Forger {
  /** Sends `buf` to 127.0.0.1:`port`, seeming to come from the forged address. */
  send(buf: Buffer, port: number): void;
}

/**
 * A sender whose datagrams seem to come from `from`: an IPv4 loopback address and port, or
 * 'many', a different address each time (127.0.3.1-250, cycling).
 */
export async function forger(from: { address: string; port: number } | 'many'): Promise<Forger> {
  const s = dgram.createSocket('udp4');
  sockets.push(s);
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const own = s.address().port;
  if (!tableMade) {
    execFileSync('nft', ['-f', '-'], { input: `table ip ${TABLE} {\n chain out {\n  type filter hook output priority -300; policy accept;\n }\n}\n` });
    tableMade = true;
  }
  const rewrite = from === 'many'
    ? ['ip', 'saddr', 'set', 'numgen', 'inc', 'mod', '250', 'map', `{ ${Array.from({ length: 250 }, (_, i) => `${i} : 127.0.3.${i + 1}`).join(', ')} }`]
    : ['ip', 'saddr', 'set', from.address, 'udp', 'sport', 'set', String(from.port)];
  execFileSync('nft', ['add', 'rule', 'ip', TABLE, 'out', 'udp', 'sport', String(own), ...rewrite]);
  return { send: (buf, port) => s.send(buf, port, '127.0.0.1') };
}
