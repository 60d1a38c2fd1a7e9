import type { Chart } from './describe.js';
import { toDot } from './dot.js';

/**
 * Graphviz compiled to WebAssembly, so the SVG is drawn offline with nothing but node.
 * Imported on first use: the 1 MB module would otherwise load with every `presence start`.
 */
export async function toSvg(chart: Chart): Promise<string> {
  const { instance } = await import('@viz-js/viz');
  const viz = await instance();
  return viz.renderString(toDot(chart), { format: 'svg', engine: 'dot' });
}
