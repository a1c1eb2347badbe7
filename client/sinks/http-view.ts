import { readFileSync } from 'node:fs';
import http from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import { formatProducerId, parseProducerId } from '../../protocol/ids.ts';
import { wavHeader } from '../../protocol/wav.ts';
import type { CompletedFrame } from '../../protocol/reassembler.ts';
import type { FramecastClient } from '../client.ts';
import type { Subscription } from '../subscription.ts';

const PAGE = readFileSync(new URL('./view.html', import.meta.url));
const BOUNDARY = 'framecastframe';
const FIGURES_INTERVAL_MS = 1000;

/** The latest frame of a subscription, and when its producer sent it (estimated; see #sentAt). */
interface Latest {
  readonly frame: CompletedFrame;
  /** The multipart part header for it, made once and shared by every viewer. */
  readonly head: Buffer;
}

/** One HTTP response being fed a live stream (MJPEG parts, or audio chunks). */
interface Viewer {
  readonly res: http.ServerResponse;
  /** Waiting for 'drain': the response cannot take more, so what comes meanwhile is skipped. */
  blocked: boolean;
  sent: number;
  skipped: number;
}

/** Per producer ID: who watches, who listens, the latest frame, the clock estimate. */
class Channel {
  readonly video = new Set<Viewer>();
  readonly audio = new Set<Viewer>();
  latest: Latest | null = null;
  /** Least transit seen in this run (arrival minus media timestamp): the producer's clock in ours. */
  minTransitMs = Infinity;
  epoch = -1;
}

/**
 * The client's HTTP view (node:http only): a page showing each subscription live with its
 * figures, Motion-JPEG streams as IP cameras serve them (multipart/x-mixed-replace, each part
 * with Content-Type, Content-Length and X-Timestamp), the latest frame as a snapshot, a live
 * WAV, and a JSON API to read figures and to subscribe. A viewer that cannot keep up skips to
 * the next whole frame: each response holds at most one frame beyond its socket's buffer.
 */
export class HttpView {
  readonly #client: FramecastClient;
  readonly #server: http.Server;
  readonly #channels = new Map<number, Channel>();
  readonly #events = new Set<http.ServerResponse>();
  #eventsTimer: NodeJS.Timeout | null = null;
  /** Skips of viewers that have gone, so the total never goes down. */
  #skippedGone = 0;
  #url = '';

  constructor(client: FramecastClient) {
    this.#client = client;
    this.#server = http.createServer((req, res) => this.#handle(req, res));
    client.on('frame', (sub, frame) => this.#onFrame(sub, frame));
    client.on('audio', (sub, chunk) => this.#onAudio(sub, chunk));
    client.on('closed', (sub) => this.#onClosed(sub.id));
  }

  /** Listens on host:port (0: any free port); resolves with the page's URL. */
  async listen(host: string, port: number): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    const a = this.#server.address() as AddressInfo;
    const shown = a.address === '0.0.0.0' || a.address === '::' ? '127.0.0.1' : a.address;
    this.#url = `http://${isIP(shown) === 6 ? `[${shown}]` : shown}:${a.port}/`;
    this.#eventsTimer = setInterval(() => this.#pushFigures(), FIGURES_INTERVAL_MS);
    this.#eventsTimer.unref();
    return this.#url;
  }

  get url(): string {
    return this.#url;
  }

  get listening(): boolean {
    return this.#server.listening;
  }

  /** Live responses, what they skipped, and the most any of them holds unsent. */
  get figures(): { viewers: number; listeners: number; skipped: number; bufferedBytes: number; maxBufferedBytes: number } {
    let viewers = 0;
    let listeners = 0;
    let skipped = this.#skippedGone;
    let buffered = 0;
    let most = 0;
    for (const ch of this.#channels.values()) {
      for (const v of [...ch.video, ...ch.audio]) {
        skipped += v.skipped;
        buffered += v.res.writableLength;
        most = Math.max(most, v.res.writableLength);
      }
      viewers += ch.video.size;
      listeners += ch.audio.size;
    }
    return { viewers, listeners, skipped, bufferedBytes: buffered, maxBufferedBytes: most };
  }

  close(): void {
    if (this.#eventsTimer !== null) clearInterval(this.#eventsTimer);
    for (const res of this.#events) res.end();
    for (const ch of this.#channels.values()) for (const v of [...ch.video, ...ch.audio]) v.res.end();
    this.#server.close();
    this.#server.closeAllConnections();
  }

  #channel(id: number): Channel {
    let ch = this.#channels.get(id);
    if (ch === undefined) this.#channels.set(id, (ch = new Channel()));
    return ch;
  }

  /**
   * When the producer sent a frame, on this machine's wall clock: its media timestamp plus the
   * least transit seen in the run (as an RTP receiver without sender reports does). The frame
   * that crossed fastest counts as sent the moment it arrived, so the delay shown leaves out
   * that frame's own transit (well under a millisecond between processes on one machine).
   */
  #sentAt(ch: Channel, frame: CompletedFrame): number {
    if (frame.epoch !== ch.epoch) {
      ch.epoch = frame.epoch;
      ch.minTransitMs = Infinity;
    }
    ch.minTransitMs = Math.min(ch.minTransitMs, frame.firstSeenMs - frame.timestampMs);
    return performance.timeOrigin + frame.timestampMs + ch.minTransitMs;
  }

  #onFrame(sub: Subscription, frame: CompletedFrame): void {
    const ch = this.#channel(sub.id);
    const sentAt = this.#sentAt(ch, frame);
    const head = Buffer.from(`--${BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: ${frame.data.length}\r\n` +
      `X-Timestamp: ${frame.timestampMs}\r\nX-Frame: ${frame.frameNo}\r\nX-Sent-At: ${sentAt.toFixed(1)}\r\n\r\n`);
    ch.latest = { frame, head };
    for (const v of ch.video) this.#feed(v, head, frame.data, CRLF);
  }

  #onAudio(sub: Subscription, chunk: CompletedFrame): void {
    const ch = this.#channels.get(sub.id);
    if (ch === undefined) return;
    for (const v of ch.audio) this.#feed(v, chunk.data);
  }

  /** Writes whole or not at all: a response still draining skips this one. */
  #feed(v: Viewer, ...parts: Buffer[]): void {
    if (v.blocked) {
      v.skipped++;
      return;
    }
    let ok = true;
    for (const p of parts) ok = v.res.write(p);
    v.sent++;
    if (!ok) {
      v.blocked = true;
      v.res.once('drain', () => {
        v.blocked = false;
      });
    }
  }

  #onClosed(id: number): void {
    const ch = this.#channels.get(id);
    if (ch === undefined) return;
    for (const v of [...ch.video, ...ch.audio]) v.res.end();
    this.#channels.delete(id);
  }

  #subscription(id: number): Subscription | undefined {
    const sub = this.#client.subscriptions.get(id);
    return sub?.active === true ? sub : undefined;
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    // DNS rebinding: a page elsewhere must not reach this through a name it controls.
    const host = (req.headers.host ?? '').replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
    if (host !== 'localhost' && isIP(host) === 0) return plain(res, 403, 'forbidden: address this page by IP address or localhost');
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'POST' && (path === '/api/subscribe' || path === '/api/unsubscribe')) return void this.#change(req, res, path === '/api/subscribe');
    if (req.method !== 'GET' && req.method !== 'HEAD') return plain(res, 405, `${req.method} is not served here`);
    if (path === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': PAGE.length, 'Cache-Control': 'no-cache' });
      return void res.end(PAGE);
    }
    if (path === '/api/stats') return json(res, 200, this.#figures());
    if (path === '/api/list') return void this.#list(res);
    if (path === '/events') return this.#openEvents(req, res);
    const m = /^\/(stream|snapshot|audio)\/([^/]+)\.(mjpg|jpg|wav)$/.exec(path);
    const kind = m === null ? null : `${m[1]}.${m[3]}`;
    if (m === null || (kind !== 'stream.mjpg' && kind !== 'snapshot.jpg' && kind !== 'audio.wav')) return plain(res, 404, `not found: ${path} (try /)`);
    const id = parseProducerId(m[2]);
    const sub = id === null ? undefined : this.#subscription(id);
    if (id === null || sub === undefined) return plain(res, 404, `not subscribed to ${m[2]}: subscribe to it first (page, prompt, or POST /api/subscribe)`);
    if (kind === 'snapshot.jpg') {
      const latest = this.#channels.get(id)?.latest;
      if (latest == null) return plain(res, 404, `no frame of ${formatProducerId(id)} yet`);
      res.writeHead(200, { 'Content-Type': 'image/jpeg', 'Content-Length': latest.frame.data.length, 'Cache-Control': 'no-cache', 'X-Timestamp': latest.frame.timestampMs });
      return void res.end(latest.frame.data);
    }
    if (kind === 'stream.mjpg') return this.#openStream(id, req, res);
    return this.#openAudio(id, sub, req, res);
  }

  #openStream(id: number, req: http.IncomingMessage, res: http.ServerResponse): void {
    res.writeHead(200, { 'Content-Type': `multipart/x-mixed-replace; boundary=${BOUNDARY}`, 'Cache-Control': 'no-cache, no-store', Pragma: 'no-cache' });
    const ch = this.#channel(id);
    const v: Viewer = { res, blocked: false, sent: 0, skipped: 0 };
    ch.video.add(v);
    // The picture at once: the latest whole frame, then each new one.
    if (ch.latest !== null) this.#feed(v, ch.latest.head, ch.latest.frame.data, CRLF);
    this.#release(req, res, () => {
      ch.video.delete(v);
      this.#skippedGone += v.skipped;
    });
  }

  #openAudio(id: number, sub: Subscription, req: http.IncomingMessage, res: http.ServerResponse): void {
    const a = sub.metadata?.audio ?? null;
    // A WAV whose sizes say "as long as it goes": browsers and ffplay play it as it arrives.
    const header = a === null ? null : wavHeader(a.codec, a.sampleRate, a.channels, 0x7fff_f000);
    if (a === null || header === null) return plain(res, 404, `${formatProducerId(id)} has no audio that WAV can carry`);
    res.writeHead(200, { 'Content-Type': 'audio/wav', 'Cache-Control': 'no-cache, no-store' });
    res.write(header);
    const ch = this.#channel(id);
    const v: Viewer = { res, blocked: false, sent: 0, skipped: 0 };
    ch.audio.add(v);
    this.#release(req, res, () => {
      ch.audio.delete(v);
      this.#skippedGone += v.skipped;
    });
  }

  /** Frees a live response's place as soon as the browser goes (tab closed, reader gone). */
  #release(req: http.IncomingMessage, res: http.ServerResponse, free: () => void): void {
    let freed = false;
    const once = (): void => {
      if (freed) return;
      freed = true;
      free();
    };
    req.socket.setNoDelay(true);
    res.once('close', once);
    res.once('error', once);
  }

  #openEvents(req: http.IncomingMessage, res: http.ServerResponse): void {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
    res.write(`data: ${JSON.stringify(this.#figures())}\n\n`);
    this.#events.add(res);
    this.#release(req, res, () => this.#events.delete(res));
  }

  #pushFigures(): void {
    if (this.#events.size === 0) return;
    const line = `data: ${JSON.stringify(this.#figures())}\n\n`;
    // Figures are small and once a second; a browser that does not read them is dropped.
    for (const res of this.#events) if (res.writableLength < 65_536) res.write(line); else res.destroy();
  }

  /** What /api/stats and the page show: each subscription's figures, and the view's own. */
  #figures(): object {
    const now = performance.now();
    return {
      subscriptions: [...this.#client.subscriptions.values()].filter((s) => s.active).map((s) => {
        const f = s.summary;
        const latest = this.#channels.get(s.id)?.latest ?? null;
        return {
          id: formatProducerId(s.id),
          title: s.metadata?.title ?? null,
          width: s.metadata?.video.width ?? null,
          height: s.metadata?.video.height ?? null,
          state: s.waiting === 'broker' ? 'waiting for the broker' : s.waiting === 'producer' ? 'not live yet' : s.online ? 'live' : 'offline',
          fps: Number(s.fps.toFixed(1)),
          kbps: Math.round(s.kbps),
          frames: f.frames,
          framesDropped: f.framesDropped,
          lossPct: f.packetsExpected === 0 ? 0 : Number(((100 * f.packetsLost) / f.packetsExpected).toFixed(2)),
          retransmits: f.retransmitsReceived,
          jitterMs: Number(f.jitterMs.toFixed(1)),
          lastFrame: latest?.frame.frameNo ?? null,
          lastHeardS: s.lastHeardMs === 0 ? null : Number(((now - s.lastHeardMs) / 1000).toFixed(1)),
        };
      }),
      view: this.figures,
    };
  }

  async #list(res: http.ServerResponse): Promise<void> {
    const r = await this.#client.list();
    if (r === null) return json(res, 504, { error: 'the broker did not answer' });
    json(res, 200, { producers: r.producers.map((p) => ({ id: formatProducerId(p.id), online: p.online, viewers: p.viewers, title: p.metadata.title })), truncated: r.truncated });
  }

  /**
   * Subscribe or unsubscribe from the page. JSON only: a form on another site cannot send
   * application/json without the browser asking first, and nothing here answers that question.
   */
  async #change(req: http.IncomingMessage, res: http.ServerResponse, subscribe: boolean): Promise<void> {
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) return plain(res, 415, 'send {"id":"1AAA99"} as application/json');
    let body = '';
    for await (const chunk of req) {
      body += chunk;
      if (body.length > 1024) return plain(res, 413, 'request too large');
    }
    let text: unknown;
    try {
      text = (JSON.parse(body) as { id?: unknown }).id;
    } catch {
      return plain(res, 400, 'send {"id":"1AAA99"}');
    }
    const id = typeof text === 'string' ? parseProducerId(text) : null;
    if (id === null) return plain(res, 400, `'${String(text).slice(0, 16)}' is not a producer ID: use 1 to 8 hex digits, e.g. 1AAA99`);
    const r = subscribe ? await this.#client.subscribe(id) : await this.#client.unsubscribe(id);
    json(res, r.ok || ('waiting' in r && r.waiting === true) ? 200 : 409, r.ok ? { ok: true } : { ok: false, message: r.message });
  }
}

const CRLF = Buffer.from('\r\n');

function plain(res: http.ServerResponse, status: number, line: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-cache' });
  res.end(`${line}\n`);
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
