import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { and, assign, createMachine, not, or, type AnyStateNode } from 'xstate';
import { createPresenceMachine } from '../../src/actors/machine.js';
import { embedInDoc } from '../../src/chart/doc.js';
import { CHART_FORMATS, describeMachine, renderChart, toMermaid, type ChartFormat } from '../../src/chart/index.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const machine = createPresenceMachine();

/** Walked here rather than taken from describeMachine, so the chart is checked against the machine. */
function statesOf(node: AnyStateNode): AnyStateNode[] {
  return Object.values(node.states).flatMap((child) => [child, ...statesOf(child)]);
}
const STATES = statesOf(machine.root);
const shortId = (state: AnyStateNode): string => state.path.join('_');

const outputs = {} as Record<ChartFormat, string>;
beforeAll(async () => {
  for (const format of CHART_FORMATS) outputs[format] = await renderChart(format, machine);
});

/** Enough of XML to catch a broken SVG: one root, tags that nest and close, text with no stray `<` or `&`. */
function checkWellFormed(xml: string): string {
  const body = xml.replace(/<\?xml[^>]*\?>/, '').replace(/<!DOCTYPE[^>]*>/, '').replace(/<!--[\s\S]*?-->/g, '');
  const stack: string[] = [];
  let root = '';
  let last = 0;
  for (const match of body.matchAll(/<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>/g)) {
    const text = body.slice(last, match.index);
    if (/[<>]|&(?![a-zA-Z]+;|#\d+;|#x[0-9a-fA-F]+;)/.test(text)) throw new Error(`bad text: ${text}`);
    if (stack.length === 0 && text.trim() !== '') throw new Error(`text outside the root: ${text}`);
    last = match.index + match[0].length;
    const [, closing, name, , selfClosing] = match;
    if (closing) {
      if (stack.pop() !== name) throw new Error(`</${name}> closes nothing open`);
    } else if (!selfClosing) {
      if (stack.length === 0 && root) throw new Error('a second root element');
      root ||= name!;
      stack.push(name!);
    }
  }
  if (stack.length > 0) throw new Error(`unclosed: ${stack.join(' > ')}`);
  if (body.slice(last).trim() !== '') throw new Error('text after the root');
  return root;
}

describe('chart - presence machine', () => {
  it('chart - the machine has the states the chart is checked for', () => {
    expect(STATES.map((state) => state.id)).toEqual([
      'presence.unlogined',
      'presence.unlogined.retainingSubscriptions',
      'presence.unlogined.idle',
      'presence.offline',
      'presence.offline.retainingSubscriptions',
      'presence.offline.idle',
      'presence.online',
    ]);
  });

  it('chart - every state, nested ones included, is in the mermaid chart', () => {
    for (const state of STATES) expect(outputs.mermaid).toContain(`state "${state.key}" as ${shortId(state)}`);
    expect(outputs.mermaid).toContain('[*] --> unlogined\n');
    expect(outputs.mermaid).toContain('[*] --> offline_retainingSubscriptions');
  });

  it('chart - every state, nested ones included, is in the dot chart', () => {
    for (const state of STATES) {
      const inside = state.type === 'compound' ? `subgraph "cluster_${shortId(state)}" {\n` : `"${shortId(state)}" [`;
      expect(outputs.dot).toContain(inside);
      expect(outputs.dot).toContain(`<b>${state.key}</b>`);
    }
  });

  it('chart - every state, nested ones included, is in the json description with its parent', () => {
    const chart = JSON.parse(outputs.json) as { states: Array<{ id: string; parent?: string }> };
    expect(chart.states.map((state) => state.id)).toEqual(['presence', ...STATES.map((state) => state.id)]);
    for (const state of STATES) expect(chart.states.find((s) => s.id === state.id)?.parent).toBe(state.parent!.id);
  });

  it('chart - the delayed transitions and every guard are in each format', () => {
    for (const format of CHART_FORMATS) {
      for (const delay of Object.keys(machine.implementations.delays)) expect(outputs[format], format).toContain(delay);
      for (const guard of Object.keys(machine.implementations.guards)) expect(outputs[format], format).toContain(guard);
    }
    expect(outputs.mermaid).toContain('online --> offline : ');
    expect(outputs.mermaid).toContain('after heartbeatTimeout [allDevicesTimedOut]');
    expect(outputs.mermaid).toContain('online : ↻ after heartbeatTimeout [else]');
    expect(outputs.mermaid).toContain(
      'unlogined_retainingSubscriptions --> unlogined_idle : always [nothingRetained]<br/>after subscriptionRetention',
    );
    expect(outputs.mermaid).toContain('LOGOUT [isLastDevice && hasDroppedDevices]');
    expect(outputs.dot).toContain('LOGOUT [isLastDevice &amp;&amp; hasDroppedDevices]');
  });

  it('chart - the json description keeps the candidates of an event in the order they are tried', () => {
    const chart = describeMachine(machine);
    const online = chart.states.find((state) => state.id === 'presence.online')!;
    expect(online.transitions.filter((t) => 'after' in t)).toEqual([
      {
        after: 'heartbeatTimeout',
        guard: 'allDevicesTimedOut',
        targets: ['presence.offline'],
        actions: ['closeTimedOutDevices', 'removeTimedOutDevices', 'leaveOnline'],
      },
      { after: 'heartbeatTimeout', targets: ['presence.online'], reenter: true, actions: ['closeTimedOutDevices', 'removeTimedOutDevices'] },
    ]);
    expect(online.transitions.filter((t) => 'event' in t && t.event === 'LOGOUT').map((t) => t.guard)).toEqual([
      '!isKnownConnection',
      'isLastDevice && hasDroppedDevices',
      'isLastDevice',
      undefined,
    ]);
    expect(chart.delays).toEqual(['heartbeatTimeout', 'subscriptionRetention']);
    expect(chart.guards).toEqual(Object.keys(machine.implementations.guards).sort());
  });

  it('chart - the same machine gives the same output, byte for byte', async () => {
    for (const format of CHART_FORMATS) expect(await renderChart(format, createPresenceMachine()), format).toBe(outputs[format]);
  });

  it('chart - the diagram in docs/state-chart.md is the one the machine gives now', () => {
    const doc = readFileSync(`${ROOT}docs/state-chart.md`, 'utf8');
    expect(doc).toContain('<!-- chart:begin -->\n```mermaid\nstateDiagram-v2\n');
    // Regenerate with: npx tsx src/cli/main.ts chart --format mermaid --write-doc docs/state-chart.md
    expect(embedInDoc(doc, toMermaid(describeMachine(machine)))).toBe(doc);
  });

  it('chart - docs/state-chart.svg is the one the machine gives now', () => {
    // Regenerate with: npx tsx src/cli/main.ts chart --format svg --out docs/state-chart.svg
    expect(readFileSync(`${ROOT}docs/state-chart.svg`, 'utf8')).toBe(outputs.svg);
  });

  it('chart - the svg is well-formed and names every state', () => {
    expect(checkWellFormed(outputs.svg)).toBe('svg');
    for (const state of STATES) expect(outputs.svg).toContain(`>${state.key}</text>`);
    expect(outputs.svg).toContain('after heartbeatTimeout [allDevicesTimedOut]');
  });
});

describe('chart - any machine', () => {
  it('chart - guard combinators, numeric delays and built-in actions are described by name', () => {
    const chart = describeMachine(
      createMachine({
        id: 'door',
        initial: 'closed',
        states: {
          closed: {
            on: { OPEN: { guard: or(['unlocked', not(and(['jammed', 'heavy']))]), target: 'open', actions: assign({}) } },
          },
          open: { after: { 1500: 'closed' } },
        },
      }),
    );
    expect(chart.states.map((state) => state.transitions)).toEqual([
      [],
      [{ event: 'OPEN', guard: 'unlocked || !(jammed && heavy)', targets: ['door.open'], actions: ['assign'] }],
      [{ after: 1500, targets: ['door.closed'], actions: [] }],
    ]);
    expect(toMermaid(chart)).toContain('open --> closed : after 1500ms');
  });
});

describe('chart - cli', () => {
  it('chart - an unknown format is refused with exit code 2', () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'chart', '--format', 'nope'], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain("unknown format 'nope'");
    expect(run.stdout).toBe('');
  }, 30_000);
});
