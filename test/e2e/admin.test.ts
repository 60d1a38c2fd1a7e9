import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserStatusType } from '../../src/client/index.js';
import { AdminError } from '../support/admin.js';
import { loginDevice, type TestDevice } from '../support/clients.js';
import { startDeployment, type Deployment, type TestApp } from '../support/deployment.js';

/**
 * SPEC §5–6: the admin API over HTTP, health and readiness. Every userID starts with `ad-`.
 */

let deployment: Deployment;
const devices: TestDevice[] = [];

beforeAll(async () => {
  deployment = await startDeployment();
});

afterAll(async () => {
  for (const device of devices) device.client.close();
  await deployment?.stop();
});

const login = async (app: TestApp, userID: string, options: Parameters<typeof loginDevice>[3] = {}) => {
  const device = await loginDevice(deployment, app, userID, options);
  devices.push(device);
  return device;
};

const httpUrl = (node = 0) => deployment.nodes[node % deployment.nodes.length]!.httpUrl;

/** A raw request; resolves with the HTTP status and the parsed JSON body. */
const raw = async (method: string, path: string, init: { key?: string | null; body?: string; node?: number } = {}) => {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  const key = init.key === undefined ? deployment.adminKey : init.key;
  if (key !== null) headers.authorization = `Bearer ${key}`;
  const response = await fetch(`${httpUrl(init.node)}${path}`, {
    method,
    headers,
    ...(init.body === undefined ? {} : { body: init.body }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
};

/** Expects `call` to fail with HTTP `status` and body code `code`. */
const expectAdminError = async (call: Promise<unknown>, status: number, code: number) => {
  try {
    await call;
  } catch (error) {
    if (error instanceof AdminError) {
      expect({ status: error.status, code: error.body.code }).toEqual({ status, code });
      expect(typeof error.body.desc).toBe('string');
      expect(error.body.desc.length).toBeGreaterThan(0);
      return error;
    }
    throw error;
  }
  throw new Error(`expected HTTP ${status} with code ${code}, but the call succeeded`);
};

let nextID = 1_200_000_000 + Math.floor(Math.random() * 1_000_000) * 10;
const freshAppID = () => nextID++;
const secret = () => `secret-${Math.random().toString(36).slice(2)}-${Date.now()}`;

describe('authorization', () => {
  it('admin - a request without the bearer key is refused with 401 and { code, desc }', async () => {
    for (const [method, path] of [
      ['GET', '/admin/cluster'],
      ['GET', '/admin/apps/1400000001'],
      ['PUT', '/admin/apps/1400000001'],
      ['POST', '/admin/apps/1400000001/kick'],
    ] as const) {
      const { status, body } = await raw(method, path, { key: null, body: method === 'GET' ? undefined : '{}' });
      expect(status, `${method} ${path}`).toBe(401);
      expect(typeof body.code).toBe('number');
      expect(body.code).toBe(6014); // docs/decisions.md
      expect(typeof body.desc).toBe('string');
    }
  });

  it('admin - a request with a wrong bearer key is refused with 401', async () => {
    for (const key of ['wrong', `${deployment.adminKey}x`, deployment.adminKey.slice(1), '']) {
      const { status, body } = await raw('GET', '/admin/cluster', { key });
      expect(status).toBe(401);
      expect(typeof body.code).toBe('number');
      expect(typeof body.desc).toBe('string');
    }
    const basic = await fetch(`${httpUrl()}/admin/cluster`, { headers: { authorization: `Basic ${deployment.adminKey}` } });
    expect(basic.status).toBe(401);
  });

  it('admin - a refused PUT creates no app', async () => {
    const id = freshAppID();
    const { status } = await raw('PUT', `/admin/apps/${id}`, {
      key: 'wrong',
      body: JSON.stringify({ secretKey: secret(), edition: 'premium', userStatusEnabled: true, friendStatusAutoNotify: true }),
    });
    expect(status).toBe(401);
    await expectAdminError(deployment.admin.getApp(id), 404, 70020);
  });
});

describe('apps', () => {
  it('admin - PUT stores an app and GET returns it without its secretKey', async () => {
    const id = freshAppID();
    const secretKey = secret();
    const stored = (await deployment.admin.putApp(id, {
      secretKey,
      edition: 'premium',
      userStatusEnabled: true,
      friendStatusAutoNotify: false,
      limits: { subscriptionCap: 7, rateLimit: { count: 4 } },
    })) as Record<string, unknown>;
    expect(stored).toMatchObject({ sdkAppID: id, edition: 'premium', userStatusEnabled: true, friendStatusAutoNotify: false });

    const app = await deployment.admin.getApp(id);
    expect(app).toMatchObject({ sdkAppID: id, edition: 'premium', userStatusEnabled: true, friendStatusAutoNotify: false });
    expect(app).not.toHaveProperty('secretKey');
    expect(JSON.stringify(app)).not.toContain(secretKey);
    expect(app.limits).toEqual({
      heartbeatIntervalMs: 30_000,
      heartbeatTimeoutMs: 400_000,
      subscriptionCap: 7,
      maxQueryUsers: 500,
      maxSubscribePerCall: 100,
      rateLimit: { count: 4, windowMs: 5_000 },
      subscriptionRetentionMs: 600_000,
    });
  });

  it('admin - PUT again replaces the settings and devices can log in with the stored secret', async () => {
    const id = freshAppID();
    const secretKey = secret();
    await deployment.admin.putApp(id, { secretKey, edition: 'basic', userStatusEnabled: false, friendStatusAutoNotify: false });
    expect(await deployment.admin.getApp(id)).toMatchObject({ edition: 'basic', userStatusEnabled: false });
    await deployment.admin.putApp(id, { secretKey, edition: 'premium', userStatusEnabled: true, friendStatusAutoNotify: true });
    expect(await deployment.admin.getApp(id)).toMatchObject({ edition: 'premium', userStatusEnabled: true, friendStatusAutoNotify: true });
    const { genUserSig } = await import('../../src/auth/index.js');
    const app: TestApp = { sdkAppID: id, secretKey, sig: (userID, o = {}) => genUserSig({ sdkAppID: id, secretKey, userID, ...o }) };
    const device = await login(app, 'ad-put-user', { node: 1 });
    expect(device.client.getLoginUser()).toBe('ad-put-user');
  });

  const invalidBodies: Array<[string, unknown]> = [
    ['an unknown edition', { edition: 'gold' }],
    ['a short secretKey', { secretKey: 'short' }],
    ['a secretKey that is not a string', { secretKey: 12345678901234567890 }],
    ['a switch that is not a boolean', { userStatusEnabled: 'yes' }],
    ['a limit of 0', { limits: { subscriptionCap: 0 } }],
    ['a negative limit', { limits: { maxQueryUsers: -1 } }],
    ['a limit that is not a number', { limits: { heartbeatTimeoutMs: 'soon' } }],
    ['a fractional limit', { limits: { subscriptionRetentionMs: 1.5 } }],
    ['a rate limit count of 0', { limits: { rateLimit: { count: 0, windowMs: 1000 } } }],
    ['a rate limit that is not an object', { limits: { rateLimit: 20 } }],
    ['limits that are not an object', { limits: [1, 2] }],
    ['a heartbeat interval not shorter than its timeout', { limits: { heartbeatIntervalMs: 5000, heartbeatTimeoutMs: 5000 } }],
  ];
  it.each(invalidBodies)('admin - PUT with %s is refused with 400 6017 and changes nothing', async (_label, change) => {
    const id = freshAppID();
    const valid = { secretKey: secret(), edition: 'premium', userStatusEnabled: true, friendStatusAutoNotify: true };
    await deployment.admin.putApp(id, valid as never);
    const before = await deployment.admin.getApp(id);
    const body = { ...valid, ...(change as object) };
    await expectAdminError(deployment.admin.call('PUT', `/admin/apps/${id}`, body), 400, 6017);
    expect(await deployment.admin.getApp(id)).toEqual(before);
  });

  it('admin - PUT of a new app without a secretKey, or with a body that is not JSON, is refused with 400 6017', async () => {
    const id = freshAppID();
    await expectAdminError(deployment.admin.call('PUT', `/admin/apps/${id}`, { edition: 'premium' }), 400, 6017);
    await expectAdminError(deployment.admin.call('PUT', `/admin/apps/${id}`, '{not json'), 400, 6017);
    await expectAdminError(deployment.admin.call('PUT', `/admin/apps/${id}`, '[]'), 400, 6017);
    await expectAdminError(deployment.admin.getApp(id), 404, 70020);
  });

  it('admin - an unknown app is 404 with 70020 on every app route', async () => {
    const id = freshAppID();
    await expectAdminError(deployment.admin.getApp(id), 404, 70020);
    await expectAdminError(deployment.admin.status(id, ['ad-x']), 404, 70020);
    await expectAdminError(deployment.admin.kick(id, 'ad-x'), 404, 70020);
    await expectAdminError(deployment.admin.friends(id, { add: [['ad-x', 'ad-y']] }), 404, 70020);
  });
});

describe('friends', () => {
  it('admin - friends with an invalid pair are refused with 400 6017', async () => {
    const app = await deployment.newApp();
    for (const body of [{ add: [['ad-a', 'ad-a']] }, { add: [['ad-a']] }, { remove: [['ad-a', 'not valid!']] }, { add: 'ad-a' }]) {
      await expectAdminError(deployment.admin.call('POST', `/admin/apps/${app.sdkAppID}/friends`, body), 400, 6017);
    }
    expect(await deployment.admin.friends(app.sdkAppID, { add: [['ad-a', 'ad-b']], remove: [['ad-c', 'ad-d']] })).toEqual({ ok: true });
  });
});

describe('status', () => {
  it('admin - a status query of up to 500 ids works on a basic app, in order, with live statuses', async () => {
    const app = await deployment.newApp({ edition: 'basic', userStatusEnabled: false });
    const device = await login(app, 'ad-status-on', { node: 2 });
    await device.client.setSelfStatus({ customStatus: 'visible to the admin' });
    const ids = ['ad-status-on', ...Array.from({ length: 499 }, (_, i) => `ad-status-${i}`)];
    const statuses = await deployment.admin.status(app.sdkAppID, ids);
    expect(statuses.map((s) => s.userID)).toEqual(ids);
    expect(statuses[0]).toMatchObject({ statusType: UserStatusType.ONLINE, customStatus: 'visible to the admin', lastSeenAt: 0 });
    expect(statuses[1]).toEqual({ userID: 'ad-status-0', statusType: UserStatusType.UNLOGINED, customStatus: '', version: 0, lastSeenAt: 0 });
  });

  it('admin - a status query of 501 ids is refused with 400 6017', async () => {
    const app = await deployment.newApp({ edition: 'basic' });
    const ids = Array.from({ length: 501 }, (_, i) => `ad-many-${i}`);
    await expectAdminError(deployment.admin.status(app.sdkAppID, ids), 400, 6017);
    await expectAdminError(deployment.admin.status(app.sdkAppID, ['not valid!']), 400, 6017);
  });

  it("admin - the status query ignores the app's maxQueryUsers and edition", async () => {
    const app = await deployment.newApp({ edition: 'basic', limits: { maxQueryUsers: 5 } });
    const ids = Array.from({ length: 20 }, (_, i) => `ad-small-${i}`);
    expect(await deployment.admin.status(app.sdkAppID, ids)).toHaveLength(20);
  });
});

describe('kick', () => {
  it('admin - kicking a user who never logged in answers OK', async () => {
    const app = await deployment.newApp();
    expect(await deployment.admin.kick(app.sdkAppID, 'ad-never-seen')).toEqual({ ok: true });
    const [status] = await deployment.admin.status(app.sdkAppID, ['ad-never-seen']);
    expect(status!.statusType).toBe(UserStatusType.UNLOGINED);
  });

  it('admin - a kick with an invalid userID is refused with 400 6017', async () => {
    const app = await deployment.newApp();
    await expectAdminError(deployment.admin.kick(app.sdkAppID, 'not valid!'), 400, 6017);
    await expectAdminError(deployment.admin.call('POST', `/admin/apps/${app.sdkAppID}/kick`, {}), 400, 6017);
  });
});

describe('cluster and health', () => {
  it('admin - GET /admin/cluster shows every node with its shards and actor count', async () => {
    const app = await deployment.newApp();
    await login(app, 'ad-cluster-a', { node: 0 });
    await login(app, 'ad-cluster-b', { node: 1 });
    const actorsIn = (view: Record<string, unknown>) => (view.nodes as Array<Record<string, unknown>>).reduce((sum, n) => sum + (n.actors as number), 0);
    // Another node's actor count reaches the view with its next heartbeat (every 500 ms).
    let view = await deployment.admin.cluster();
    for (const giveUpAt = Date.now() + 10_000; actorsIn(view) < 2 && Date.now() < giveUpAt; ) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      view = await deployment.admin.cluster();
    }
    const nodes = view.nodes as Array<Record<string, unknown>>;
    expect(Array.isArray(nodes)).toBe(true);
    expect(nodes.map((n) => n.nodeId).sort()).toEqual(deployment.nodes.map((n) => n.nodeId).sort());
    for (const node of nodes) {
      const shards = node.shards;
      expect(typeof shards === 'number' ? shards : (shards as unknown[]).length).toBeGreaterThan(0);
      expect(typeof node.actors).toBe('number');
    }
    const actors = actorsIn(view);
    expect(actors).toBeGreaterThanOrEqual(2); // the two users logged in above
  });

  it('admin - /healthz and /readyz answer 200 on every node without a key', async () => {
    for (let node = 0; node < deployment.nodes.length; node++) {
      for (const path of ['/healthz', '/readyz']) {
        const response = await fetch(`${httpUrl(node)}${path}`);
        expect(response.status, `${path} on node ${node}`).toBe(200);
      }
    }
  });
});
