import type dgram from 'node:dgram';
import { parentPort, workerData } from 'node:worker_threads';
import { RingEntryKind, RingReader, type RingMemory } from './fanout-ring.ts';
import { openPeerSocket, type PeerSocket } from './peer-socket.ts';

/** What a fan-out thread is started with (fanout-threads.ts). */
export interface FanoutWorkerData {
  readonly memory: RingMemory;
  readonly index: number;
  readonly type: 'udp4' | 'udp6';
  readonly host: string;
  readonly port: number;
  readonly socketBufferBytes: number;
  /** Size of the chunks the thread copies datagrams into (CopyArena). */
  readonly arenaBytes: number;
  /** How often the sockets' queued bytes are summed for the main thread's shedding. */
  readonly reportIntervalMs: number;
}

/** A datagram one of this thread's sockets received, for the main thread's broker. */
export interface ReceivedDatagram {
  readonly address: string;
  readonly port: number;
  readonly data: Uint8Array;
}

/** A client's socket could not be bound or connected: it gets no media from this thread. */
export interface OpenFailure {
  readonly failed: string;
  readonly error: string;
}

/** A client of this thread: its socket, and the channels it watches (in their fan-out lists once the socket is ready). */
interface Client {
  readonly peer: PeerSocket;
  readonly channels: Set<number>;
}

/**
 * Room for the copies a thread sends: views into large chunks, handed out in turn and never
 * reused. A chunk is freed by the garbage collector once no copy in it is referenced (queued sends
 * hold theirs). Node's own pool does this only below 4 KiB; an 8 KiB datagram would otherwise cost
 * an allocation of its own, and the external memory pressure that comes with it.
 */
export class CopyArena {
  readonly #chunkBytes: number;
  #chunk: ArrayBuffer;
  #used = 0;

  constructor(chunkBytes: number) {
    this.#chunkBytes = chunkBytes;
    this.#chunk = new ArrayBuffer(chunkBytes);
  }

  /** `bytes` of uninitialised memory of its own. */
  take(bytes: number): Buffer {
    if (bytes > this.#chunkBytes >>> 2) return Buffer.allocUnsafeSlow(bytes);
    if (bytes > this.#chunkBytes - this.#used) {
      this.#chunk = new ArrayBuffer(this.#chunkBytes);
      this.#used = 0;
    }
    const b = Buffer.from(this.#chunk, this.#used, bytes);
    this.#used += (bytes + 7) & ~7; // 8-byte aligned, as Node's pool keeps them
    return b;
  }
}

/** Atomics.waitAsync (in V8 and Node 20; in TypeScript's lib from es2024 only). */
const waitAsync = (Atomics as unknown as {
  waitAsync(a: Int32Array, i: number, v: number): { async: false; value: string } | { async: true; value: Promise<string> };
}).waitAsync;

/**
 * A fan-out thread (docs/SCALING.md): holds its share of the clients, each with a socket bound to
 * the broker's port and connected to the client, and sends every MEDIA entry of the ring to its
 * subscribers of that channel, in ring order. Whatever those sockets receive (the clients'
 * heartbeats, NAKs, requests) goes to the main thread, which keeps all state.
 */
export function runFanoutWorker(): void {
  const d = workerData as FanoutWorkerData;
  const port = parentPort!;
  const reader = new RingReader(d.memory, d.index);
  const peers = new Map<number, Client>();
  /** Channel to the connected sockets of its subscribers here: the fan-out list. */
  const lists = new Map<number, dgram.Socket[]>();
  let sendErrors = 0;
  const copies = new CopyArena(d.arenaBytes);

  const join = (channel: number, s: dgram.Socket): void => {
    let list = lists.get(channel);
    if (list === undefined) lists.set(channel, (list = []));
    list.push(s);
  };
  const leave = (channel: number, s: dgram.Socket): void => {
    const list = lists.get(channel);
    const i = list?.indexOf(s) ?? -1;
    if (list === undefined || i < 0) return;
    list[i] = list[list.length - 1];
    list.pop();
    if (list.length === 0) lists.delete(channel);
  };

  const open = (id: number, text: string): void => {
    const space = text.indexOf(' ');
    const to = { port: Number(text.slice(0, space)), address: text.slice(space + 1) };
    const channels = new Set<number>();
    const peer = openPeerSocket({
      type: d.type, host: d.host, port: d.port, to,
      onMessage: (msg, rinfo) => {
        const data = new Uint8Array(msg); // a copy of its own, moved to the main thread
        port.postMessage({ address: rinfo.address, port: rinfo.port, data } satisfies ReceivedDatagram, [data.buffer]);
      },
      // A gone client's ICMP errors surface here: counted, never fatal. A socket that could not
      // be bound or connected would leave its client without media: the main thread hears of it.
      onError: (err, ready) => {
        if (ready) sendErrors++;
        else port.postMessage({ failed: `${to.address}:${to.port}`, error: err.message } satisfies OpenFailure);
      },
      onReady: () => {
        try {
          peer.socket.setSendBufferSize(d.socketBufferBytes);
        } catch {
          // the system's limit stays
        }
        for (const ch of channels) join(ch, peer.socket);
      },
    });
    peers.set(id, { peer, channels });
  };
  const close = (id: number): void => {
    const p = peers.get(id);
    if (p === undefined) return;
    peers.delete(id);
    if (p.peer.ready) for (const ch of p.channels) leave(ch, p.peer.socket);
    p.peer.close();
  };

  const drain = (): void => {
    for (let e = reader.next(); e !== null; e = reader.next()) {
      if (e.kind === RingEntryKind.MEDIA) {
        const list = lists.get(e.channel);
        if (list === undefined) {
          reader.done();
          continue;
        }
        // A copy per datagram (never per subscriber): a send the kernel cannot take at once is
        // queued and read later, by when the ring's slot may hold another datagram.
        const msg = copies.take(e.length);
        reader.data.copy(msg, 0, e.offset, e.offset + e.length);
        reader.done();
        for (let i = 0; i < list.length; i++) list[i].send(msg);
        continue;
      }
      if (e.target === d.index) {
        const client = peers.get(e.peer);
        switch (e.kind) {
          case RingEntryKind.OPEN: open(e.peer, reader.data.toString('latin1', e.offset, e.offset + e.length)); break;
          case RingEntryKind.CLOSE: close(e.peer); break;
          case RingEntryKind.SUBSCRIBE:
            if (client !== undefined && !client.channels.has(e.channel)) {
              client.channels.add(e.channel);
              if (client.peer.ready) join(e.channel, client.peer.socket);
            }
            break;
          case RingEntryKind.UNSUBSCRIBE:
            if (client !== undefined && client.channels.delete(e.channel) && client.peer.ready) leave(e.channel, client.peer.socket);
            break;
        }
      }
      reader.done();
    }
    const w = waitAsync(reader.control, 0, reader.position);
    if (w.async) void w.value.then(drain);
    else setImmediate(drain);
  };

  setInterval(() => {
    let queued = 0;
    for (const { peer } of peers.values()) if (peer.ready) queued += peer.socket.getSendQueueSize();
    reader.report(queued, sendErrors);
  }, d.reportIntervalMs);
  port.postMessage({ ready: true });
  drain();
}
