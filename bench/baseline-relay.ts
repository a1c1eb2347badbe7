import cluster from 'node:cluster';
import dgram from 'node:dgram';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { REGISTER, REGISTERED } from './wire.ts';

/**
 * The simplest possible Node relay, the benchmark's yardstick (issue 6): receive a datagram,
 * send the same Buffer to each subscriber of its producer, nothing else. Subscribers register
 * with [0xFF, producer ID (4 bytes)]. With --connected, each subscriber gets a socket of its own
 * bound to the same port (reuseAddr) and connected to it, so a send names no address.
 * With --processes N (relay kind baseline-cluster), N processes share the one socket (node:cluster
 * hands them the same handle): the kernel gives each datagram to one of them, which sends it to
 * every subscriber; a registration is made known to all before it is answered. This measures
 * whether a second core helps a relay (issue 6).
 * With --threads N (relay kind baseline-threads), the main thread receives and N worker threads
 * send, each to its share of the subscribers through a socket of its own (an ephemeral port: this
 * measures throughput only). The main thread copies each datagram into a SharedArrayBuffer ring
 * and wakes the workers; order per producer holds, as the broker would need.
 */
const connected = process.argv.includes('--connected');
const processesArg = process.argv.indexOf('--processes');
const processes = processesArg > 0 ? Number(process.argv[processesArg + 1]) : 1;
const threadsArg = process.argv.indexOf('--threads');
const threads = threadsArg > 0 ? Number(process.argv[threadsArg + 1]) : 1;
/** The ring: SLOTS slots of SLOT_BYTES; a header of Int32s: [written count, then per slot its length]. */
const SLOTS = 4096;
const SLOT_BYTES = 9000;
type Out = { port: number; address: string; socket: dgram.Socket | null };
type Registration = { id: number; port: number; address: string; origin: number };

if (processes > 1 && cluster.isPrimary) {
  const workers = Array.from({ length: processes }, () => cluster.fork({ RELAY_WORKER: '1' }));
  let listening = 0;
  const pending = new Map<string, { left: number; origin: number; reg: Registration }>();
  for (const w of workers) {
    w.on('message', (m: { listening?: number; register?: Registration; known?: string }) => {
      if (m.listening !== undefined && ++listening === workers.length) {
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
} else if (threads > 1 && isMainThread) {
  threadedRelay();
} else if (!isMainThread) {
  ringWorker();
} else {
  relay();
}

function threadedRelay(): void {
  const data = new SharedArrayBuffer(SLOTS * SLOT_BYTES);
  const header = new SharedArrayBuffer(4 * (1 + SLOTS));
  const ring = Buffer.from(data);
  const meta = new Int32Array(header);
  // A worker thread does not inherit tsx's loader in Node 20: it registers it, then loads this file.
  const boot = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(import.meta.url)}); })`;
  const workers = Array.from({ length: threads }, () => new Worker(boot, { eval: true, workerData: { data, header } }));
  let next = 0;
  let written = 0;
  const socket = dgram.createSocket('udp4');
  socket.on('message', (msg, rinfo) => {
    if (msg[0] === REGISTER) {
      // Round robin over the workers; answered once that worker knows the subscriber.
      const w = workers[next++ % workers.length];
      const onAck = (m: { known?: boolean }): void => {
        if (m.known !== true) return;
        w.off('message', onAck);
        socket.send(Buffer.from([REGISTERED]), rinfo.port, rinfo.address);
      };
      w.on('message', onAck);
      w.postMessage({ id: msg.readUInt32BE(1), port: rinfo.port, address: rinfo.address });
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

function ringWorker(): void {
  const { data, header } = workerData as { data: SharedArrayBuffer; header: SharedArrayBuffer };
  const ring = Buffer.from(data);
  const meta = new Int32Array(header);
  const socket = dgram.createSocket('udp4');
  const subscribers = new Map<number, Out[]>();
  let read = 0;
  parentPort!.on('message', (m: { id: number; port: number; address: string }) => {
    const list = subscribers.get(m.id) ?? [];
    list.push({ port: m.port, address: m.address, socket: null });
    subscribers.set(m.id, list);
    parentPort!.postMessage({ known: true });
  });
  const drain = (): void => {
    const written = Atomics.load(meta, 0);
    // A worker further behind than the ring lost what was overwritten: skip to what is left.
    if (written - read > SLOTS) read = written - SLOTS;
    for (; read < written; read++) {
      const slot = read % SLOTS;
      const msg = ring.subarray(slot * SLOT_BYTES, slot * SLOT_BYTES + meta[1 + slot]);
      const subs = subscribers.get(msg.readUInt32BE(4));
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

function relay(): void {
  const inCluster = cluster.isWorker;
  const socket = dgram.createSocket({ type: 'udp4', reuseAddr: connected });
  const subscribers = new Map<number, Out[]>();
  const forward = (msg: Buffer): void => {
    const subs = subscribers.get(msg.readUInt32BE(4));
    if (subs === undefined) return;
    if (connected) for (let i = 0; i < subs.length; i++) subs[i].socket!.send(msg);
    else for (let i = 0; i < subs.length; i++) socket.send(msg, subs[i].port, subs[i].address);
  };
  const add = (id: number, out: Out): void => {
    const list = subscribers.get(id) ?? [];
    list.push(out);
    subscribers.set(id, list);
  };
  const answer = (port: number, address: string): void => socket.send(Buffer.from([REGISTERED]), port, address);
  socket.on('message', (msg, rinfo) => {
    if (msg[0] !== REGISTER) return forward(msg);
    const id = msg.readUInt32BE(1);
    if (inCluster) {
      process.send!({ register: { id, port: rinfo.port, address: rinfo.address, origin: cluster.worker!.id } });
      return;
    }
    const out: Out = { port: rinfo.port, address: rinfo.address, socket: null };
    if (!connected) {
      add(id, out);
      return answer(rinfo.port, rinfo.address);
    }
    const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    s.on('message', (m) => { if (m[0] !== REGISTER) forward(m); });
    s.bind(socket.address().port, '127.0.0.1', () => s.connect(rinfo.port, rinfo.address, () => {
      s.setSendBufferSize(4 * 1024 * 1024);
      out.socket = s;
      add(id, out);
      answer(rinfo.port, rinfo.address);
    }));
  });
  if (inCluster) {
    process.on('message', (m: { add?: Registration; key?: string; answer?: Registration }) => {
      if (m.add !== undefined) {
        add(m.add.id, { port: m.add.port, address: m.add.address, socket: null });
        process.send!({ known: m.key });
      }
      if (m.answer !== undefined) answer(m.answer.port, m.answer.address);
    });
  }
  socket.bind(0, '127.0.0.1', () => {
    socket.setRecvBufferSize(4 * 1024 * 1024);
    socket.setSendBufferSize(4 * 1024 * 1024);
    if (inCluster) process.send!({ listening: socket.address().port });
    else process.stdout.write(`baseline listening on 127.0.0.1:${socket.address().port}\n`);
  });
  process.on('SIGTERM', () => process.exit(0));
}
