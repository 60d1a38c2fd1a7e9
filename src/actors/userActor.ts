import { isDeepStrictEqual } from 'node:util';
import { createActor, type AnyActorScope, type AnyEventObject, type ExecutableActionObject, type SnapshotFrom } from 'xstate';
import { createPresenceMachine, initialContext, type Clock, type PresenceMachine } from './machine.js';
import { NO_DROPPED_DEVICES, deviceRecord } from './devices.js';
import { publicStatus } from './publicStatus.js';
import { storedSubscriptions } from './subscriptions.js';
import { TimerWheel } from './timerWheel.js';
import type { ActorEmitted, ActorKick, ActorReply, PresenceContext, PresenceEvent, UserStatus } from './types.js';

/** What one transition of a user actor did, for the host to persist and announce. */
export interface Transition {
  before: UserStatus;
  after: UserStatus;
  /** The state value after the transition, e.g. `online` or `{ offline: 'idle' }`. */
  state: unknown;
  context: PresenceContext;
  kicks: ActorKick[];
}

export interface StepResult extends Transition {
  reply?: ActorReply;
}

/** Timers as xstate's `SimulatedClock` offers them, so tests skip time. */
export interface TimerClock extends Clock {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}

/**
 * What an actor tells its host. One observer may serve every actor of a host (each call
 * names the actor), so a host holding many users does not keep closures per user.
 */
export interface ActorObserver {
  /** Called for transitions the actor makes on its own (timers), never for `step`. */
  onTimerTransition?(actor: UserActor, transition: Transition): void;
  /** Called for every event the machine processed, with the state before and after it (the live dashboard). */
  onProcessed?(actor: UserActor, processed: ProcessedEvent): void;
  /** Called when a timer's transition throws: there is no caller to throw to (the actor keeps its state from before). */
  onTimerError?(actor: UserActor, error: unknown): void;
}

/**
 * What a user actor is stored as and restored from: its state value and its context, plain
 * data that any node can read. Not xstate's `getPersistedSnapshot`: that adds `children` and
 * `historyValue`, always empty for this machine (it spawns nothing and has no history
 * states), and walks the whole context on every write, each subscription included, for
 * actor references this context never holds.
 */
export interface StoredSnapshot {
  value: unknown;
  context: PresenceContext;
}

export interface UserActorOptions {
  sdkAppID: number;
  userID: string;
  /** The time the machine reads; its timers too when it has `setTimeout` (a `SimulatedClock`). */
  clock?: Clock | TimerClock;
  /**
   * A snapshot from `persistedSnapshot()`, possibly taken on another node, or one that
   * xstate's `getPersistedSnapshot` wrote (an earlier version); not kept once restored.
   */
  snapshot?: StoredSnapshot;
  observer?: ActorObserver;
}

export interface ProcessedEvent {
  /** `LOGIN`, `HEARTBEAT`, … or `xstate.after.heartbeatTimeout…` for a timer. */
  event: string;
  from: unknown;
  to: unknown;
  context: PresenceContext;
}

type PresenceSnapshot = SnapshotFrom<PresenceMachine>;

interface DelayedEvent {
  event: AnyEventObject;
  id: string;
  delay?: number;
}

/**
 * A machine and the actor scope its transitions run in. xstate's `transition()` builds a new
 * (never started) actor and actor system for every call, which cost more than the transition
 * itself; the presence machine spawns nothing and defers nothing, so one inert scope per
 * machine serves every user, and it collects the actions each transition leaves to be done.
 */
interface PureMachine {
  machine: PresenceMachine;
  scope: AnyActorScope;
  /** The actions of the transition running now (transitions never nest). */
  actions: ExecutableActionObject[];
  /**
   * The state value a new user starts in, if its initial transitions leave nothing to do (no
   * timer armed, nothing emitted) and its context as they found it. They read only the empty
   * context every new user has, never who the user is, so they run once per machine; each new
   * actor is resolved at that value, which costs a fifth of running them again (a login storm
   * makes thousands of actors a second).
   */
  freshValue: unknown;
  /** A snapshot per state value, resolved once; see `UserActor.at`. */
  resolved: Map<string, PresenceSnapshot>;
}

const machines = new WeakMap<Clock, PureMachine>();

function machineFor(clock: Clock): PureMachine {
  let pure = machines.get(clock);
  if (!pure) {
    const machine = createPresenceMachine(clock);
    // Never started: it only stands for `self` in the scope, which nothing in the machine uses.
    const self = createActor(machine, { input: { sdkAppID: 0, userID: '' } });
    const actions: ExecutableActionObject[] = [];
    const scope: AnyActorScope = {
      self,
      id: '',
      sessionId: '',
      logger: () => undefined,
      defer: () => undefined,
      emit: () => undefined,
      system: self.system,
      stopChild: () => undefined,
      actionExecutor: (action) => void actions.push(action),
    };
    pure = { machine, scope, actions, freshValue: undefined, resolved: new Map() };
    const input = { sdkAppID: 0, userID: '' };
    const [probe, left] = collecting(pure, (probeScope) => machine.getInitialSnapshot(probeScope, input));
    if (leaveNothingToDo(left) && isDeepStrictEqual(probe.context, initialContext(input))) pure.freshValue = probe.value;
    machines.set(clock, pure);
  }
  return pure;
}

/**
 * The machine's snapshot at `value`, with a placeholder context: one object per state value,
 * shared by every actor in that state, as are its `_nodes`, `tags`, `children` and
 * `historyValue`, which xstate only ever replaces, never changes.
 */
function resolvedAt(pure: PureMachine, value: unknown): PresenceSnapshot {
  const key = stateKey(value);
  let snapshot = pure.resolved.get(key);
  if (!snapshot) {
    snapshot = pure.machine.resolveState({ value: value as never, context: PLACEHOLDER_CONTEXT });
    pure.resolved.set(key, snapshot);
  }
  return snapshot;
}

const PLACEHOLDER_CONTEXT = Object.freeze({}) as PresenceContext;

/**
 * `context` as one object literal, every field held in the object itself. xstate's `assign`
 * builds each new context by `Object.assign({}, …)`, which has room for four fields in the
 * object and puts the others in an array of their own: ~50 B more per user for as long as the
 * actor holds it.
 */
function compact(c: PresenceContext): PresenceContext {
  return {
    sdkAppID: c.sdkAppID,
    userID: c.userID,
    devices: c.devices,
    droppedDevices: c.droppedDevices,
    customStatus: c.customStatus,
    version: c.version,
    lastSeenAt: c.lastSeenAt,
    subscriptions: c.subscriptions,
    retentionDeadline: c.retentionDeadline,
    retentionMs: c.retentionMs,
    rateWindows: c.rateWindows,
    revokedAt: c.revokedAt,
  };
}

/** A state value as text, e.g. `online` or `offline(idle)`. */
function stateKey(value: unknown): string {
  if (typeof value === 'string') return value;
  let key = '';
  for (const name in value as Record<string, unknown>) key += `${name}(${stateKey((value as Record<string, unknown>)[name])})`;
  return key;
}

/** Whether `actions` are only timers armed and cancelled again: nothing emitted, nothing left scheduled. */
function leaveNothingToDo(actions: readonly ExecutableActionObject[]): boolean {
  const armed = new Set<string>();
  for (const action of actions) {
    if (action.type === 'xstate.raise' && (action.params as DelayedEvent).delay !== undefined) armed.add((action.params as DelayedEvent).id);
    else if (action.type === 'xstate.cancel') armed.delete((action.params as { sendId: string }).sendId);
    else return false;
  }
  return armed.size === 0;
}

/** Runs `run` in the machine's scope; returns its result and the actions it left. */
function collecting<T>(pure: PureMachine, run: (scope: AnyActorScope) => T): [T, ExecutableActionObject[]] {
  pure.actions.length = 0;
  const result = run(pure.scope);
  return [result, pure.actions.splice(0)];
}

const wheel = new TimerWheel();

/** The wall clock for the machine, and the process's one timer wheel for every actor's timers. */
const systemTimers: TimerClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => wheel.setTimeout(fn, ms),
  clearTimeout: (id) => wheel.clearTimeout(id),
};

const hasTimers = (clock: Clock | TimerClock): clock is TimerClock => typeof (clock as Partial<TimerClock>).setTimeout === 'function';

/** The timers to arm on `clock`: its own (a simulated clock's), else the process's timer wheel. */
export const timersOf = (clock: Clock | TimerClock): TimerClock => (hasTimers(clock) ? clock : systemTimers);

const NO_OBSERVER: ActorObserver = {};

/**
 * A user presence actor with a synchronous request API: `step` runs one event through
 * the machine and returns the reply and the status before and after it. It holds only its
 * context, its state's shared snapshot and its pending timers, and runs events through the
 * machine's pure transition function: a live xstate actor (its own actor system, mailbox,
 * listeners) cost about twice the memory per user. Transitions made by the actor's own timers are
 * reported to its observer's `onTimerTransition`.
 */
export class UserActor {
  private readonly pure: PureMachine;
  private readonly observer: ActorObserver;
  private readonly timers: TimerClock;
  /**
   * The machine's snapshot at this actor's state value, shared with every actor there
   * (`resolvedAt`); the actor's own snapshot is it with `context`. xstate's snapshot
   * object with its `tags` Set, `_nodes`, `children` and `historyValue`, and the status kept
   * beside it, cost ~540 B per user.
   */
  private at: PresenceSnapshot;
  private ctx: PresenceContext;
  /**
   * Pending delayed events as `[id, timer]` pairs in one flat list of its exact length (ids are
   * `xstate.after.…`): this machine arms one at a time, and a `Map` for it held ~60 B more.
   */
  private pending: readonly unknown[] | undefined;
  private stopped = false;

  constructor(options: UserActorOptions) {
    const clock = options.clock ?? systemTimers;
    this.pure = machineFor(clock);
    // Only the timer functions are used here (the machine reads `clock` itself): one shared object.
    this.timers = timersOf(clock);
    this.observer = options.observer ?? NO_OBSERVER;
    if (options.snapshot) {
      const stored = options.snapshot;
      const context = compact({
        ...stored.context,
        devices: deviceRecord(stored.context.devices),
        droppedDevices: stored.context.droppedDevices.length ? stored.context.droppedDevices : NO_DROPPED_DEVICES,
        subscriptions: storedSubscriptions(stored.context.subscriptions),
        // Snapshots written before actors kept the user's revocation have none.
        revokedAt: (stored.context as Partial<PresenceContext>).revokedAt ?? 0,
      });
      this.at = resolvedAt(this.pure, stored.value);
      this.ctx = context;
      // A stored snapshot carries no timers: re-entering the state re-arms them with the time left.
      this.step({ type: 'RESUME' });
    } else if (this.pure.freshValue !== undefined) {
      this.at = resolvedAt(this.pure, this.pure.freshValue);
      this.ctx = initialContext({ sdkAppID: options.sdkAppID, userID: options.userID });
    } else {
      const input = { sdkAppID: options.sdkAppID, userID: options.userID };
      const [snapshot, actions] = collecting(this.pure, (scope) => this.pure.machine.getInitialSnapshot(scope, input));
      this.at = resolvedAt(this.pure, snapshot.value);
      this.ctx = snapshot.context;
      this.run(actions);
    }
  }

  get context(): PresenceContext {
    return this.ctx;
  }

  get state(): unknown {
    return this.at.value;
  }

  get status(): UserStatus {
    return publicStatus(this.context);
  }

  step(event: PresenceEvent): StepResult {
    const before = this.status;
    const { reply, kicks } = this.process(event);
    const result: StepResult = this.collect(before, kicks);
    if (reply) result.reply = reply;
    return result;
  }

  /** A JSON-safe snapshot that a `UserActor` on any node can be restored from. */
  persistedSnapshot(): StoredSnapshot {
    return { value: this.state, context: this.ctx };
  }

  stop(): void {
    this.stopped = true;
    const pending = this.pending ?? [];
    for (let i = 1; i < pending.length; i += 2) this.timers.clearTimeout(pending[i]);
    this.pending = undefined;
  }

  private process(event: AnyEventObject): { reply?: ActorReply; kicks: ActorKick[] } {
    const from = this.state;
    const snapshot = { ...this.at, context: this.ctx };
    const [next, actions] = collecting(this.pure, (scope) => this.pure.machine.transition(snapshot, event as PresenceEvent, scope));
    this.at = resolvedAt(this.pure, next.value);
    if (next.context !== this.ctx) this.ctx = compact(next.context);
    const emitted = this.run(actions);
    this.observer.onProcessed?.(this, { event: event.type, from, to: this.state, context: this.ctx });
    return emitted;
  }

  /** Carries out what the machine asked for: its emitted events returned, its timers armed or cancelled. */
  private run(actions: ReadonlyArray<{ type: string; params?: unknown }>): { reply?: ActorReply; kicks: ActorKick[] } {
    let reply: ActorReply | undefined;
    const kicks: ActorKick[] = [];
    for (const action of actions) {
      if (action.type === 'xstate.emit') {
        const emitted = (action.params as { event: ActorEmitted }).event;
        if (emitted.type === 'reply') reply = emitted;
        else kicks.push(emitted);
      } else if (action.type === 'xstate.raise') {
        const delayed = action.params as DelayedEvent;
        // A raise without delay was handled inside the transition.
        if (delayed.delay !== undefined) this.schedule(delayed);
      } else if (action.type === 'xstate.cancel') {
        this.cancel((action.params as { sendId: string }).sendId);
      }
    }
    return reply ? { reply, kicks } : { kicks };
  }

  private schedule({ event, id, delay }: DelayedEvent): void {
    if (this.stopped) return;
    this.cancel(id);
    const timer = this.timers.setTimeout(() => {
      this.forget(id);
      if (this.stopped) return;
      const before = this.status;
      let kicks: ActorKick[];
      try {
        ({ kicks } = this.process(event));
      } catch (error) {
        this.observer.onTimerError?.(this, error);
        return;
      }
      this.observer.onTimerTransition?.(this, this.collect(before, kicks));
    }, delay!);
    this.pending = this.pending ? [...this.pending, id, timer] : [id, timer];
  }

  private cancel(id: string): void {
    const timer = this.forget(id);
    if (timer !== undefined) this.timers.clearTimeout(timer);
  }

  /** Takes the timer of `id` out of the pending list; returns it, or undefined if none is pending. */
  private forget(id: string): unknown {
    const pending = this.pending;
    if (!pending) return undefined;
    for (let at = 0; at < pending.length; at += 2) {
      if (pending[at] !== id) continue;
      this.pending = pending.length === 2 ? undefined : pending.filter((_, i) => i !== at && i !== at + 1);
      return pending[at + 1];
    }
    return undefined;
  }

  private collect(before: UserStatus, kicks: ActorKick[]): Transition {
    const after = this.status;
    return { before, after, state: this.state, context: this.context, kicks };
  }
}
