import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers/procs.ts';

/**
 * The Kubernetes manifests (deploy/kubernetes/), checked offline: every object against the
 * Kubernetes schema of its kind (kubernetes-models, the OpenAPI schemas as classes), and every
 * name one object uses of another (a Service's selector, a StatefulSet's service, the HPA's
 * target, the brokers' upstream names, the probes' ports) against the objects that exist.
 */
const DIR = join(ROOT, 'deploy', 'kubernetes');
const require = createRequire(import.meta.url);

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  items?: K8sObject[];
}
interface Container { name: string; args?: string[]; env?: { name: string; value?: string }[]; ports?: { name?: string; containerPort: number; protocol?: string }[]; readinessProbe?: { httpGet: { port: string | number } }; livenessProbe?: { httpGet: { port: string | number } } }
interface PodTemplate { metadata: { labels: Record<string, string> }; spec: { containers: Container[] } }

const objects: { file: string; o: K8sObject }[] = readdirSync(DIR).filter((f) => f.endsWith('.json')).sort().flatMap((file) => {
  const o = JSON.parse(readFileSync(join(DIR, file), 'utf8')) as K8sObject;
  return (o.kind === 'List' ? o.items! : [o]).map((x) => ({ file, o: x }));
});
const named = (kind: string, name: string) => objects.map((x) => x.o).find((o) => o.kind === kind && o.metadata.name === name);
const workloads = objects.map((x) => x.o).filter((o) => o.kind === 'StatefulSet' || o.kind === 'Deployment');
const template = (o: K8sObject) => (o.spec as { template: PodTemplate }).template;
const matches = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);

/** `framecast-origin-1.framecast-origins:5000` → the pod it names must exist: ordinal < replicas of a StatefulSet whose serviceName is that Service. */
function podNameExists(host: string): boolean {
  const [pod, service] = host.split(':')[0].split('.');
  return workloads.some((w) => {
    const spec = w.spec as { serviceName?: string; replicas?: number };
    const m = new RegExp(`^${w.metadata.name}-(\\d+)$`).exec(pod);
    return w.kind === 'StatefulSet' && m !== null && spec.serviceName === service && Number(m[1]) < (spec.replicas ?? 1) && named('Service', service) !== undefined;
  });
}

describe('Kubernetes manifests (deploy/kubernetes/)', () => {
  it('has the pieces: origins as a StatefulSet behind a headless Service, edges as a Deployment behind a UDP Service with externalTrafficPolicy Local, and an HPA for edges', () => {
    expect(named('StatefulSet', 'framecast-origin')).toBeDefined();
    expect((named('Service', 'framecast-origins')!.spec as { clusterIP: string }).clusterIP).toBe('None');
    expect(named('Deployment', 'framecast-edge')).toBeDefined();
    expect(named('Service', 'framecast-edge')!.spec).toMatchObject({ type: 'LoadBalancer', externalTrafficPolicy: 'Local', ports: [{ protocol: 'UDP', port: 5000 }] });
    expect(named('HorizontalPodAutoscaler', 'framecast-edge')).toBeDefined();
  });

  it.each(objects.map(({ file, o }) => [`${file}: ${o.kind} ${o.metadata.name}`, o] as const))('%s validates against the Kubernetes schema', (_name, o) => {
    const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : [null, o.apiVersion];
    const module = require(`kubernetes-models/${group === null ? '' : `${group}/`}${version}/${o.kind}`) as Record<string, new (x: unknown) => { validate(): void }>;
    const Model = module[o.kind] ?? module.default;
    expect(() => new Model(o).validate()).not.toThrow();
    expect(o.metadata.namespace === undefined || named('Namespace', o.metadata.namespace) !== undefined).toBe(true);
  });

  it('refers only to what exists: selectors, services, the HPA target, upstream and broker names, probe ports, the image', () => {
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/ENTRYPOINT \["node", "--import", "tsx"\]/); // what the args below run under
    for (const o of objects.map((x) => x.o)) {
      if (o.kind === 'Service') {
        const selector = (o.spec as { selector?: Record<string, string> }).selector ?? {};
        const backing = workloads.filter((w) => matches(selector, template(w).metadata.labels));
        expect(backing.length, `Service ${o.metadata.name} selects no workload`).toBe(1);
        for (const p of (o.spec as { ports?: { targetPort?: string }[] }).ports ?? []) {
          expect(template(backing[0]).spec.containers.some((c) => c.ports?.some((cp) => cp.name === p.targetPort)), `${o.metadata.name} targets port ${p.targetPort}`).toBe(true);
        }
      }
      if (o.kind === 'StatefulSet') expect(named('Service', (o.spec as { serviceName: string }).serviceName)).toBeDefined();
      if (o.kind === 'HorizontalPodAutoscaler') {
        const t = (o.spec as { scaleTargetRef: { kind: string; name: string } }).scaleTargetRef;
        expect(named(t.kind, t.name), `HPA target ${t.kind} ${t.name}`).toBeDefined();
      }
      if (o.kind !== 'StatefulSet' && o.kind !== 'Deployment') continue;
      const spec = o.spec as { selector: { matchLabels: Record<string, string> } };
      expect(matches(spec.selector.matchLabels, template(o).metadata.labels)).toBe(true);
      for (const c of template(o).spec.containers) {
        expect(['broker/main.ts', 'producer/main.ts', 'client/main.ts']).toContain(c.args?.[0]);
        const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));
        for (const list of [env.BROKER_UPSTREAM, env.BROKER_HOST]) {
          for (const host of list?.split(',') ?? []) expect(podNameExists(host), `${o.metadata.name}: ${host} names no pod`).toBe(true);
        }
        for (const probe of [c.readinessProbe, c.livenessProbe]) {
          if (probe !== undefined) expect(c.ports?.some((p) => p.name === probe.httpGet.port)).toBe(true);
        }
        const metrics = env.BROKER_METRICS;
        if (metrics !== undefined) expect(c.ports?.some((p) => p.name === 'metrics' && String(p.containerPort) === metrics.split(':')[1])).toBe(true);
        // The samples the producers name are in the image (the Dockerfile copies samples/*.mjpeg and *.wav).
        for (const f of [...(env.PRODUCER_VIDEO_FILES ?? '').split(','), ...(env.PRODUCER_AUDIO_FILES ?? '').split(',')].filter(Boolean)) {
          expect(() => readFileSync(join(ROOT, f))).not.toThrow();
        }
      }
    }
  });

  it('a manifest that breaks the schema is caught (the check can fail)', () => {
    const { Deployment } = require('kubernetes-models/apps/v1/Deployment') as { Deployment: new (x: unknown) => { validate(): void } };
    const edge = structuredClone(named('Deployment', 'framecast-edge')!);
    (template(edge).spec.containers[0].ports![0] as { containerPort: unknown }).containerPort = 'five thousand';
    expect(() => new Deployment(edge).validate()).toThrow(/containerPort/);
  });
});
