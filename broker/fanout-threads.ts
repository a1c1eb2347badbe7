import { Worker } from 'node:worker_threads';
import type { Fanout, RemoteInfo } from './broker.ts';
import { allocateRing, RingEntryKind, RingWriter } from './fanout-ring.ts';
import type { FanoutWorkerData, OpenFailure, ReceivedDatagram } from './fanout-worker.ts';

export interface FanoutThreadsOptions {
  readonly threads: number;
  readonly type: 'udp4' | 'udp6';
  /** The broker's address and port: every fan-out socket is bound to them (replies come from one port). */
  readonly host: string;
  readonly port: number;
  readonly socketBufferBytes: number;
  /** Entries the ring holds (a power of two) and its payload bytes. */
  readonly ringSlots?: number;
  readonly ringBytes?: number;
  /** What the fan-out threads' sockets receive: the clients' control traffic, for the broker. */
  readonly onDatagram: (msg: Buffer, rinfo: RemoteInfo) => void;
  /** A thread failed or ended after it started: its clients get nothing more. */
  readonly onFailure: (err: Error) => void;
  /** A client's socket could not be opened on its thread (`client` is address:port). */
  readonly onOpenFailure: (client: string, error: string) => void;
}

const EMPTY = new Uint8Array(0);

/**
 * Worker threads that send media for the broker (`--fanout-threads`, docs/SCALING.md). The main
 * thread keeps every state and decision; it writes each forwarded datagram once into a shared
 * ring, with the changes to who watches what in the same order, and each thread sends to its
 * share of the clients. A client belongs to the thread with the fewest when it is validated.
 */
export class FanoutThreads implements Fanout {
  readonly #writer: RingWriter;
  readonly #ringBytes: number;
  readonly #workers: Worker[];
  readonly #clients: number[];
  readonly #threadOf = new Map<number, number>();
  /** Changes the ring had no room for, in order; written before any further media. */
  readonly #held: { kind: RingEntryKind; channel: number; peer: number; target: number; payload: Uint8Array }[] = [];
  #retry: NodeJS.Timeout | undefined;
  #nextPeer = 1;
  #stopping = false;

  private constructor(o: FanoutThreadsOptions, writer: RingWriter, workers: Worker[], ringBytes: number) {
    this.#writer = writer;
    this.#ringBytes = ringBytes;
    this.#workers = workers;
    this.#clients = workers.map(() => 0);
    for (const w of workers) {
      w.on('message', (m: ReceivedDatagram | OpenFailure) => {
        if ('failed' in m) o.onOpenFailure(m.failed, m.error);
        else o.onDatagram(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength), m);
      });
      w.on('error', (err) => o.onFailure(err));
      w.on('exit', (code) => {
        if (!this.#stopping) o.onFailure(new Error(`fan-out thread ${w.threadId} ended with code ${code}`));
      });
    }
  }

  /** Starts the threads and resolves once each is ready to read the ring. */
  static async start(o: FanoutThreadsOptions): Promise<FanoutThreads> {
    const ringBytes = o.ringBytes ?? 16 * 1024 * 1024;
    const memory = allocateRing({ readers: o.threads, slots: o.ringSlots ?? 16_384, bytes: ringBytes });
    const writer = new RingWriter(memory);
    // A worker thread does not inherit tsx's loader in Node 20: it registers it, then loads its module.
    const tsx = import.meta.resolve('tsx/esm/api');
    const self = new URL('./fanout-worker.ts', import.meta.url).href;
    const boot = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(self)}); }).then((m) => m.runFanoutWorker())`;
    const workers = Array.from({ length: o.threads }, (_, index) => {
      const workerData: FanoutWorkerData = {
        memory, index, type: o.type, host: o.host, port: o.port, socketBufferBytes: o.socketBufferBytes, reportIntervalMs: 5, arenaBytes: 1024 * 1024,
      };
      return new Worker(boot, { eval: true, workerData, name: `fanout-${index}` });
    });
    try {
      await Promise.all(workers.map((w) => new Promise<void>((resolve, reject) => {
        w.once('error', reject);
        w.once('exit', (code) => reject(new Error(`fan-out thread exited with code ${code} while starting`)));
        w.once('message', () => resolve());
      })));
    } catch (err) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw err;
    }
    return new FanoutThreads(o, writer, workers, ringBytes);
  }

  open(address: string, port: number): number {
    const peer = this.#nextPeer;
    this.#nextPeer = (this.#nextPeer + 1) | 0 || 1;
    let t = 0;
    for (let i = 1; i < this.#clients.length; i++) if (this.#clients[i] < this.#clients[t]) t = i;
    this.#clients[t]++;
    this.#threadOf.set(peer, t);
    this.#change(RingEntryKind.OPEN, 0, peer, Buffer.from(`${port} ${address}`, 'latin1'));
    return peer;
  }

  close(peer: number): void {
    const t = this.#threadOf.get(peer);
    if (t === undefined) return;
    this.#change(RingEntryKind.CLOSE, 0, peer, EMPTY);
    this.#threadOf.delete(peer);
    this.#clients[t]--;
  }

  subscribe(channel: number, peer: number): void {
    this.#change(RingEntryKind.SUBSCRIBE, channel, peer, EMPTY);
  }

  unsubscribe(channel: number, peer: number): void {
    this.#change(RingEntryKind.UNSUBSCRIBE, channel, peer, EMPTY);
  }

  /** False when the ring has no room: the broker counts the datagram as shed. */
  publish(channel: number, msg: Buffer): boolean {
    return (this.#held.length === 0 || this.#flush()) && this.#writer.write(RingEntryKind.MEDIA, channel, 0, -1, msg);
  }

  /**
   * What shedding counts (PROTOCOL.md §3.5): the threads' sockets' queues, as for the main socket,
   * and the ring's backlog once it passes half the ring. A backlog is the normal state of a
   * hand-over: counted from its first byte, 1 MiB of 8 KiB datagrams (128, a few milliseconds of a
   * thread's time) shed frames the thread would have sent moments later.
   */
  queuedBytes(): number {
    const unread = this.#writer.unreadBytes();
    return this.#writer.queuedBytes() + (unread > this.#ringBytes / 2 ? unread : 0);
  }

  /** Send errors counted by the threads (a gone client's ICMP errors). */
  sendErrors(): number {
    return this.#writer.sendErrors();
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    clearInterval(this.#retry);
    await Promise.all(this.#workers.map((w) => w.terminate()));
  }

  #change(kind: RingEntryKind, channel: number, peer: number, payload: Uint8Array): void {
    const target = this.#threadOf.get(peer);
    if (target === undefined) return;
    if (this.#held.length === 0 && this.#writer.write(kind, channel, peer, target, payload)) return;
    // A thread is so far behind that the ring is full: keep the change, in order, and try again.
    this.#held.push({ kind, channel, peer, target, payload });
    this.#retry ??= setInterval(() => this.#flush(), 10).unref();
  }

  /** Writes held changes while there is room; true when none are left. */
  #flush(): boolean {
    while (this.#held.length > 0) {
      const e = this.#held[0];
      if (!this.#writer.write(e.kind, e.channel, e.peer, e.target, e.payload)) return false;
      this.#held.shift();
    }
    clearInterval(this.#retry);
    this.#retry = undefined;
    return true;
  }
}
