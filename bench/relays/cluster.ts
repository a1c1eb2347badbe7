import cluster from 'node:cluster';
import type { Registration } from './plain.ts';

/**
 * Relay kind baseline-cluster (issue 6: does a second core help?): `processes` baseline relays
 * share the one socket (node:cluster hands them the same handle), and the kernel gives each
 * datagram to one of them, which sends it to every subscriber. A registration is made known to
 * every worker before it is answered. This primary only forks and passes registrations on.
 */
export function clusterPrimary(processes: number): void {
  const workers = Array.from({ length: processes }, () => cluster.fork());
  const ports = new Set<number>();
  let listening = 0;
  const pending = new Map<string, { left: number; origin: number; reg: Registration }>();
  for (const w of workers) {
    w.on('message', (m: { listening?: number; register?: Registration; known?: string }) => {
      if (m.listening !== undefined) {
        ports.add(m.listening);
        if (++listening < workers.length) return;
        // One shared handle means one port; two would be two relays, not one on two cores.
        if (ports.size !== 1) {
          process.stderr.write(`baseline-cluster: workers listen on ${[...ports].join(', ')}, not one port\n`);
          for (const x of workers) x.kill('SIGKILL');
          process.exit(1);
        }
        process.stdout.write(`baseline listening on 127.0.0.1:${m.listening}\n`);
      }
      if (m.register !== undefined) {
        const key = `${m.register.address}:${m.register.port}:${m.register.id}`;
        pending.set(key, { left: workers.length, origin: m.register.origin, reg: m.register });
        for (const x of workers) x.send({ add: m.register, key });
      }
      if (m.known !== undefined) {
        const p = pending.get(m.known);
        if (p !== undefined && --p.left === 0) {
          pending.delete(m.known);
          workers.find((x) => x.id === p.origin)?.send({ answer: p.reg });
        }
      }
    });
  }
  process.on('SIGTERM', () => {
    for (const w of workers) w.kill('SIGKILL');
    process.exit(0);
  });
}
