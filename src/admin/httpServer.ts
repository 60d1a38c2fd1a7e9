import { createServer, type Server } from 'node:http';
import type { Gateway } from '../gateway/gateway.js';
import type { Logger } from '../log.js';
import type { NodeMetrics } from '../metrics/nodeMetrics.js';
import { sendJson, type AdminApi } from './adminApi.js';
import { serveUi } from './uiAssets.js';

export interface HttpRoutes {
  gateway: Gateway;
  admin: AdminApi;
  isReady: () => boolean;
  log: Logger;
  metrics: NodeMetrics;
}

/** One port serves `/ws`, `/admin/...`, `/ui`, `/metrics`, `/healthz` and `/readyz` (SPEC.md §5). */
export function createHttpServer(routes: HttpRoutes): Server {
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
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
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    if (path !== '/ws') {
      socket.end('HTTP/1.1 404 Not Found\r\n\r\n');
      return;
    }
    routes.gateway.handleUpgrade(request, socket, head);
  });
  return server;
}
