import { createServer, type Server } from 'node:http';
import type { Gateway } from '../gateway/gateway.js';
import type { Logger } from '../log.js';
import { sendJson, type AdminApi } from './adminApi.js';

export interface HttpRoutes {
  gateway: Gateway;
  admin: AdminApi;
  isReady: () => boolean;
  log: Logger;
}

/** One port serves `/ws`, `/admin/...`, `/healthz` and `/readyz` (SPEC.md §5). */
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
    sendJson(response, 404, { code: 404, desc: `nothing at ${path}; try /ws, /admin, /healthz or /readyz` });
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
