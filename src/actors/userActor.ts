import { createActor, type Actor, type InspectionEvent, type Snapshot } from 'xstate';
import { createPresenceMachine, type Clock, type PresenceMachine } from './machine.js';
import { publicStatus } from './publicStatus.js';
import type { ActorKick, ActorReply, PresenceContext, PresenceEvent, UserStatus } from './types.js';

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

export interface UserActorOptions {
  sdkAppID: number;
  userID: string;
  clock?: Clock & { setTimeout?: unknown };
  /** A snapshot from `persistedSnapshot()`, possibly taken on another node. */
  snapshot?: Snapshot<unknown>;
  /** Called for transitions the actor makes on its own (timers), never for `step`. */
  onTimerTransition?: (transition: Transition) => void;
  inspect?: (event: InspectionEvent) => void;
}

const machines = new WeakMap<Clock, PresenceMachine>();

function machineFor(clock: Clock): PresenceMachine {
  let machine = machines.get(clock);
  if (!machine) {
    machine = createPresenceMachine(clock);
    machines.set(clock, machine);
  }
  return machine;
}

/**
 * A running user presence actor with a synchronous request API: `step` sends one
 * event and returns the reply and the status before and after it. Transitions made
 * by the actor's own timers are reported through `onTimerTransition`.
 */
export class UserActor {
  readonly key: string;
  private readonly actor: Actor<PresenceMachine>;
  private reply: ActorReply | undefined;
  private kicks: ActorKick[] = [];
  private stepping = false;
  private last: UserStatus;

  constructor(private readonly options: UserActorOptions) {
    const clock = options.clock ?? { now: () => Date.now() };
    this.key = `${options.sdkAppID}:${options.userID}`;
    this.actor = createActor(machineFor(clock), {
      input: { sdkAppID: options.sdkAppID, userID: options.userID },
      ...(options.snapshot ? { snapshot: options.snapshot } : {}),
      ...(options.clock?.setTimeout ? { clock: options.clock as never } : {}),
      ...(options.inspect ? { inspect: options.inspect } : {}),
    });
    this.last = publicStatus(this.context);
    this.actor.on('reply', (reply) => {
      this.reply = reply;
    });
    this.actor.on('kick', (kick) => {
      this.kicks.push(kick);
    });
    this.actor.subscribe(() => {
      if (!this.stepping) this.reportTimerTransition();
    });
    this.stepping = true;
    this.actor.start();
    this.stepping = false;
    // A restored snapshot has no pending timers: re-enter the state to re-arm them.
    if (options.snapshot) this.step({ type: 'RESUME' });
  }

  get context(): PresenceContext {
    return this.actor.getSnapshot().context;
  }

  get state(): unknown {
    return this.actor.getSnapshot().value;
  }

  get status(): UserStatus {
    return publicStatus(this.context);
  }

  step(event: PresenceEvent): StepResult {
    this.stepping = true;
    try {
      this.actor.send(event);
    } finally {
      this.stepping = false;
    }
    const result: StepResult = { ...this.collect() };
    if (this.reply) result.reply = this.reply;
    this.reply = undefined;
    return result;
  }

  /** A JSON-safe snapshot that a `UserActor` on any node can be restored from. */
  persistedSnapshot(): Snapshot<unknown> {
    return this.actor.getPersistedSnapshot();
  }

  stop(): void {
    this.actor.stop();
  }

  private collect(): Transition {
    const before = this.last;
    const after = publicStatus(this.context);
    this.last = after;
    const kicks = this.kicks;
    this.kicks = [];
    return { before, after, state: this.state, context: this.context, kicks };
  }

  private reportTimerTransition(): void {
    const transition = this.collect();
    this.options.onTimerTransition?.(transition);
  }
}
