import type { Chart, ChartState } from './describe.js';
import { containerOf, toDiagram, type Diagram } from './diagram.js';

/**
 * A mermaid `stateDiagram-v2`, which GitHub draws inside a ```mermaid block.
 * Mermaid cannot write text inside a composite state, so what a composite state (or the
 * machine as a whole) does without moving goes into a note beside it.
 */
export function toMermaid(chart: Chart): string {
  const diagram = toDiagram(chart);
  const lines = ['stateDiagram-v2', `  %% generated from the '${chart.machine}' machine by \`presence chart\`: change the machine, not this`];
  block(diagram, diagram.root, 1, lines);
  return `${lines.join('\n')}\n`;
}

function block(diagram: Diagram, container: ChartState, depth: number, lines: string[]): void {
  const pad = '  '.repeat(depth);
  const id = (stateId: string): string => diagram.ids.get(stateId)!;
  if (container.initial) lines.push(`${pad}[*] --> ${id(container.initial)}`);
  for (const childId of container.children) {
    const child = diagram.byId.get(childId)!;
    const name = `state "${text(child.key)}" as ${id(child.id)}`;
    if (child.children.length > 0) {
      lines.push(`${pad}${name} {`);
      block(diagram, child, depth + 1, lines);
      lines.push(`${pad}}`);
      note(`right of ${id(child.id)}`, diagram.notes.get(child.id)!, pad, lines);
    } else {
      lines.push(`${pad}${name}`);
      for (const line of diagram.notes.get(child.id)!) lines.push(`${pad}${id(child.id)} : ${text(line)}`);
      if (child.type === 'final') lines.push(`${pad}${id(child.id)} --> [*]`);
    }
  }
  for (const arrow of diagram.arrows) {
    if (containerOf(diagram, arrow) !== container.id) continue;
    lines.push(`${pad}${id(arrow.source)} --> ${id(arrow.target)} : ${arrow.labels.map(text).join('<br/>')}`);
  }
  if (container === diagram.root && container.initial) {
    const rootNotes = diagram.notes.get(container.id)!;
    const heading = rootNotes.length > 0 ? [`${container.key}, in any state that does not handle the event:`] : [];
    note(`left of ${id(container.initial)}`, [...heading, ...rootNotes], pad, lines);
  }
}

function note(where: string, notes: readonly string[], pad: string, lines: string[]): void {
  if (notes.length === 0) return;
  lines.push(`${pad}note ${where}`, ...notes.map((line) => `${pad}  ${text(line)}`), `${pad}end note`);
}

const ENTITIES: Record<string, string> = { '#': '#35;', ';': '#59;', '"': '#quot;' };

/**
 * `;` ends a mermaid statement and `#` starts an entity, so both are written as entities,
 * in one pass: a second would escape the `;` of the entities the first wrote.
 */
function text(value: string): string {
  return value.replace(/[#;"]/g, (char) => ENTITIES[char]!);
}
