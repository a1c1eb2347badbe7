import cluster from 'node:cluster';
import { clusterPrimary } from './relays/cluster.ts';
import { plainRelay } from './relays/plain.ts';
import { threadedRelay } from './relays/threads.ts';

/**
 * The benchmark's yardstick relays (issue 6), one process each (bench/run.ts starts them):
 * - no flag: plain node:dgram, receive and send the same Buffer to each subscriber (relays/plain.ts);
 * - --connected: the same with a connected socket per subscriber (relay kind connected);
 * - --processes N: N of them sharing one socket through node:cluster (baseline-cluster, relays/cluster.ts);
 * - --threads N: one receiving thread and N sending worker threads (baseline-threads, relays/threads.ts).
 */
const value = (flag: string): number => {
  const i = process.argv.indexOf(flag);
  return i > 0 ? Number(process.argv[i + 1]) : 1;
};
const processes = value('--processes');
const threads = value('--threads');

if (processes > 1 && cluster.isPrimary) clusterPrimary(processes);
else if (threads > 1) threadedRelay(threads);
else plainRelay(process.argv.includes('--connected'));
