import { execFileSync, spawnSync } from 'node:child_process';

/** Whether this run may build network namespaces (root, iproute2, a writable /run/netns), and why not. */
const root = process.getuid?.() === 0;
const hasIp = spawnSync('ip', ['-V']).status === 0;
/** Listing namespaces needs no privilege; creating one does (CAP_NET_ADMIN, a writable /run/netns). */
function probeNetns(): boolean {
  const probe = `fcprobe${process.pid}`;
  const ok = spawnSync('ip', ['netns', 'add', probe]).status === 0;
  if (ok) spawnSync('ip', ['netns', 'del', probe]);
  return ok;
}
export const canNetns = root && hasIp && probeNetns();
export const whyNoNetns = !root ? 'not root' : !hasIp ? 'iproute2 (ip) is not installed' : 'cannot create network namespaces here';

export function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'pipe' });
}
