import type { AnyStateMachine } from 'xstate';
import { createPresenceMachine } from '../actors/machine.js';
import { describeMachine } from './describe.js';
import { toDot } from './dot.js';
import { toJson } from './json.js';
import { toMermaid } from './mermaid.js';
import { toSvg } from './svg.js';

export { describeMachine, type Chart, type ChartState, type ChartTransition } from './describe.js';
export { toDot, toJson, toMermaid, toSvg };

export const CHART_FORMATS = ['mermaid', 'dot', 'svg', 'json'] as const;
export type ChartFormat = (typeof CHART_FORMATS)[number];

export function isChartFormat(value: string): value is ChartFormat {
  return (CHART_FORMATS as readonly string[]).includes(value);
}

/** The user presence machine, charted; the clock only matters when the machine runs, so any will do. */
export function renderChart(format: ChartFormat, machine: AnyStateMachine = createPresenceMachine()): Promise<string> {
  const chart = describeMachine(machine);
  switch (format) {
    case 'mermaid':
      return Promise.resolve(toMermaid(chart));
    case 'dot':
      return Promise.resolve(toDot(chart));
    case 'json':
      return Promise.resolve(toJson(chart));
    case 'svg':
      return toSvg(chart);
  }
}
