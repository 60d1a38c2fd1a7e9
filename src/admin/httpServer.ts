import { createServer, type Server } from 'node:http';
import type { Gateway } from '../gateway/gateway.js';
import type { Logger } from '../log.js';
import type { NodeMetrics } from '../metrics/nodeMetrics.js';
import { ErrorCode } from '../errors.js';
import { refuseUpgrade } from '../gateway/refuseUpgrade.js';
import { sendJson, type AdminApi } from './adminApi.js';
import { serveUi } from './uiAssets.js';

export interface HttpRoutes {
  gateway: Gateway;
  admin: AdminApi;
  isReady: () => boolean;
  log: Logger;
  metrics: NodeMetrics;
}

/** A path of plain characters, which a URL parser returns as it is unless `REWRITTEN` finds something. */
const PLAIN_PATH = /^\/[A-Za-z0-9_.\/-]*$/;
/** What a URL parser rewrites in a plain path: an empty segment, or a dot segment. */
const REWRITTEN = /\/\/|\/\.\.?(?:\/|$)/;

/**
 * The path of a request target, as `new URL(target, base).pathname` gives it, or undefined
 * for a target the parser refuses (`//%`: that throw once took the whole node down). A plain
 * one is taken as it is: a URL parse for every WebSocket upgrade was ~0.7 % of a node's CPU
 * in a login storm. Anything else (escapes, dot segments, `//`) goes through the parser.
 */
export function pathOf(target = '/'): string | undefined {
  const query = target.indexOf('?');
  const path = query < 0 ? target : target.slice(0, query);
  if (PLAIN_PATH.test(path) && !REWRITTEN.test(path)) return path;
  try {
    return new URL(target, 'http://localhost').pathname;
  } catch {
    return undefined;
  }
}

const BAD_TARGET = 'the request target is not a valid path';

/** One port serves `/ws`, `/admin/...`, `/ui`, `/metrics`, `/healthz` and `/readyz` (SPEC.md §5). */
export function createHttpServer(routes: HttpRoutes): Server {
  const server = createServer((request, response) => {
    const path = pathOf(request.url);
    if (path === undefined) return sendJson(response, 400, { code: ErrorCode.INVALID_PARAMETERS, desc: BAD_TARGET });
    if (path === '/healthz') return sendJson(response, 200, { ok: true });
    if (path === '/readyz') {
      const ready = routes.isReady();
      return sendJson(response, ready ? 200 : 503, { ready });
    }
    if (path === '/admin' || path.startsWith('/admin/')) {
      routes.admin.handle(request, response, path).catch((error) => {
        routes.log.error({ err: error }, 'admin handler crashed');
        if (!response.headersSent) sendJson(response, 500, { code: 70500, desc: 'internal error' });
      });
      return;
    }
    if (path === '/metrics') {
      // Unauthenticated, as Prometheus scrapes it: figures only, no user ids.
      routes.metrics.exposition().then(
        ({ contentType, body }) => response.writeHead(200, { 'content-type': contentType }).end(body),
        (error: unknown) => {
          routes.log.error({ err: error }, 'metrics not collected');
          sendJson(response, 500, { code: 70500, desc: 'internal error' });
        },
      );
      return;
    }
    if (path === '/ui' || path.startsWith('/ui/')) {
      serveUi(path, response).catch((error) => {
        routes.log.error({ err: error, path }, 'dashboard file not served');
        if (!response.headersSent) sendJson(response, 500, { code: 70500, desc: 'internal error' });
      });
      return;
    }
    sendJson(response, 404, { code: 404, desc: `nothing at ${path}; try /ws, /admin, /ui, /metrics, /healthz or /readyz` });
  });
  server.on('upgrade', (request, socket, head) => {
    const path = pathOf(request.url);
    if (path !== '/ws') {
      refuseUpgrade(socket, path === undefined ? '400 Bad Request' : '404 Not Found');
      return;
    }
    routes.gateway.handleUpgrade(request, socket, head);
  });
  return server;
}
