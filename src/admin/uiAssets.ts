import { readFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';

/**
 * The dashboard's files, shipped in the package's `ui/` folder (no CDN, no build step).
 * Resolved from this module, which sits two levels below the package root both as
 * `src/admin` (tsx) and `dist/admin` (built).
 */
const UI_DIR = fileURLToPath(new URL('../../ui/', import.meta.url));

const ASSETS: Record<string, { file: string; type: string }> = {
  '/ui/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/ui/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/ui/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};

const cache = new Map<string, Buffer>();

/** Serves `/ui` and its assets; the data behind them comes from the admin API, with the key. */
export async function serveUi(path: string, response: ServerResponse): Promise<void> {
  if (path === '/ui') {
    response.writeHead(301, { location: '/ui/' }).end();
    return;
  }
  const asset = ASSETS[path];
  if (!asset) {
    response.writeHead(404, { 'content-type': 'text/plain' }).end(`no dashboard file at ${path}`);
    return;
  }
  let body = cache.get(asset.file);
  if (!body) cache.set(asset.file, (body = await readFile(UI_DIR + asset.file)));
  response.writeHead(200, { 'content-type': asset.type, 'content-length': body.length, 'cache-control': 'no-cache' });
  response.end(body);
}
