#!/usr/bin/env node
/**
 * A small HTTP and WebSocket load balancer for presence nodes, dependency-free (node: modules
 * only), so it runs from the presence image itself (`node lb/lb.mjs`) where no nginx/haproxy
 * image can be pulled. Round-robin over the backends whose health check passes.
 *
 *   LB_BACKENDS=p1:8080,p2:8080,p3:8080 LB_PORT=8080 node deploy/lb/lb.mjs
 *
 * Environment (defaults in brackets):
 *   LB_BACKENDS            host:port list, comma-separated (required)
 *   LB_PORT [8080]         LB_HOST [0.0.0.0]
 *   LB_HEALTH_PATH [/readyz]   checked on every backend every LB_HEALTH_INTERVAL_MS [1000],
 *                              timeout LB_HEALTH_TIMEOUT_MS [800]; a backend takes traffic after
 *                              LB_RISE [1] passing checks and leaves after LB_FALL [2] failing ones.
 *
 * - Plain HTTP requests (`/admin/...`, `/ui`, `/healthz`, `/metrics`, ...) are proxied one by one,
 *   each to the next healthy backend; GET/HEAD are retried on another backend if the connection fails.
 * - WebSocket upgrades (`/ws`) become TCP tunnels to the next healthy backend (the next one is tried
 *   if the connection fails). A tunnel lasts as long as both sides keep it.
 * - A backend that answers its health check with an error status (a draining node's /readyz is 503)
 *   gets no new traffic, but its tunnels are left alone: the node closes them itself (1001) after
 *   answering what it received, so the SDK resends nothing twice. A backend that cannot be reached at
 *   all (killed, host gone) has its tunnels closed at once, so its clients reconnect through the LB
 *   to another node instead of waiting on a dead socket.
 * - A backend whose connection fails (refused, unreachable, no answer within 1 s) is taken out at
 *   once, without waiting for its health checks to fail; the request or upgrade goes to the next one.
 * - `GET /lb/status` is answered by the LB itself: the backends, their state and open tunnels.
 *   `GET /lb/healthz` is 200 while at least one backend is healthy, else 503.
 */
import http from 'node:http';
import net from 'node:net';

const env = process.env;
const int = (name, fallback) => {
  const value = Number(env[name] ?? fallback);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer, got ${env[name]}`);
  return value;
};
const config = {
  port: int('LB_PORT', 8080),
  host: env.LB_HOST ?? '0.0.0.0',
  healthPath: env.LB_HEALTH_PATH ?? '/readyz',
  intervalMs: int('LB_HEALTH_INTERVAL_MS', 1000),
  timeoutMs: int('LB_HEALTH_TIMEOUT_MS', 800),
  rise: Math.max(1, int('LB_RISE', 1)),
  fall: Math.max(1, int('LB_FALL', 2)),
};
const backends = (env.LB_BACKENDS ?? '')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean)
  .map((address) => {
    const at = address.lastIndexOf(':');
    const host = at > 0 ? address.slice(0, at) : address;
    const port = at > 0 ? Number(address.slice(at + 1)) : 8080;
    if (!host || !Number.isInteger(port)) throw new Error(`bad backend ${address}: use host:port`);
    return { address, host, port, healthy: false, reachable: false, passes: 0, fails: 0, lastError: 'not checked yet', tunnels: new Set(), requests: 0 };
  });
if (backends.length === 0) {
  process.stderr.write('lb: LB_BACKENDS is empty; set it to host:port[,host:port...]\n');
  process.exit(2);
}

const log = (msg, fields = {}) => process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), component: 'lb', msg, ...fields })}\n`);
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

let cursor = 0;
/** The healthy backends in round-robin order, starting after the last one picked. */
function pickOrder() {
  const healthy = backends.filter((b) => b.healthy);
  if (healthy.length === 0) return [];
  const start = cursor++ % healthy.length;
  return healthy.map((_, i) => healthy[(start + i) % healthy.length]);
}

const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EHOSTDOWN', 'ENOTFOUND', 'EAI_AGAIN']);

/** A connection to the backend failed: take it out now; the health checks bring it back. */
function markUnreachable(backend, error) {
  backend.reachable = false;
  backend.passes = 0;
  backend.fails = Math.max(backend.fails, config.fall);
  backend.lastError = error;
  if (backend.healthy) {
    backend.healthy = false;
    log('backend down', { backend: backend.address, reason: `connect: ${error}`, tunnels: backend.tunnels.size });
  }
}

// ---- health checks -------------------------------------------------------------------------

function check(backend) {
  return new Promise((resolve) => {
    const request = http.get(
      { host: backend.host, port: backend.port, path: config.healthPath, timeout: config.timeoutMs, agent: false, headers: { 'user-agent': 'presence-lb' } },
      (response) => {
        response.resume();
        resolve({ reachable: true, ok: response.statusCode >= 200 && response.statusCode < 300, error: `HTTP ${response.statusCode}` });
      },
    );
    request.on('timeout', () => request.destroy(new Error('timeout')));
    request.on('error', (error) => resolve({ reachable: false, ok: false, error: error.code ?? error.message }));
  });
}

async function checkAll() {
  await Promise.all(
    backends.map(async (backend) => {
      const result = await check(backend);
      backend.reachable = result.reachable;
      if (result.ok) {
        backend.fails = 0;
        backend.passes += 1;
        backend.lastError = undefined;
        if (!backend.healthy && backend.passes >= config.rise) {
          backend.healthy = true;
          log('backend up', { backend: backend.address });
        }
        return;
      }
      backend.passes = 0;
      backend.fails += 1;
      backend.lastError = result.error;
      if (backend.healthy && backend.fails >= config.fall) {
        backend.healthy = false;
        log('backend down', { backend: backend.address, reason: result.error, tunnels: backend.tunnels.size });
      }
      // Unreachable: nobody will ever answer on its tunnels; close them so the clients move on.
      if (!result.reachable && backend.fails >= config.fall && backend.tunnels.size > 0) {
        log('closing tunnels of an unreachable backend', { backend: backend.address, tunnels: backend.tunnels.size });
        for (const tunnel of [...backend.tunnels]) tunnel.destroy();
      }
    }),
  );
}

let checking = false;
const healthTimer = setInterval(() => {
  if (checking) return;
  checking = true;
  checkAll().finally(() => (checking = false));
}, config.intervalMs);

// ---- HTTP ----------------------------------------------------------------------------------

function forwardedHeaders(request) {
  const headers = { ...request.headers };
  const client = request.socket.remoteAddress ?? '';
  headers['x-forwarded-for'] = headers['x-forwarded-for'] ? `${headers['x-forwarded-for']}, ${client}` : client;
  headers['x-forwarded-proto'] ??= 'http';
  if (request.headers.host) headers['x-forwarded-host'] ??= request.headers.host;
  return headers;
}

function sendJson(response, status, body) {
  response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

function status() {
  return {
    backends: backends.map((b) => ({
      address: b.address,
      healthy: b.healthy,
      reachable: b.reachable,
      ...(b.lastError ? { lastError: b.lastError } : {}),
      tunnels: b.tunnels.size,
      tunnelPaths: [...b.tunnels].map((t) => t.path),
      requests: b.requests,
    })),
  };
}

const server = http.createServer((request, response) => {
  const path = (request.url ?? '/').split('?')[0];
  if (path === '/lb/status') return sendJson(response, 200, status());
  if (path === '/lb/healthz') {
    const up = backends.some((b) => b.healthy);
    return sendJson(response, up ? 200 : 503, { ok: up });
  }
  const order = pickOrder();
  const retryable = request.method === 'GET' || request.method === 'HEAD';
  const attempt = (i) => {
    const backend = order[i];
    if (!backend) return sendJson(response, 503, { code: 503, desc: 'no healthy presence node' });
    backend.requests += 1;
    const upstream = http.request(
      { host: backend.host, port: backend.port, method: request.method, path: request.url, headers: forwardedHeaders(request), agent },
      (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.rawHeaders);
        answer.pipe(response);
        answer.on('error', () => response.destroy());
      },
    );
    // sent: the request may have reached the backend (a kept-alive socket is connected already).
    let sent = false;
    upstream.on('socket', (socket) => {
      if (socket.connecting) socket.once('connect', () => (sent = true));
      else sent = true;
    });
    upstream.on('error', (error) => {
      if (!sent && CONNECT_ERRORS.has(error.code)) markUnreachable(backend, error.code);
      if (response.headersSent) return response.destroy();
      // GET/HEAD are idempotent: also retried when a kept-alive socket turned out closed.
      if (retryable && (!sent || error.code === 'ECONNRESET') && i + 1 < order.length) return attempt(i + 1);
      sendJson(response, 502, { code: 502, desc: `presence node ${backend.address}: ${error.code ?? error.message}` });
    });
    if (retryable) upstream.end();
    else request.pipe(upstream);
  };
  if (retryable) request.resume();
  attempt(0);
});

// ---- WebSocket upgrades: TCP tunnels -------------------------------------------------------

server.on('upgrade', (request, client, head) => {
  const order = pickOrder();
  client.on('error', () => undefined);
  const rawHead = () => {
    const lines = [`${request.method} ${request.url} HTTP/${request.httpVersion}`];
    for (let i = 0; i < request.rawHeaders.length; i += 2) {
      if (request.rawHeaders[i].toLowerCase() === 'x-forwarded-for') continue;
      lines.push(`${request.rawHeaders[i]}: ${request.rawHeaders[i + 1]}`);
    }
    const xff = forwardedHeaders(request)['x-forwarded-for'];
    lines.push(`X-Forwarded-For: ${xff}`);
    return `${lines.join('\r\n')}\r\n\r\n`;
  };
  const attempt = (i) => {
    const backend = order[i];
    if (!backend || client.destroyed) {
      if (!client.destroyed) client.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const upstream = net.connect({ host: backend.host, port: backend.port });
    let connected = false;
    upstream.setTimeout(Math.max(config.timeoutMs, 1000), () => upstream.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })));
    upstream.once('error', (error) => {
      if (connected) return; // the tunnel's own handlers close it
      upstream.destroy();
      markUnreachable(backend, error.code ?? error.message);
      attempt(i + 1);
    });
    upstream.once('connect', () => {
      connected = true;
      upstream.setTimeout(0);
      upstream.setNoDelay(true);
      upstream.setKeepAlive(true, 10_000);
      client.setNoDelay(true);
      client.setKeepAlive(true, 10_000);
      upstream.write(rawHead());
      if (head?.length) upstream.write(head);
      const tunnel = { path: request.url, destroy: () => { upstream.destroy(); client.destroy(); } };
      backend.tunnels.add(tunnel);
      const close = () => {
        backend.tunnels.delete(tunnel);
        tunnel.destroy();
      };
      upstream.on('error', close).on('close', close);
      client.on('error', close).on('close', close);
      upstream.pipe(client);
      client.pipe(upstream);
    });
  };
  attempt(0);
});

server.listen(config.port, config.host, () => {
  log('listening', { port: config.port, backends: backends.map((b) => b.address), healthPath: config.healthPath });
  void checkAll();
});

const shutdown = (signal) => {
  log('shutting down', { signal });
  clearInterval(healthTimer);
  server.close();
  for (const backend of backends) for (const tunnel of [...backend.tunnels]) tunnel.destroy();
  agent.destroy();
  setTimeout(() => process.exit(0), 100).unref();
};
process.once('SIGTERM', () => shutdown('SIGTERM'));
process.once('SIGINT', () => shutdown('SIGINT'));
