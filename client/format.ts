import { formatProducerId } from '../protocol/ids.ts';
import type { ProducerInfo, StreamMetadata } from '../protocol/metadata.ts';
import type { Subscription } from './subscription.ts';

export function describeMetadata(m: StreamMetadata): string {
  const v = m.video;
  const audio = m.audio === null ? 'no audio' : `${m.audio.codec} ${m.audio.sampleRate} Hz`;
  return `'${m.title}' ${v.codec} ${v.width}x${v.height} @ ${v.fps} fps, ${audio}${m.encrypted === true ? ', encrypted' : ''}`;
}

export function formatList(producers: readonly ProducerInfo[], truncated: boolean): string {
  if (producers.length === 0) return 'no producers are live';
  const rows = producers.map((p) =>
    `  ${formatProducerId(p.id).padEnd(8)} ${(p.online ? 'online' : 'offline').padEnd(7)} ${String(p.viewers).padStart(3)} viewer${p.viewers === 1 ? ' ' : 's'}  ${describeMetadata(p.metadata)}`);
  return [`${producers.length} producer${producers.length === 1 ? '' : 's'}:`, ...rows, ...(truncated ? ['  (more not shown: the reply was full)'] : [])].join('\n');
}

/** One line of figures for a subscription. */
export function formatStatus(s: Subscription, nowMs: number): string {
  const f = s.summary;
  const lossPct = f.packetsExpected === 0 ? 0 : (100 * f.packetsLost) / f.packetsExpected;
  const heard = s.lastHeardMs === 0 ? 'never' : `${((nowMs - s.lastHeardMs) / 1000).toFixed(1)} s ago`;
  if (s.waiting === 'broker') return `${formatProducerId(s.id)}: waiting for the broker to answer (asking again until it does)`;
  if (s.waiting === 'producer') return `${formatProducerId(s.id)}: not live yet (asking the broker again until it is)`;
  return `${formatProducerId(s.id)}: ${s.online ? '' : '[offline] '}${s.fps.toFixed(1)} fps ${s.kbps.toFixed(0)} kbit/s, ` +
    `frames ${f.frames} complete ${f.framesDropped} dropped, packets ${f.packetsReceived} lost ${f.packetsLost} (${lossPct.toFixed(2)}%) ` +
    `resent ${f.retransmitsReceived}, jitter ${f.jitterMs.toFixed(1)} ms, ` +
    `audio ${f.audioChunks} chunks, last heard ${heard}`;
}

export function formatBrokerStats(stats: Readonly<Record<string, number>>): string {
  const keys = ['producers', 'clients', 'subscriptions', 'datagramsIn', 'datagramsOut', 'bytesIn', 'bytesOut', 'retransmitsOut', 'uplinkRepairsIn', 'framesShed', 'framesShedBusy', 'receiveBufferDrops', 'dropped'];
  const main = keys.filter((k) => k in stats).map((k) => `${k} ${stats[k]}`).join(', ');
  const drops = Object.keys(stats).filter((k) => k.startsWith('drop.')).map((k) => `${k.slice(5)} ${stats[k]}`).join(', ');
  return `broker: ${main}${drops ? ` (${drops})` : ''}`;
}
