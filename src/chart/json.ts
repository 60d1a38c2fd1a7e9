import type { Chart } from './describe.js';

/** The description itself: its shape is already plain data, in a stable order. */
export function toJson(chart: Chart): string {
  return `${JSON.stringify(chart, null, 2)}\n`;
}
