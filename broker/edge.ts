import type { AckDetail, NoticeMessage, ReceiverReportMessage, SubscribeMessage } from '../protocol/codec.ts';
import { MessageType, NoticeEvent, Status } from '../protocol/constants.ts';
import { FrameGate } from '../protocol/frame-gate.ts';
import { FrameOpener } from '../protocol/frame-seal.ts';
import type { Channel } from './channel.ts';
import type { BrokerContext } from './handlers/context.ts';
import { handleSubscribe } from './handlers/subscribe.ts';
import type { PeerSession } from './sessions.ts';
import type { UpstreamLink } from './upstream.ts';

/**
 * An edge's side of its upstream brokers (PROTOCOL.md §5.5), beside the broker's handlers: the
 * SUBSCRIBEs that wait for upstream, what upstream answers and notices, the channels it feeds,
 * and the receiver reports that carry the edge's audience up the tree. Its MEDIA takes the
 * broker's fan-out path (Broker.feedUpstream).
 */
export class EdgeFeeds {
  readonly #ctx: BrokerContext;
  readonly #upstream: UpstreamLink;
  /** SUBSCRIBEs waiting for the upstream broker's answer, by producer ID. */
  readonly #waiting = new Map<number, { s: PeerSession; m: SubscribeMessage }[]>();

  constructor(ctx: BrokerContext, upstream: UpstreamLink) {
    this.#ctx = ctx;
    this.#upstream = upstream;
  }

  /** A SUBSCRIBE for an ID not carried here waits for the upstream broker's answer; true: it is handled. */
  ask(s: PeerSession, m: SubscribeMessage): boolean {
    const ctx = this.#ctx;
    if (ctx.clientOf(s, m) === null) return true; // refused, answered
    const waiting = this.#waiting.get(m.producerId) ?? [];
    // A retry of the same request replaces it; a session waits once per ID, for as many IDs as it may subscribe to.
    const kept = waiting.filter((w) => w.s !== s);
    if (kept.length === waiting.length) {
      let asked = 0;
      for (const list of this.#waiting.values()) for (const w of list) if (w.s === s) asked++;
      if (asked + (s.client?.subscriptions.size ?? 0) >= ctx.options.maxSubscriptionsPerClient) {
        ctx.refuse('REFUSED_SUBSCRIPTIONS_PER_CLIENT', s, m, Status.LIMIT_REACHED, { message: `at most ${ctx.options.maxSubscriptionsPerClient} subscriptions per client` });
        return true;
      }
    }
    if (waiting.length === 0 && this.#waiting.size >= ctx.options.maxProducers) {
      ctx.ack(s, m, Status.LIMIT_REACHED, { message: `the broker carries at most ${ctx.options.maxProducers} producers` });
      return true;
    }
    kept.push({ s, m });
    this.#waiting.set(m.producerId, kept);
    this.#upstream.want(m.producerId);
    return true;
  }

  /**
   * The upstream broker accepted our subscription to `id`. The channel is fed from upstream from
   * now on, with the run the upstream broker named; what waited for it is answered.
   */
  accepted(id: number, detail: AckDetail): void {
    const ctx = this.#ctx;
    let ch = ctx.channels.get(id);
    const p = ch?.producer ?? null;
    if (p !== null && p.session !== null) {
      // A producer announced it here meanwhile: it wins; the upstream subscription goes.
      this.#upstream.release(id);
      return this.#answer(id, null);
    }
    if (detail.metadata === undefined || detail.epoch === undefined || detail.frameKey === undefined) return this.#answer(id, Status.UNKNOWN_PRODUCER);
    if (ch === undefined) {
      if (ctx.channels.size >= ctx.options.maxProducers) {
        this.#upstream.release(id);
        return this.#answer(id, Status.LIMIT_REACHED);
      }
      ch = ctx.newChannel(id);
      ctx.channels.set(id, ch);
    }
    const now = ctx.now();
    const newRun = p === null || p.epoch !== detail.epoch || !p.frameKey.equals(detail.frameKey);
    if (newRun) this.#newRun(ch, detail.frameKey);
    ch.producer = {
      session: null, metadata: detail.metadata, epoch: detail.epoch, frameKey: detail.frameKey,
      lastHeardMs: now, mediaSinceSweep: false, online: p?.online ?? false, offlineSinceMs: p?.offlineSinceMs ?? now,
    };
    ch.unwatchedSinceMs = 0;
    const online = detail.online !== false;
    if (online && (newRun || !ch.producer.online)) ctx.setOnline(ch);
    else if (!online && ch.producer.online) ctx.setOffline(ch, NoticeEvent.PRODUCER_OFFLINE, 'goodbye');
    this.#answer(id, null);
  }

  /**
   * No upstream broker carries `id` now. What waited for it hears so; its clients ask again as
   * they do of any broker, and only their asking makes the edge ask upstream again: an ID nobody
   * here watches is not asked for (a client cannot make the edge ask on its behalf after it has gone).
   */
  notLive(id: number): void {
    this.#answer(id, Status.UNKNOWN_PRODUCER);
    if (this.#ctx.channels.get(id)?.producer == null) this.#upstream.release(id);
  }

  /** The upstream broker refused `id` (a limit): so is what waited for it. */
  refused(id: number, status: Status): void {
    this.#answer(id, status);
    const ch = this.#ctx.channels.get(id);
    if (ch?.producer?.session === null) this.drop(ch);
  }

  /** A NOTICE from the upstream broker about a channel it feeds, passed on to the viewers here. */
  notice(m: NoticeMessage): void {
    const ch = this.#ctx.channels.get(m.producerId);
    const p = ch?.producer;
    if (ch === undefined || p == null || p.session !== null) return;
    if (m.event === NoticeEvent.PRODUCER_ONLINE) {
      if (m.epoch !== p.epoch || !m.frameKey.equals(p.frameKey)) {
        this.#newRun(ch, m.frameKey);
        p.epoch = m.epoch;
        p.frameKey = m.frameKey;
      }
      p.lastHeardMs = this.#ctx.now();
      this.#ctx.setOnline(ch);
    } else if (p.online) {
      this.#ctx.setOffline(ch, m.event, 'goodbye');
    }
  }

  /**
   * Receiver reports to the upstream brokers, one per stream (PROTOCOL.md §4.11): the edge's own
   * link's loss, and the audience it serves, so that counts add up through a tree of brokers.
   * main.ts sends them about once a second.
   */
  reports(): ReceiverReportMessage[] {
    const out: ReceiverReportMessage[] = [];
    for (const ch of this.#ctx.channels.values()) {
      if (ch.producer?.session !== null || ch.gate === null) continue;
      const expected = ch.upstreamLoss[0].expected + ch.upstreamLoss[1].expected;
      const lost = ch.upstreamLoss[0].lost + ch.upstreamLoss[1].lost;
      const de = expected - ch.upstreamReported.expected;
      const dl = lost - ch.upstreamReported.lost;
      ch.upstreamReported = { expected, lost };
      out.push({
        type: MessageType.RECEIVER_REPORT, producerId: ch.id, requestId: 0,
        fractionLost: de <= 0 || dl <= 0 ? 0 : Math.min(255, Math.floor((dl * 256) / de)), cumulativeLost: lost, expected, jitterUs: 0,
        framesComplete: ch.gate.counters.framesReleased, framesDropped: ch.gate.counters.framesExpired, retransmitsReceived: 0,
        audience: this.#ctx.audience(ch),
      });
    }
    return out;
  }

  /** Nobody here has watched an upstream channel for the linger: the upstream subscription and the channel go. */
  drop(ch: Channel): void {
    this.#upstream.release(ch.id);
    ch.clearCache();
    this.#ctx.channels.delete(ch.id);
  }

  /** The SUBSCRIBEs that waited for the upstream broker, answered as they would be now. */
  #answer(id: number, status: Status | null): void {
    const waiting = this.#waiting.get(id);
    if (waiting === undefined) return;
    this.#waiting.delete(id);
    for (const { s, m } of waiting) {
      if (!this.#ctx.sessionLive(s)) continue;
      if (status === null) handleSubscribe(this.#ctx, m, s);
      else this.#ctx.ack(s, m, status);
    }
  }

  /** A new run of an upstream channel: its frames verify with the new key only. */
  #newRun(ch: Channel, frameKey: Buffer): void {
    ch.clearCache(); // the old gate's held datagrams with it, counted as discarded
    const opener = new FrameOpener({ frameKey, encrypted: false, passKey: null });
    ch.gate = new FrameGate({
      holdMs: this.#ctx.options.latencyMs, maxBytes: this.#ctx.options.maxCacheBytesPerProducer, verify: (f, sealed) => opener.verify(f, sealed),
      // Received, counted in datagramsIn, and never to be forwarded: each counted once more, as a drop.
      discarded: (n) => this.#ctx.counters.countDrop('FC_DROP_UNVERIFIED_FRAME', n),
    });
  }
}
