import dgram from 'node:dgram';
import { parentPort, Worker, workerData } from 'node:worker_threads';
import { mediaProducerId } from '../../protocol/media-header.ts';
import { REGISTER, REGISTERED } from '../wire.ts';
import type { Out } from './plain.ts';

/** The ring: SLOTS slots of SLOT_BYTES; a header of Int32s: [written count, then per slot its length]. */
const SLOTS = 4096;
const SLOT_BYTES = 9000;

/**
 * Relay kind baseline-threads (issue 6: does a second core help?): the main thread receives and
 * `threads` worker threads send, each to its share of the subscribers through a socket of its own
 * (an ephemeral port: this measures throughput only). The main thread copies each datagram into a
 * SharedArrayBuffer ring and wakes the workers; order per producer holds, as the broker would need.
 */
export function threadedRelay(threads: number): void {
  const data = new SharedArrayBuffer(SLOTS * SLOT_BYTES);
  const header = new SharedArrayBuffer(4 * (1 + SLOTS));
  const ring = Buffer.from(data);
  const meta = new Int32Array(header);
  // A worker thread does not inherit tsx's loader in Node 20: it registers it, then loads this file.
  const boot = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(import.meta.url)}); }).then((m) => m.ringWorker())`;
  const workers = Array.from({ length: threads }, () => new Worker(boot, { eval: true, workerData: { data, header } }));
  let next = 0;
  let written = 0;
  const socket = dgram.createSocket('udp4');
  /** Registrations sent to a worker and not yet known to it, by reference. */
  const pending = new Map<number, { port: number; address: string }>();
  for (const w of workers) {
    w.on('message', (m: { known: number }) => {
      const to = pending.get(m.known);
      if (to === undefined) return;
      pending.delete(m.known);
      socket.send(Buffer.from([REGISTERED]), to.port, to.address);
    });
  }
  socket.on('message', (msg, rinfo) => {
    if (msg[0] === REGISTER) {
      // Round robin over the workers; answered once that worker knows the subscriber.
      const w = workers[next % workers.length];
      pending.set(next, rinfo);
      w.postMessage({ ref: next++, id: msg.readUInt32BE(1), port: rinfo.port, address: rinfo.address });
      return;
    }
    if (msg.length > SLOT_BYTES) return;
    const slot = written % SLOTS;
    ring.set(msg, slot * SLOT_BYTES);
    meta[1 + slot] = msg.length;
    Atomics.store(meta, 0, ++written);
    Atomics.notify(meta, 0);
  });
  socket.bind(0, '127.0.0.1', () => {
    socket.setRecvBufferSize(4 * 1024 * 1024);
    process.stdout.write(`baseline listening on 127.0.0.1:${socket.address().port}\n`);
  });
  process.on('SIGTERM', () => process.exit(0));
}

/** Atomics.waitAsync (in V8 and Node 20; in TypeScript's lib from es2024 only). */
const waitAsync = (Atomics as unknown as {
  waitAsync(a: Int32Array, i: number, v: number): { async: false; value: string } | { async: true; value: Promise<string> };
}).waitAsync;

/** A worker thread of threadedRelay: sends what the ring holds to its subscribers, in order. */
export function ringWorker(): void {
  const { data, header } = workerData as { data: SharedArrayBuffer; header: SharedArrayBuffer };
  const ring = Buffer.from(data);
  const meta = new Int32Array(header);
  const socket = dgram.createSocket('udp4');
  const subscribers = new Map<number, Out[]>();
  let read = 0;
  parentPort!.on('message', (m: { ref: number; id: number; port: number; address: string }) => {
    const list = subscribers.get(m.id) ?? [];
    list.push({ port: m.port, address: m.address, socket: null });
    subscribers.set(m.id, list);
    parentPort!.postMessage({ known: m.ref });
  });
  const drain = (): void => {
    const written = Atomics.load(meta, 0);
    // A worker further behind than the ring lost what was overwritten: skip to what is left.
    if (written - read > SLOTS) read = written - SLOTS;
    for (; read < written; read++) {
      const slot = read % SLOTS;
      const msg = ring.subarray(slot * SLOT_BYTES, slot * SLOT_BYTES + meta[1 + slot]);
      const subs = subscribers.get(mediaProducerId(msg));
      if (subs === undefined) continue;
      for (let i = 0; i < subs.length; i++) socket.send(msg, subs[i].port, subs[i].address);
    }
    const w = waitAsync(meta, 0, written);
    if (w.async) void w.value.then(drain);
    else setImmediate(drain);
    // (A send that finds the kernel's buffer full is queued and reads its slot later: by then the
    // ring may have moved on. Good enough to measure throughput; the broker would need a bound.)
  };
  socket.bind(0, '127.0.0.1', () => {
    socket.setSendBufferSize(4 * 1024 * 1024);
    drain();
  });
}
