/** The broker's counters: plain numbers, bumped on the hot path, read by stats (PROTOCOL.md §4.5). */
export interface BrokerCounters {
  datagramsIn: number;
  bytesIn: number;
  datagramsOut: number;
  bytesOut: number;
  mediaIn: number;
  controlIn: number;
  clientsExpired: number;
  producersExpired: number;
  sendErrors: number;
  /** ANNOUNCEs answered ID_TAKEN. */
  announcesRefused: number;
  /** HELLOs whose token was wrong or expired (answered with a new one). */
  tokensRefused: number;
  naksIn: number;
  /** Datagrams sent again on NAK; asked for but no longer held (or too old); refused over the budget. */
  retransmitsOut: number;
  retransmitsUnavailable: number;
  retransmitsThrottled: number;
  reportsIn: number;
  /**
   * Loss recovery on the uplink (PROTOCOL.md §3.6): NAKs sent to producers and the datagrams
   * they asked for (retries included); repairs received; gaps given up when the uplink's share
   * of the budget ran out.
   */
  uplinkNaksOut: number;
  uplinkNakked: number;
  uplinkRepairsIn: number;
  uplinkAbandoned: number;
  /** Frames not forwarded because the send queue was over its bound, and the datagrams not sent for them. */
  framesShed: number;
  datagramsShed: number;
  /** Of framesShed: shed because the broker was busy all the time (event-loop utilization over its bound). */
  framesShedBusy: number;
  /** Datagrams the system dropped in the broker's own receive buffers (Linux; from main.ts). */
  receiveBufferDrops: number;
  /** An edge: frames from the upstream link whose producer signature did not verify, never forwarded (PROTOCOL.md §5.5). */
  framesForgedUpstream: number;
  /** Dropped datagrams by reason: protocol error codes and FC_DROP_* codes. */
  readonly drops: Map<string, number>;
  countDrop(reason: string, n?: number): void;
  /** Requests of proven sessions answered with a refusal, by reason (REFUSED_* codes, PROTOCOL.md §5.4). */
  readonly refusals: Map<string, number>;
  countRefusal(reason: RefusalReason): void;
  snapshot(): Record<string, number>;
}

/** Why a proven session's request was refused (the ACK status and, for limits, which one). */
export type RefusalReason =
  | 'REFUSED_ID_TAKEN' | 'REFUSED_AUTH_FAILED' | 'REFUSED_SESSIONS' | 'REFUSED_PRODUCERS' | 'REFUSED_PRODUCERS_PER_IP'
  | 'REFUSED_CLIENTS' | 'REFUSED_SUBSCRIPTIONS_PER_CLIENT' | 'REFUSED_VIEWERS_PER_PRODUCER';

export function createCounters(): BrokerCounters {
  const drops = new Map<string, number>();
  const refusals = new Map<string, number>();
  return {
    datagramsIn: 0, bytesIn: 0, datagramsOut: 0, bytesOut: 0, mediaIn: 0, controlIn: 0,
    clientsExpired: 0, producersExpired: 0, sendErrors: 0, announcesRefused: 0, tokensRefused: 0,
    naksIn: 0, retransmitsOut: 0, retransmitsUnavailable: 0, retransmitsThrottled: 0, reportsIn: 0, framesShed: 0, datagramsShed: 0,
    uplinkNaksOut: 0, uplinkNakked: 0, uplinkRepairsIn: 0, uplinkAbandoned: 0, framesShedBusy: 0, receiveBufferDrops: 0, framesForgedUpstream: 0,
    drops,
    countDrop(reason, n = 1) {
      drops.set(reason, (drops.get(reason) ?? 0) + n);
    },
    refusals,
    countRefusal(reason) {
      refusals.set(reason, (refusals.get(reason) ?? 0) + 1);
    },
    snapshot() {
      const out: Record<string, number> = {
        datagramsIn: this.datagramsIn, bytesIn: this.bytesIn, datagramsOut: this.datagramsOut, bytesOut: this.bytesOut,
        mediaIn: this.mediaIn, controlIn: this.controlIn, clientsExpired: this.clientsExpired,
        producersExpired: this.producersExpired, sendErrors: this.sendErrors,
        announcesRefused: this.announcesRefused, tokensRefused: this.tokensRefused,
        naksIn: this.naksIn, retransmitsOut: this.retransmitsOut, retransmitsUnavailable: this.retransmitsUnavailable,
        retransmitsThrottled: this.retransmitsThrottled, reportsIn: this.reportsIn,
        uplinkNaksOut: this.uplinkNaksOut, uplinkNakked: this.uplinkNakked, uplinkRepairsIn: this.uplinkRepairsIn, uplinkAbandoned: this.uplinkAbandoned,
        framesShed: this.framesShed, datagramsShed: this.datagramsShed, framesShedBusy: this.framesShedBusy, receiveBufferDrops: this.receiveBufferDrops,
        framesForgedUpstream: this.framesForgedUpstream,
      };
      let dropped = 0;
      for (const [reason, n] of drops) {
        out[`drop.${reason}`] = n;
        dropped += n;
      }
      out.dropped = dropped;
      for (const [reason, n] of refusals) out[`refused.${reason}`] = n;
      return out;
    },
  };
}
