import type { Chart, ChartState } from './describe.js';
import { toDiagram, type Diagram } from './diagram.js';

// One name Graphviz knows the metrics of: with a list it measures in Times and the boxes come out too narrow.
const FONT = 'Helvetica';

/**
 * Graphviz DOT. A composite state is a cluster; arrows to or from it end on its border
 * (`lhead`/`ltail`), which needs a real node inside to aim at: its initial-state dot, or an
 * invisible point when it has none.
 */
export function toDot(chart: Chart): string {
  const diagram = toDiagram(chart);
  const node = (id: string): string => quote(anchorOf(diagram, id));
  const lines = [
    `// generated from the '${chart.machine}' machine by \`presence chart\`: change the machine, not this`,
    `digraph ${quote(chart.machine)} {`,
    `  graph [compound=true, rankdir=TB, nodesep=0.5, ranksep=0.6, fontname="${FONT}", fontsize=12];`,
    `  node [shape=box, style=rounded, fontname="${FONT}", fontsize=11, margin="0.15,0.06"];`,
    `  edge [fontname="${FONT}", fontsize=10];`,
  ];

  const rootNotes = diagram.notes.get(diagram.root.id)!;
  if (rootNotes.length > 0) {
    const heading = `${diagram.root.key}, in any state that does not handle the event:`;
    lines.push(`  "__machine" [shape=note, style="", label=<${htmlLines([heading], rootNotes)}>];`);
  }
  if (diagram.root.initial) {
    lines.push(`  "__start" [shape=point, width=0.12];`);
    lines.push(`  "__start" -> ${node(diagram.root.initial)}${attributes(clusterEnd(diagram, diagram.root.initial, 'lhead'))};`);
  }
  for (const childId of diagram.root.children) state(diagram, diagram.byId.get(childId)!, 1, lines);

  const depth = depths(diagram);
  for (const arrow of diagram.arrows) {
    const label = `label=<${arrow.labels.map(html).join('<br/>')}>`;
    const attrs = [label, ...clusterEnd(diagram, arrow.source, 'ltail'), ...clusterEnd(diagram, arrow.target, 'lhead')];
    // Arrows back towards the initial state would otherwise pull the layout into a knot.
    if (depth(arrow.target) < depth(arrow.source)) attrs.push('constraint=false');
    lines.push(`  ${node(arrow.source)} -> ${node(arrow.target)}${attributes(attrs)};`);
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}

function state(diagram: Diagram, current: ChartState, depth: number, lines: string[]): void {
  const pad = '  '.repeat(depth);
  const id = diagram.ids.get(current.id)!;
  const notes = diagram.notes.get(current.id)!;
  if (!isCluster(diagram, current.id)) {
    const shape = current.type === 'final' ? ', peripheries=2' : '';
    lines.push(`${pad}${quote(id)} [label=<${htmlLines([current.key], notes, true)}>${shape}, id=${quote(svgId(diagram, current.id))}];`);
    return;
  }
  lines.push(`${pad}subgraph ${quote(`cluster_${id}`)} {`);
  lines.push(`${pad}  label=<${htmlLines([current.key], notes, true)}>; style=rounded; labeljust=l; id=${quote(svgId(diagram, current.id))};`);
  const anchor = quote(anchorOf(diagram, current.id));
  if (current.initial) {
    lines.push(`${pad}  ${anchor} [shape=point, width=0.12];`);
    lines.push(`${pad}  ${anchor} -> ${quote(anchorOf(diagram, current.initial))}${attributes(clusterEnd(diagram, current.initial, 'lhead'))};`);
  } else {
    lines.push(`${pad}  ${anchor} [shape=point, style=invis, width=0, height=0, fixedsize=true, label=""];`);
  }
  for (const childId of current.children) state(diagram, diagram.byId.get(childId)!, depth + 1, lines);
  lines.push(`${pad}}`);
}

/** How many steps each state is from the initial one (breadth first), for laying out rank by rank. */
function depths(diagram: Diagram): (id: string) => number {
  const depth = new Map<string, number>();
  const queue = diagram.root.initial ? [diagram.root.initial] : [];
  if (queue[0]) depth.set(queue[0], 0);
  for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
    const next = [
      ...diagram.byId.get(id)!.children,
      ...diagram.arrows.filter((arrow) => arrow.source === id).map((arrow) => arrow.target),
    ];
    for (const target of next) {
      if (depth.has(target)) continue;
      depth.set(target, depth.get(id)! + 1);
      queue.push(target);
    }
  }
  return (id) => depth.get(id) ?? Number.POSITIVE_INFINITY;
}

function clusterEnd(diagram: Diagram, id: string, side: 'ltail' | 'lhead'): string[] {
  return isCluster(diagram, id) ? [`${side}=${quote(`cluster_${diagram.ids.get(id)!}`)}`] : [];
}

function isCluster(diagram: Diagram, id: string): boolean {
  return diagram.byId.get(id)!.children.length > 0;
}

/**
 * `state:<path>` (e.g. `state:offline.idle`): the SVG element of each state carries it,
 * so the dashboard highlights the states an actor is in by their dotted path.
 */
function svgId(diagram: Diagram, stateId: string): string {
  const root = diagram.root.id;
  return `state:${stateId.startsWith(`${root}.`) ? stateId.slice(root.length + 1) : stateId}`;
}

function anchorOf(diagram: Diagram, id: string): string {
  const shortId = diagram.ids.get(id)!;
  return isCluster(diagram, id) ? `${shortId}__initial` : shortId;
}

/** A bold title over left-aligned lines, as one Graphviz HTML-like label. */
function htmlLines(title: readonly string[], body: readonly string[], bold = false): string {
  const head = title.map((line) => (bold ? `<b>${html(line)}</b>` : html(line))).join('<br/>');
  if (body.length === 0) return head;
  return `${head}<br/>${body.map((line) => `${html(line)}<br align="left"/>`).join('')}`;
}

function attributes(attrs: readonly string[]): string {
  return attrs.length > 0 ? ` [${attrs.join(', ')}]` : '';
}

function quote(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function html(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
