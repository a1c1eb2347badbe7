/** When the broker counts as overloaded (PROTOCOL.md §3.5, §5.4). */
export interface LoadLimits {
  /** Share of the time the thread may be busy (event-loop utilization, 0-1). */
  readonly maxBusyShare: number;
  /** Bytes that may wait unread in the fullest receive buffer. */
  readonly maxBacklogBytes: number;
}

/**
 * Overload without collapse (PROTOCOL.md §3.5): from how busy the broker's thread was and how
 * much waits unread in its receive buffers, the share of frames to shed whole, so that it
 * forwards what it can and no more. The share forwarded is cut by a fifth while overloaded and
 * grown by a twentieth (and a little) once the backlog has drained: it hovers just under what
 * the broker can send, whatever the load. Pure: told the load every few tens of milliseconds,
 * asked at every frame's first fragment.
 */
export class LoadGovernor {
  readonly #limits: LoadLimits;
  #overloaded = false;
  #shedShare = 0;
  /** Frames owed to shedding: shed frames are spread evenly over every producer's. */
  #credit = 0;
  #busyShare = 0;
  #backlogBytes = 0;

  constructor(limits: LoadLimits) {
    this.#limits = limits;
  }

  /** Whether the broker is overloaded now: no NAK answers, no repairs asked for (the loss is its own). */
  get overloaded(): boolean {
    return this.#overloaded;
  }
  /** The share of frames being shed (0-1). */
  get shedShare(): number {
    return this.#shedShare;
  }
  get busyShare(): number {
    return this.#busyShare;
  }
  get backlogBytes(): number {
    return this.#backlogBytes;
  }

  /**
   * The load over the last interval: `busyShare` 0-1, and the bytes waiting unread in the
   * fullest receive buffer, or null where the system does not tell (the busy share alone decides).
   */
  update(busyShare: number, backlogBytes: number | null): void {
    const o = this.#limits;
    this.#busyShare = busyShare;
    this.#backlogBytes = backlogBytes ?? 0;
    const busy = busyShare > o.maxBusyShare;
    const over = backlogBytes === null ? busy : busy && backlogBytes > o.maxBacklogBytes;
    const under = backlogBytes === null ? busyShare < 0.8 * o.maxBusyShare : !busy || backlogBytes < o.maxBacklogBytes / 4;
    this.#overloaded = over;
    const forward = 1 - this.#shedShare;
    if (over) this.#shedShare = 1 - forward * 0.8;
    else if (under) this.#shedShare = Math.max(0, 1 - Math.min(1, forward * 1.05 + 0.002));
    if (this.#shedShare === 0) this.#credit = 0;
  }

  /** Whether the frame starting now is to be shed. Allocates nothing (it runs on the hot path). */
  shedNext(): boolean {
    if (this.#shedShare === 0) return false;
    this.#credit += this.#shedShare;
    if (this.#credit < 1) return false;
    this.#credit -= 1;
    return true;
  }
}
