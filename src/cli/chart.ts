import { readFile, writeFile } from 'node:fs/promises';
import { CHART_FORMATS, isChartFormat, renderChart } from '../chart/index.js';
import { embedInDoc } from '../chart/doc.js';

const USAGE = `usage: presence chart [--format ${CHART_FORMATS.join('|')}] [--out FILE] [--write-doc FILE.md]`;

export async function runChart(values: { format?: string; out?: string; writeDoc?: string }): Promise<number> {
  const format = values.format ?? 'mermaid';
  if (!isChartFormat(format)) return usage(`unknown format '${format}' (one of: ${CHART_FORMATS.join(', ')})`);
  if (values.writeDoc !== undefined && format !== 'mermaid') return usage('--write-doc embeds the mermaid chart: use it with --format mermaid');
  if (values.writeDoc !== undefined && values.out !== undefined) return usage('--out and --write-doc each name the file to write: give one');

  const output = await renderChart(format);
  if (values.writeDoc !== undefined) {
    const markdown = await readFile(values.writeDoc, 'utf8');
    const updated = embedInDoc(markdown, output);
    // Left untouched when current, so regenerating does not change the file's time.
    if (updated !== markdown) await writeFile(values.writeDoc, updated);
  } else if (values.out !== undefined) {
    await writeFile(values.out, output);
  } else {
    process.stdout.write(output);
  }
  return 0;
}

function usage(message: string): number {
  process.stderr.write(`presence chart: ${message}\n${USAGE}\n`);
  return 2;
}
