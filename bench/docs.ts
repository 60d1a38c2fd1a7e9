/** Rewrites docs/performance.md blocks from saved runs: `npx tsx bench/docs.ts bench/results/<run>.json …`. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { updateDocs, type Results } from './report.js';

const DOC = fileURLToPath(new URL('../docs/performance.md', import.meta.url));
for (const file of process.argv.slice(2)) {
  updateDocs(DOC, JSON.parse(readFileSync(file, 'utf8')) as Results);
  process.stdout.write(`${file} → docs/performance.md\n`);
}
