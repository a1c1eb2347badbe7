import type { NakMessage } from '../protocol/codec.ts';
import { MessageType, Track } from '../protocol/constants.ts';
import { mediaEpoch, mediaFragCount, mediaFragIndex, mediaSeq } from '../protocol/media-header.ts';
import type { Channel } from './channel.ts';
import type { BrokerCounters } from './counters.ts';

/** What uplink repair needs of the broker. */
export interface UplinkDeps {
  /** Sends a NAK within the producer's session. */
  readonly sendNak: (ch: Channel, nak: NakMessage) => void;
  /** Whether the channel's producer is online in a live session, and watched. */
  readonly wanted: (ch: Channel) => boolean;
  /** Overloaded: the loss is the broker's own, and asking for more would only add to it. */
  readonly paused: () => boolean;
}

/**
 * Loss recovery on the uplink (PROTOCOL.md §3.6, "Every hop heals"): the broker as the
 * receiver of each producer's seqs. A new gap is asked of the producer at once; retries and the
 * lost last fragments of a frame are asked for by `tick`, every few milliseconds; a gap is given
 * up after the uplink's share of the latency budget (each channel's trackers hold it).
 */
export class UplinkRepair {
  /** Channels with gaps still being asked for. */
  readonly #repairing = new Set<Channel>();
  readonly #budgetMs: number;
  readonly #counters: BrokerCounters;
  readonly #deps: UplinkDeps;

  constructor(budgetMs: number, counters: BrokerCounters, deps: UplinkDeps) {
    this.#budgetMs = budgetMs;
    this.#counters = counters;
    this.#deps = deps;
  }

  /** Notes a producer's checked MEDIA datagram of `track` against the gaps in its seqs. */
  record(ch: Channel, msg: Buffer, track: number, now: number): void {
    const gaps = ch.uplink[track];
    const rtt = gaps.record(mediaEpoch(msg), mediaSeq(msg), now, mediaFragIndex(msg), mediaFragCount(msg));
    if (rtt >= 0) ch.sampleUplinkRtt(rtt);
    if (gaps.missingCount === 0) return;
    this.#repairing.add(ch);
    if (gaps.gapOpened) this.#nak(ch, now);
  }

  /** Asks again for what is still missing; does nothing while no gap is open. */
  tick(now: number): void {
    for (const ch of this.#repairing) {
      if (!this.#deps.wanted(ch)) {
        ch.uplink[0].restart();
        ch.uplink[1].restart();
      } else {
        this.#nak(ch, now);
      }
      if (ch.uplink[0].missingCount === 0 && ch.uplink[1].missingCount === 0) this.#repairing.delete(ch);
    }
  }

  /** One NAK per track with gaps due, retried after about a round trip (1.5 × the measured NAK-to-repair time). */
  #nak(ch: Channel, now: number): void {
    if (this.#deps.paused()) return;
    const rtt = ch.uplinkRttMs;
    const retryMs = Math.min(this.#budgetMs / 2, rtt < 0 ? 20 : Math.max(10, 1.5 * rtt + 5));
    const c = this.#counters;
    for (const track of [Track.VIDEO, Track.AUDIO]) {
      const gaps = ch.uplink[track];
      const abandoned = gaps.abandoned;
      const nakked = gaps.nakked;
      const ranges = gaps.due(now, retryMs);
      c.uplinkAbandoned += gaps.abandoned - abandoned;
      if (ranges === null || gaps.epoch === null) continue;
      c.uplinkNaksOut++;
      c.uplinkNakked += gaps.nakked - nakked;
      this.#deps.sendNak(ch, { type: MessageType.NAK, producerId: ch.id, requestId: 0, epoch: gaps.epoch, track, ranges });
    }
  }
}
