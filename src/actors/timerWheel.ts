/**
 * Timers for many user actors on one Node timer. Each online user has a heartbeat deadline
 * pending, re-armed at every heartbeat; a Node `Timeout` per user held ~85 B more than an
 * entry here. Deadlines fall into slots of `slotMs`, and a timer fires at the first tick at or
 * after the end of its slot: never early, at most `slotMs` late; the timers of one slot fire in
 * the order they were set, whatever their times within it. The actor's own deadlines
 * are in its context, so a late timer finds them passed and acts on them as an on-time one.
 */
export interface WheelTimer {
  readonly fn: () => void;
  readonly slot: number;
}

/** What drives the wheel: a monotonic time in ms, a repeating tick, and where a timer's error goes (Node's, or a test's fakes). */
export interface WheelDriver {
  now(): number;
  every(ms: number, tick: () => void): { stop(): void };
  report(error: unknown): void;
}

const nodeDriver: WheelDriver = {
  // Monotonic, as Node's own timers are: a wall clock set back would hold every timer.
  now: () => performance.now(),
  every(ms, tick) {
    const interval = setInterval(tick, ms);
    // Pending actor timers alone do not keep a process alive; a node's server does.
    interval.unref();
    return { stop: () => clearInterval(interval) };
  },
  // As an error thrown by a Node timer would be: uncaught.
  report(error) {
    queueMicrotask(() => {
      throw error;
    });
  },
};

export class TimerWheel {
  private readonly slots = new Map<number, Set<WheelTimer>>();
  private size = 0;
  /**
   * Slot k holds the timers due in ((k-1)·slotMs, k·slotMs] and runs once the time reaches
   * k·slotMs. `done` is the last slot run; a timer due in it or before goes into the next one.
   */
  private done: number;
  private ticking: { stop(): void } | undefined;

  constructor(
    private readonly slotMs = 50,
    private readonly driver: WheelDriver = nodeDriver,
  ) {
    this.done = this.slotAt(driver.now());
  }

  setTimeout(fn: () => void, ms: number): WheelTimer {
    const now = this.driver.now();
    // Idle, the wheel ran no slot: start from now, not from the last timer's.
    if (this.size === 0) this.done = Math.max(this.done, this.slotAt(now));
    const slot = Math.max(Math.ceil((now + Math.max(0, ms)) / this.slotMs), this.done + 1);
    const timer: WheelTimer = { fn, slot };
    let timers = this.slots.get(slot);
    if (!timers) this.slots.set(slot, (timers = new Set()));
    timers.add(timer);
    if (this.size++ === 0) this.ticking = this.driver.every(this.slotMs, () => this.tick());
    return timer;
  }

  clearTimeout(id: unknown): void {
    const timer = id as WheelTimer;
    const timers = this.slots.get(timer.slot);
    if (!timers?.delete(timer)) return;
    if (timers.size === 0) this.slots.delete(timer.slot);
    this.forgotten(1);
  }

  /** Timers pending. */
  get pending(): number {
    return this.size;
  }

  private slotAt(ms: number): number {
    return Math.floor(ms / this.slotMs);
  }

  /** Runs every slot due by now, in order; a timer they set that is due already runs after them. */
  private tick(): void {
    const last = this.slotAt(this.driver.now());
    while (this.done < last && this.size > 0) {
      const slot = ++this.done;
      const timers = this.slots.get(slot);
      if (!timers) continue;
      this.slots.delete(slot);
      this.forgotten(timers.size);
      for (const timer of timers) {
        try {
          timer.fn();
        } catch (error) {
          // Reported once the slot's other timers ran.
          this.driver.report(error);
        }
      }
    }
  }

  private forgotten(count: number): void {
    this.size -= count;
    if (this.size === 0) {
      this.ticking?.stop();
      this.ticking = undefined;
    }
  }
}
