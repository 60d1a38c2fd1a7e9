import type { AnyStateMachine, AnyStateNode } from 'xstate';

/**
 * A neutral, JSON-ready description of a state machine, read from its state nodes so
 * that every rendering (mermaid, dot, svg, json) follows the machine and never a drawing.
 */
export interface Chart {
  /** The machine's id, which is also the id of its root state. */
  machine: string;
  /** Sorted, de-duplicated indexes of what the transitions refer to. */
  events: string[];
  guards: string[];
  delays: string[];
  /** Document order, root first, parents before their children. */
  states: ChartState[];
}

export interface ChartState {
  /** The xstate id (`presence.unlogined.idle`), which `#id` targets use. */
  id: string;
  key: string;
  type: 'atomic' | 'compound' | 'parallel' | 'final' | 'history';
  parent?: string;
  initial?: string;
  children: string[];
  entry: string[];
  exit: string[];
  /**
   * Grouped by trigger (events by name, then eventless, then delays by name); inside
   * a group the candidates keep the machine's order, since the first whose guard passes wins.
   */
  transitions: ChartTransition[];
}

export type Trigger = { event: string } | { always: true } | { after: string | number };

export type ChartTransition = Trigger & {
  /** `!a`, `a && b`, `a || b`; `inline` for an anonymous function. */
  guard?: string;
  /** Empty for a transition that only runs actions and leaves the state as it is. */
  targets: string[];
  /** Present when the state is left and entered again, which restarts its timers. */
  reenter?: true;
  actions: string[];
};

const AFTER_PREFIX = 'xstate.after.';

export function describeMachine(machine: AnyStateMachine): Chart {
  const states: ChartState[] = [];
  const guards = new Set<string>();
  const visit = (node: AnyStateNode): void => {
    states.push(describeState(node, guards));
    for (const child of Object.values(node.states) as AnyStateNode[]) visit(child);
  };
  visit(machine.root);

  const events = new Set<string>();
  const delays = new Set<string>();
  for (const transition of states.flatMap((state) => state.transitions)) {
    if ('event' in transition) events.add(transition.event);
    if ('after' in transition) delays.add(String(transition.after));
  }
  return { machine: machine.root.id, events: sorted(events), guards: sorted(guards), delays: sorted(delays), states };
}

function describeState(node: AnyStateNode, guards: Set<string>): ChartState {
  // xstate files delayed transitions under generated event names; only `after` knows the delay.
  const delayOf = new Map<string, string | number>();
  for (const delayed of node.after) delayOf.set(delayed.eventType, delayName(delayed.delay));

  const groups: Array<{ order: string; transitions: ChartTransition[] }> = [];
  for (const [eventType, candidates] of node.transitions) {
    const delay = delayOf.get(eventType) ?? (eventType.startsWith(AFTER_PREFIX) ? 'inline' : undefined);
    const trigger: Trigger = delay === undefined ? { event: eventType } : { after: delay };
    const order = delay === undefined ? `0 ${eventType}` : `2 ${String(delay)}`;
    groups.push({ order, transitions: candidates.map((candidate) => describeTransition(trigger, candidate, guards)) });
  }
  if (node.always?.length) {
    groups.push({ order: '1', transitions: node.always.map((candidate) => describeTransition({ always: true }, candidate, guards)) });
  }
  groups.sort((a, b) => compare(a.order, b.order));

  const children = Object.values(node.states) as AnyStateNode[];
  return {
    id: node.id,
    key: node.key,
    type: node.type,
    ...(node.parent ? { parent: node.parent.id } : {}),
    ...(node.type === 'compound' ? { initial: node.initial.target[0]!.id } : {}),
    children: children.map((child) => child.id),
    entry: node.entry.map(actionName),
    exit: node.exit.map(actionName),
    transitions: groups.flatMap((group) => group.transitions),
  };
}

function describeTransition(
  trigger: Trigger,
  transition: { target?: ReadonlyArray<AnyStateNode> | undefined; reenter: boolean; guard?: unknown; actions: readonly unknown[] },
  guards: Set<string>,
): ChartTransition {
  const targets = (transition.target ?? []).map((target) => target.id);
  const guard = transition.guard === undefined ? undefined : guardText(transition.guard, guards, true);
  return {
    ...trigger,
    ...(guard === undefined ? {} : { guard }),
    targets,
    // xstate sets `reenter` on targetless transitions too, where it has no effect.
    ...(transition.reenter && targets.length > 0 ? { reenter: true as const } : {}),
    actions: transition.actions.map(actionName),
  };
}

/** Guards are names, `{ type }` objects, or functions; `not`/`and`/`or` carry their operands in `guards`. */
function guardText(guard: unknown, names: Set<string>, top = false): string {
  if (typeof guard === 'string') {
    names.add(guard);
    return guard;
  }
  if (typeof guard === 'object' && guard !== null && 'type' in guard && typeof guard.type === 'string') {
    names.add(guard.type);
    return guard.type;
  }
  if (typeof guard === 'function') {
    const operands = (guard as { guards?: unknown }).guards;
    if (Array.isArray(operands)) {
      const parts = operands.map((operand) => guardText(operand, names));
      if (guard.name === 'not') return `!${parts[0]}`;
      const joined = parts.join(guard.name === 'or' ? ' || ' : ' && ');
      return top ? joined : `(${joined})`;
    }
    if ('stateValue' in guard) return `in(${JSON.stringify((guard as { stateValue: unknown }).stateValue)})`;
    // An inline arrow takes the name of the `guard` key it was written under.
    return guard.name && guard.name !== 'guard' ? guard.name : 'inline';
  }
  return 'inline';
}

function actionName(action: unknown): string {
  if (typeof action === 'string') return action;
  if (typeof action === 'object' && action !== null && 'type' in action && typeof action.type === 'string') return action.type;
  if (typeof action === 'function') {
    // Built-in action creators (assign, emit, raise, …) are tagged `xstate.<name>`.
    const type = (action as { type?: unknown }).type;
    if (typeof type === 'string') return type.replace(/^xstate\./, '');
    return action.name && action.name !== 'actions' ? action.name : 'inline';
  }
  return 'inline';
}

function delayName(delay: unknown): string | number {
  return typeof delay === 'string' || typeof delay === 'number' ? delay : 'inline';
}

function sorted(values: Iterable<string>): string[] {
  return [...values].sort(compare);
}

/** Code-point order, so the output is the same whatever the locale. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
