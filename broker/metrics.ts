import http from 'node:http';
import { monitorEventLoopDelay, performance as nodePerformance } from 'node:perf_hooks';
import { formatProducerId } from '../protocol/ids.ts';
import type { Broker } from './broker.ts';

/**
 * The broker's figures for Prometheus (text exposition format 0.0.4): a `framecast_` prefix,
 * base units (bytes, seconds, ratios), `_total` counters, and no per-connection labels: the
 * producer ID is the only one, besides the reason of a drop or refusal (a fixed set of codes).
 */
interface Family {
  readonly name: string;
  readonly type: 'counter' | 'gauge';
  readonly help: string;
  readonly samples: readonly { readonly labels?: Readonly<Record<string, string>>; readonly value: number }[];
}

/** Counters of BrokerCounters by metric: name, help, and the field it reads. */
const COUNTERS: readonly (readonly [string, string, string])[] = [
  ['datagrams_received_total', 'UDP datagrams received', 'datagramsIn'],
  ['received_bytes_total', 'Bytes received in UDP datagrams', 'bytesIn'],
  ['datagrams_sent_total', 'UDP datagrams sent (media to every subscriber, control, retransmissions)', 'datagramsOut'],
  ['sent_bytes_total', 'Bytes sent in UDP datagrams', 'bytesOut'],
  ['media_datagrams_received_total', 'MEDIA datagrams taken from producers', 'mediaIn'],
  ['control_datagrams_received_total', 'Control datagrams taken within sessions', 'controlIn'],
  ['send_errors_total', 'Sends the system refused', 'sendErrors'],
  ['clients_expired_total', 'Client sessions ended by their lease', 'clientsExpired'],
  ['producers_expired_total', 'Producers marked offline by their lease', 'producersExpired'],
  ['naks_received_total', 'NAKs from subscribers', 'naksIn'],
  ['retransmissions_sent_total', 'Datagrams sent again on a subscriber NAK', 'retransmitsOut'],
  ['retransmissions_unavailable_total', 'Datagrams asked for that were no longer held', 'retransmitsUnavailable'],
  ['retransmissions_throttled_total', 'Datagrams asked for over the repair budget', 'retransmitsThrottled'],
  ['uplink_naks_sent_total', 'NAKs sent to producers for gaps in their streams', 'uplinkNaksOut'],
  ['uplink_repairs_received_total', 'Repairs received from producers', 'uplinkRepairsIn'],
  ['uplink_gaps_abandoned_total', 'Gaps in producers\' streams given up unrepaired', 'uplinkAbandoned'],
  ['frames_shed_total', 'Frames not forwarded: send queue full or the broker overloaded', 'framesShed'],
  ['frames_shed_busy_total', 'Frames not forwarded because the broker was overloaded', 'framesShedBusy'],
  ['upstream_frames_forged_total', 'Frames from the upstream broker whose signature did not verify, not forwarded (edge)', 'framesForgedUpstream'],
  ['datagrams_shed_total', 'Datagrams not sent for shed frames', 'datagramsShed'],
  ['receive_buffer_drops_total', 'Datagrams the system dropped in the broker\'s full receive buffers', 'receiveBufferDrops'],
];

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function render(families: readonly Family[]): string {
  const lines: string[] = [];
  for (const f of families) {
    lines.push(`# HELP framecast_${f.name} ${f.help}`, `# TYPE framecast_${f.name} ${f.type}`);
    for (const s of f.samples) {
      const labels = s.labels === undefined ? '' : `{${Object.entries(s.labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`;
      lines.push(`framecast_${f.name}${labels} ${Number.isFinite(s.value) ? s.value : 0}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** What a scrape reads: the broker's counters and tables, and this process's own figures. */
export class BrokerMetrics {
  readonly #broker: Broker;
  readonly #lag = monitorEventLoopDelay({ resolution: 10 });
  #elu = nodePerformance.eventLoopUtilization();

  constructor(broker: Broker) {
    this.#broker = broker;
    this.#lag.enable();
  }

  /** The exposition text; event-loop figures are since the previous scrape. */
  text(): string {
    const b = this.#broker;
    const c = b.counters as unknown as Record<string, number>;
    const families: Family[] = COUNTERS.map(([name, help, field]) => ({ name, type: 'counter', help, samples: [{ value: c[field] }] }));
    families.push(
      { name: 'datagrams_dropped_total', type: 'counter', help: 'Datagrams dropped, by reason (PROTOCOL.md §6)', samples: [...b.counters.drops].map(([reason, value]) => ({ labels: { reason }, value })) },
      { name: 'requests_refused_total', type: 'counter', help: 'Requests of proven sessions refused, by reason', samples: [...b.counters.refusals].map(([reason, value]) => ({ labels: { reason }, value })) },
      { name: 'producers', type: 'gauge', help: 'Producers online', samples: [{ value: b.producerCount }] },
      { name: 'clients', type: 'gauge', help: 'Clients with a session', samples: [{ value: b.clientCount }] },
      { name: 'sessions', type: 'gauge', help: 'Sessions open (producers and clients)', samples: [{ value: b.sessionCount }] },
      { name: 'subscriptions', type: 'gauge', help: 'Subscriptions, all producers together', samples: [{ value: b.subscriptionCount }] },
      { name: 'cache_bytes', type: 'gauge', help: 'Bytes held by the instant-join caches', samples: [{ value: b.cacheUsage.bytes }] },
      { name: 'shed_ratio', type: 'gauge', help: 'Share of frames being shed because the broker is overloaded', samples: [{ value: b.shedShare }] },
    );
    const producers = b.producerFigures().sort((x, y) => x.id - y.id);
    const quality = b.subscriberQuality();
    const by = (id: number) => quality.filter((q) => q.producer === id);
    const mean = (xs: readonly number[]): number => (xs.length === 0 ? 0 : xs.reduce((s, x) => s + x, 0) / xs.length);
    const per = (f: (p: (typeof producers)[number]) => number) => producers.map((p) => ({ labels: { producer: formatProducerId(p.id) }, value: f(p) }));
    families.push(
      { name: 'producer_online', type: 'gauge', help: 'Whether the producer is live (1) or offline (0)', samples: per((p) => (p.online ? 1 : 0)) },
      { name: 'producer_viewers', type: 'gauge', help: 'Subscribers of the producer', samples: per((p) => p.viewers) },
      { name: 'producer_bits_per_second', type: 'gauge', help: 'The producer\'s stream as received, over the last second', samples: per((p) => Math.round(p.bitsPerSecond)) },
      { name: 'producer_loss_ratio', type: 'gauge', help: 'Mean loss its subscribers reported over their last report interval (before recovery)', samples: per((p) => mean(by(p.id).map((q) => q.lossPct / 100))) },
      { name: 'producer_jitter_seconds', type: 'gauge', help: 'Mean interarrival jitter its subscribers reported (RFC 3550)', samples: per((p) => mean(by(p.id).map((q) => q.jitterMs / 1000))) },
    );
    const cpu = process.cpuUsage();
    const elu = nodePerformance.eventLoopUtilization(this.#elu);
    this.#elu = nodePerformance.eventLoopUtilization();
    const lagP99 = this.#lag.count > 0 ? this.#lag.percentile(99) / 1e9 : 0;
    this.#lag.reset();
    families.push(
      { name: 'process_cpu_seconds_total', type: 'counter', help: 'CPU time of the broker process, user and system', samples: [{ value: (cpu.user + cpu.system) / 1e6 }] },
      { name: 'process_resident_memory_bytes', type: 'gauge', help: 'Resident memory of the broker process', samples: [{ value: process.memoryUsage.rss() }] },
      { name: 'event_loop_lag_seconds', type: 'gauge', help: '99th percentile of the event loop\'s delay since the previous scrape', samples: [{ value: lagP99 }] },
      { name: 'event_loop_utilization_ratio', type: 'gauge', help: 'Share of the time the event loop was busy since the previous scrape', samples: [{ value: elu.utilization }] },
    );
    return render(families);
  }
}

/**
 * The broker's HTTP endpoints (node:http): `/metrics`, `/healthz` (the process answers) and
 * `/readyz` (it serves: started once the UDP socket is bound; 503 if asked while shutting down,
 * before the server has closed). Anything else: 404 with one plain line.
 */
export function serveMetrics(o: { host: string; port: number; metrics: BrokerMetrics; ready: () => boolean }): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const plain = (status: number, text: string, type = 'text/plain; charset=utf-8'): void => {
      res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
      res.end(text);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return plain(405, 'only GET\n');
    if (path === '/metrics') return plain(200, o.metrics.text(), 'text/plain; version=0.0.4; charset=utf-8');
    if (path === '/healthz') return plain(200, 'ok\n');
    if (path === '/readyz') return o.ready() ? plain(200, 'ready\n') : plain(503, 'not ready\n');
    plain(404, `no such page: ${path} (try /metrics, /healthz, /readyz)\n`);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
