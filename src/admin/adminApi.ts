import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { UserStatus } from '../actors/types.js';
import { renderChart } from '../chart/index.js';
import type { AppConfig } from '../cluster/stores/apps.js';
import { ErrorCode, PresenceError, invalidParameters } from '../errors.js';
import { validateUserID, validateUserIDList } from '../gateway/validate.js';
import type { TransitionRecord } from '../inspection/transitionRecord.js';
import type { UserInspection } from '../inspection/userInspection.js';
import type { Logger } from '../log.js';
import { parseAppBody, parseFriendsBody, parseSdkAppID, publicApp } from './appInput.js';

/** What the admin API needs from the node it runs on. */
export interface AdminBackend {
  getApp(sdkAppID: number): AppConfig | undefined;
  putApp(app: AppConfig): Promise<AppConfig>;
  changeFriends(sdkAppID: number, add: Array<[string, string]>, remove: Array<[string, string]>): Promise<void>;
  statuses(sdkAppID: number, userIDs: string[]): Promise<UserStatus[]>;
  kick(sdkAppID: number, userID: string): Promise<void>;
  clusterView(): Promise<unknown>;
  inspect(sdkAppID: number, userID: string, watchMs?: number): Promise<UserInspection>;
  watchTransitions(sdkAppID: number, userID: string, handler: (record: TransitionRecord) => void): { unsubscribe(): void };
}

/** The state chart the dashboard highlights, rendered once per process from the machine itself. */
let chartSvg: Promise<string> | undefined;

/** How often a live view renews its watch on the owner (which lapses after `WATCH_MS`). */
const WATCH_RENEW_MS = 20_000;
const WATCH_MS = 60_000;

/** Admin status queries are not gated by edition but are bounded like device queries. */
export const ADMIN_MAX_QUERY_USERS = 500;
const MAX_BODY_BYTES = 1024 * 1024;

const HTTP_STATUS: Record<number, number> = {
  [ErrorCode.INVALID_PARAMETERS]: 400,
  [ErrorCode.NOT_LOGGED_IN]: 401,
  [ErrorCode.UNKNOWN_SDKAPPID]: 404,
  [ErrorCode.RATE_LIMITED]: 429,
  [ErrorCode.REQUEST_TIMEOUT]: 503,
};

const notFound = (desc: string) => Object.assign(new PresenceError(ErrorCode.UNKNOWN_SDKAPPID, desc), { httpStatus: 404 });

/**
 * The admin API of SPEC.md §6: JSON over HTTP behind `Authorization: Bearer <key>`.
 * Errors are `{ code, desc }` with a fitting HTTP status.
 */
export class AdminApi {
  private readonly key: Buffer;

  constructor(private readonly backend: AdminBackend, adminKey: string, private readonly log: Logger) {
    this.key = Buffer.from(adminKey);
  }

  /** Answers a request under `/admin`; true when the path was one of ours. */
  async handle(request: IncomingMessage, response: ServerResponse, path: string): Promise<void> {
    try {
      this.authorize(request);
      if (path === '/admin/chart.svg' && request.method === 'GET') {
        const svg = await (chartSvg ??= renderChart('svg').catch((error: unknown) => {
          chartSvg = undefined;
          throw error;
        }));
        response.writeHead(200, { 'content-type': 'image/svg+xml', 'cache-control': 'no-cache' }).end(svg);
        return;
      }
      const live = /^\/admin\/apps\/([^/]+)\/users\/([^/]+)\/events$/.exec(path);
      if (live && request.method === 'GET') return await this.streamTransitions(live[1]!, live[2]!, request, response);
      const result = await this.route(request.method ?? 'GET', path, request);
      sendJson(response, 200, result);
    } catch (error) {
      if (error instanceof PresenceError) {
        const status = (error as { httpStatus?: number }).httpStatus ?? HTTP_STATUS[error.code] ?? 500;
        sendJson(response, status, { code: error.code, desc: error.desc });
        return;
      }
      // A client that went away mid-body: nothing was applied and nobody is left to answer.
      if (!request.complete && request.destroyed) {
        this.log.info({ path }, 'admin request abandoned by its client before its body was read');
        return;
      }
      this.log.error({ err: error, path }, 'admin request failed');
      sendJson(response, 500, { code: ErrorCode.INTERNAL_ERROR, desc: 'internal error' });
    }
  }

  private authorize(request: IncomingMessage): void {
    const header = request.headers.authorization ?? '';
    const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
    // An empty key (PRESENCE_ADMIN_KEY="") would match a request with no header at all.
    if (this.key.length === 0 || given.length !== this.key.length || !timingSafeEqual(given, this.key)) {
      throw new PresenceError(ErrorCode.NOT_LOGGED_IN, 'the admin API needs Authorization: Bearer <PRESENCE_ADMIN_KEY>');
    }
  }

  /**
   * Server-sent events for the dashboard's user view: an `inspection` event at once and
   * at every watch renewal, a `transition` event for each transition of the actor.
   */
  private async streamTransitions(appText: string, userText: string, request: IncomingMessage, response: ServerResponse): Promise<void> {
    const sdkAppID = parseSdkAppID(appText);
    const userID = validateUserID(decodePathSegment(userText));
    this.requireApp(sdkAppID);
    const send = (event: string, data: unknown) => response.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    // Transitions seen while the first read is pending wait for the headers: written before them,
    // they would send the headers without the stream's content type, and the headers' write throw.
    let early: TransitionRecord[] | undefined = [];
    const subscription = this.backend.watchTransitions(sdkAppID, userID, (record) => (early ? early.push(record) : send('transition', record)));
    let timer: NodeJS.Timeout | undefined;
    // Registered first: a viewer gone while the first read was pending must not leak the subscription.
    request.once('close', () => {
      clearInterval(timer);
      subscription.unsubscribe();
    });
    const first = await this.backend.inspect(sdkAppID, userID, WATCH_MS).catch((error: unknown) => {
      subscription.unsubscribe();
      throw error;
    });
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    send('inspection', first);
    for (const record of early) send('transition', record);
    early = undefined;
    if (request.destroyed) return;
    timer = setInterval(() => {
      this.backend.inspect(sdkAppID, userID, WATCH_MS).then(
        (inspection) => send('inspection', inspection),
        (error: unknown) => send('error', error instanceof PresenceError ? error.toJSON() : { code: ErrorCode.INTERNAL_ERROR, desc: 'internal error' }),
      );
    }, WATCH_RENEW_MS);
  }

  private async route(method: string, path: string, request: IncomingMessage): Promise<unknown> {
    if (path === '/admin/cluster' && method === 'GET') return this.backend.clusterView();
    const user = /^\/admin\/apps\/([^/]+)\/users\/([^/]+)$/.exec(path);
    if (user && method === 'GET') {
      const sdkAppID = parseSdkAppID(user[1]!);
      this.requireApp(sdkAppID);
      return this.backend.inspect(sdkAppID, validateUserID(decodePathSegment(user[2]!)));
    }
    const match = /^\/admin\/apps\/([^/]+)(?:\/(friends|status|kick))?$/.exec(path);
    if (!match) throw Object.assign(invalidParameters(`no admin route ${method} ${path}`), { httpStatus: 404 });
    const sdkAppID = parseSdkAppID(match[1]!);
    const action = match[2];
    if (!action && method === 'PUT') {
      const app = parseAppBody(sdkAppID, await readJson(request), this.backend.getApp(sdkAppID));
      return this.backend.putApp(app);
    }
    if (!action && method === 'GET') return publicApp(this.requireApp(sdkAppID));
    if (method !== 'POST' || !action) {
      throw Object.assign(invalidParameters(`method ${method} is not allowed on ${path}`), { httpStatus: 405 });
    }
    this.requireApp(sdkAppID);
    const body = await readJson(request);
    switch (action) {
      case 'friends': {
        const { add, remove } = parseFriendsBody(body);
        await this.backend.changeFriends(sdkAppID, add, remove);
        return { ok: true };
      }
      case 'status': {
        const userIDs = validateUserIDList((body as { userIDs?: unknown })?.userIDs, ADMIN_MAX_QUERY_USERS);
        return { statuses: await this.backend.statuses(sdkAppID, userIDs) };
      }
      case 'kick': {
        const userID = validateUserID((body as { userID?: unknown })?.userID);
        await this.backend.kick(sdkAppID, userID);
        return { ok: true };
      }
    }
    throw invalidParameters(`unknown action ${action}`);
  }

  private requireApp(sdkAppID: number): AppConfig {
    const app = this.backend.getApp(sdkAppID);
    if (!app) throw notFound(`sdkAppID ${sdkAppID} is not configured; create it with PUT /admin/apps/${sdkAppID}`);
    return app;
  }
}

function decodePathSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw invalidParameters(`the path segment ${segment} is not valid percent-encoding`);
  }
}

async function readJson(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw invalidParameters(`the body is over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.length === 0) return {};
  try {
    return JSON.parse(text);
  } catch {
    throw invalidParameters('the body is not valid JSON');
  }
}

export function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  response.end(text);
}
