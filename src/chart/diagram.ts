import type { Chart, ChartState, ChartTransition } from './describe.js';

/**
 * What mermaid and dot both draw: a box per state, an arrow per source/target pair carrying
 * every transition that takes it, and, written inside the box, the transitions that stay in
 * the state: `↻` for those that leave and re-enter it (restarting its timers), no mark for
 * those that only run actions. Self-loops drawn as arrows made the layouts unreadable.
 */
export interface Diagram {
  /** The frame, not a box: what it does is written in a note. */
  root: ChartState;
  byId: ReadonlyMap<string, ChartState>;
  /** Per state: an identifier safe in mermaid and dot, unique, and short (relative to the root). */
  ids: ReadonlyMap<string, string>;
  /** Per state: the labels of the transitions that stay in it, in the machine's order. */
  notes: ReadonlyMap<string, string[]>;
  arrows: Arrow[];
}

export interface Arrow {
  source: string;
  target: string;
  labels: string[];
}

const REENTER = '↻';

export function toDiagram(chart: Chart): Diagram {
  const [root] = chart.states;
  if (!root) throw new Error('the machine has no root state');
  const notes = new Map<string, string[]>();
  const arrows = new Map<string, Arrow>();
  for (const state of chart.states) {
    const lines: string[] = [];
    labelTransitions(state.transitions).forEach((label, index) => {
      const transition = state.transitions[index]!;
      // Without `reenter` xstate neither exits nor enters the state itself, so its timers keep
      // running; a compound one only goes back to its initial child.
      const targets = transition.targets.map((target) =>
        target === state.id && !transition.reenter && state.initial ? state.initial : target,
      );
      if (targets.length === 0) lines.push(label);
      else if (targets.includes(state.id)) lines.push(transition.reenter ? `${REENTER} ${label}` : label);
      for (const target of targets) {
        if (target === state.id) continue;
        const key = `${state.id}\u0000${target}`;
        const arrow = arrows.get(key) ?? { source: state.id, target, labels: [] };
        arrow.labels.push(label);
        arrows.set(key, arrow);
      }
    });
    notes.set(state.id, lines);
  }
  return {
    root,
    byId: new Map(chart.states.map((state) => [state.id, state])),
    ids: identifiers(chart.states),
    notes,
    arrows: [...arrows.values()],
  };
}

function identifiers(states: readonly ChartState[]): Map<string, string> {
  const root = states[0]!.id;
  const ids = new Map<string, string>();
  const used = new Set<string>();
  for (const { id } of states) {
    let candidate = (id.startsWith(`${root}.`) ? id.slice(root.length + 1) : id).replace(/[^A-Za-z0-9_]/g, '_');
    // Words that mermaid reads as keywords would end the statement.
    while (used.has(candidate) || RESERVED.has(candidate)) candidate += '_';
    used.add(candidate);
    ids.set(id, candidate);
  }
  return ids;
}

const RESERVED = new Set(['end', 'state', 'note', 'direction', 'class', 'classDef', 'style', 'click', 'default']);

/**
 * `EVENT [guard]`, UML style. An unguarded candidate after guarded ones of the same trigger
 * is marked `[else]`: it is taken only when those guards all fail.
 */
function labelTransitions(transitions: readonly ChartTransition[]): string[] {
  let previous = '';
  let guarded = false;
  return transitions.map((transition) => {
    const trigger = triggerText(transition);
    if (trigger !== previous) guarded = false;
    previous = trigger;
    const guard = transition.guard ?? (guarded ? 'else' : undefined);
    guarded ||= transition.guard !== undefined;
    return guard === undefined ? trigger : `${trigger} [${guard}]`;
  });
}

function triggerText(transition: ChartTransition): string {
  if ('event' in transition) return transition.event;
  if ('after' in transition) return `after ${typeof transition.after === 'number' ? `${transition.after}ms` : transition.after}`;
  return 'always';
}

/** The nearest state that contains both ends, where a renderer nesting blocks declares the arrow. */
export function containerOf(diagram: Diagram, arrow: Arrow): string {
  const ancestors = (id: string): string[] => {
    const chain: string[] = [];
    for (let state = diagram.byId.get(id)?.parent; state; state = diagram.byId.get(state)?.parent) chain.push(state);
    return chain;
  };
  const targetAncestors = new Set(ancestors(arrow.target));
  return ancestors(arrow.source).find((id) => targetAncestors.has(id)) ?? diagram.root.id;
}
