import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserStatusType } from '../../src/client/index.js';
import { expectCode, loginDevice, type TestDevice } from '../support/clients.js';
import { startDeployment, type Deployment, type TestApp } from '../support/deployment.js';

/**
 * What operators read: `/metrics` (Prometheus), and the dashboard's admin routes, a
 * user's actor inspected and its transitions streamed live. Every userID starts with `ob-`.
 */

let deployment: Deployment;
let app: TestApp;
const devices: TestDevice[] = [];

beforeAll(async () => {
  deployment = await startDeployment();
  app = await deployment.newApp();
});

afterAll(async () => {
  for (const device of devices) device.client.close();
  await deployment?.stop();
});

const login = async (userID: string, node = 0) => {
  const device = await loginDevice(deployment, app, userID, { node });
  devices.push(device);
  return device;
};

/** Every sample of node `i`'s /metrics, keyed by name and labels as printed (the node label left out). */
async function metrics(i: number): Promise<Map<string, number>> {
  const response = await fetch(`${deployment.nodes[i]!.httpUrl}/metrics`);
  expect(response.headers.get('content-type')).toContain('text/plain');
  const samples = new Map<string, number>();
  for (const line of (await response.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const match = /^([^ ]+) ([^ ]+)$/.exec(line);
    if (match) samples.set(match[1]!.replace(/,?node="[^"]*"/, '').replace('{}', ''), Number(match[2]));
  }
  return samples;
}

const sample = (samples: Map<string, number>, key: string) => samples.get(key) ?? 0;
const total = async (key: string) => (await Promise.all(deployment.nodes.map((_, i) => metrics(i)))).reduce((sum, s) => sum + sample(s, key), 0);

const admin = (path: string) => fetch(`${deployment.nodes[0]!.httpUrl}${path}`, { headers: { authorization: `Bearer ${deployment.adminKey}` } });

describe('observability', () => {
  it('metrics - /metrics is Prometheus text without a key and the shards owned add up to 1024', async () => {
    expect(await total('presence_shards_owned')).toBe(1024);
    const samples = await metrics(0);
    expect(samples.has('presence_process_resident_memory_bytes')).toBe(true);
  });

  it('metrics - every metric the Grafana dashboard (deploy/grafana/presence.json) plots is exported', async () => {
    const { readFile } = await import('node:fs/promises');
    const dashboard = await readFile(new URL('../../deploy/grafana/presence.json', import.meta.url), 'utf8');
    const plotted = new Set([...dashboard.matchAll(/presence_[a-z_]+/g)].map((m) => m[0].replace(/_bucket$/, '')));
    const exported = await (await fetch(`${deployment.nodes[0]!.httpUrl}/metrics`)).text();
    const names = new Set([...exported.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]!));
    expect([...plotted].filter((name) => !names.has(name))).toEqual([]);
    expect(plotted.size).toBeGreaterThan(10);
  });

  it('metrics - logins, calls, connections, notifications and fan-out latency move when clients act', async () => {
    const loginsBefore = await total('presence_logins_total{result="ok"}');
    const callsBefore = await total('presence_requests_total{op="setSelfStatus",code="0"}');
    const deliveredBefore = await total('presence_notifications_delivered_total');
    const fannedBefore = await total('presence_fanout_latency_seconds_count');

    const watcher = await login('ob-watcher', 0);
    const watched = await login('ob-watched', 1);
    await watcher.client.subscribeUserStatus(['ob-watched']);
    await watched.client.setSelfStatus({ customStatus: 'measured' });
    await watcher.waitForStatus('ob-watched', (s) => s.customStatus === 'measured');

    expect(await total('presence_logins_total{result="ok"}')).toBe(loginsBefore + 2);
    expect(await total('presence_requests_total{op="setSelfStatus",code="0"}')).toBe(callsBefore + 1);
    expect(await total('presence_connections')).toBeGreaterThanOrEqual(2);
    expect(await total('presence_notifications_delivered_total')).toBeGreaterThan(deliveredBefore);
    expect(await total('presence_fanout_latency_seconds_count')).toBeGreaterThan(fannedBefore);
    expect(await total('presence_online_users')).toBeGreaterThanOrEqual(2);
  });

  it('metrics - a refused login and a rate-limited call are counted with their codes', async () => {
    const refusedBefore = await total('presence_logins_total{result="70001"}');
    const { PresenceClient } = await import('../../src/client/index.js');
    const client = new PresenceClient({ url: deployment.url(0), sdkAppID: app.sdkAppID });
    await expectCode(client.login('ob-expired', app.sig('ob-expired', { now: Date.now() - 1_000_000, expire: 10 })), 70001);
    client.close();
    expect(await total('presence_logins_total{result="70001"}')).toBe(refusedBefore + 1);

    const limitedBefore = await total('presence_rate_limit_refusals_total{op="getUserStatus"}');
    const caller = await login('ob-caller');
    for (let i = 0; i < 20; i++) await caller.client.getUserStatus(['ob-someone']);
    await expectCode(caller.client.getUserStatus(['ob-someone']), 7008);
    expect(await total('presence_rate_limit_refusals_total{op="getUserStatus"}')).toBe(limitedBefore + 1);
    expect(await total('presence_requests_total{op="getUserStatus",code="7008"}')).toBeGreaterThanOrEqual(1);
  });

  it('inspect - GET /admin/apps/:app/users/:user shows the actor: state, devices, subscriptions oldest first, rate windows, deadlines', async () => {
    const user = await login('ob-inspected');
    await user.client.subscribeUserStatus(['ob-first']);
    await user.client.subscribeUserStatus(['ob-second']);
    await user.client.setSelfStatus({ customStatus: 'looked at' });
    await user.client.getUserStatus(['ob-first']);

    const response = await admin(`/admin/apps/${app.sdkAppID}/users/ob-inspected`);
    expect(response.status).toBe(200);
    const view = (await response.json()) as Record<string, any>;
    expect(view).toMatchObject({ userID: 'ob-inspected', state: 'online', activeStates: ['online'], resident: true });
    expect(view.status).toMatchObject({ statusType: UserStatusType.ONLINE, customStatus: 'looked at' });
    expect(view.devices).toHaveLength(1);
    expect(view.devices[0].msLeft).toBeGreaterThan(0);
    expect(view.subscriptions.map((s: { userID: string }) => s.userID)).toEqual(['ob-first', 'ob-second']);
    expect(view.subscriptionCap).toBe(200);
    expect(view.rateWindows.find((w: { call: string }) => w.call === 'getUserStatus')).toMatchObject({ used: 1, limit: 20 });
    expect(view.deadlines[0].what).toContain('heartbeat timeout');
  });

  it('inspect - a user never seen is shown UNLOGINED; a bad userID or app is refused with its code', async () => {
    const view = (await (await admin(`/admin/apps/${app.sdkAppID}/users/ob-never`)).json()) as Record<string, any>;
    expect(view).toMatchObject({ status: { statusType: UserStatusType.UNLOGINED, version: 0 }, devices: [], subscriptions: [] });
    expect(view.activeStates[0]).toBe('unlogined');
    const bad = await admin(`/admin/apps/${app.sdkAppID}/users/${encodeURIComponent('bad id!')}`);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { code: number }).code).toBe(6017);
    const unknown = await admin(`/admin/apps/1/users/ob-x`);
    expect(unknown.status).toBe(404);
    const noKey = await fetch(`${deployment.nodes[0]!.httpUrl}/admin/apps/${app.sdkAppID}/users/ob-x/events`);
    expect(noKey.status).toBe(401);
  });

  it('inspect - the events stream sends the actor at once, then each transition as it happens', async () => {
    const user = await login('ob-live');
    const controller = new AbortController();
    const response = await fetch(`${deployment.nodes[0]!.httpUrl}/admin/apps/${app.sdkAppID}/users/ob-live/events`, {
      headers: { authorization: `Bearer ${deployment.adminKey}` },
      signal: controller.signal,
    });
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    const events: Array<{ event: string; data: Record<string, any> }> = [];
    let wake = () => {};
    void (async () => {
      const decoder = new TextDecoder();
      let buffer = '';
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const [eventLine, dataLine] = buffer.slice(0, end).split('\n');
          events.push({ event: eventLine!.slice(7), data: JSON.parse(dataLine!.slice(6)) });
          buffer = buffer.slice(end + 2);
          wake();
        }
      }
    })().catch(() => undefined);
    const until = (condition: () => boolean) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out; events: ${JSON.stringify(events)}`)), 10_000);
        const check = () => {
          if (!condition()) return;
          clearTimeout(timer);
          resolve();
        };
        wake = check;
        check();
      });
    try {
      await until(() => events.some((e) => e.event === 'inspection'));
      expect(events[0]).toMatchObject({ event: 'inspection', data: { state: 'online' } });

      await user.client.setSelfStatus({ customStatus: 'streamed' });
      await until(() => events.some((e) => e.event === 'transition' && e.data.event === 'SET_CUSTOM_STATUS'));
      await user.client.logout();
      await until(() => events.some((e) => e.event === 'transition' && e.data.event === 'LOGOUT'));
      const logout = events.find((e) => e.event === 'transition' && e.data.event === 'LOGOUT')!.data;
      expect(logout).toMatchObject({ from: 'online', statusType: UserStatusType.UNLOGINED });
      expect(logout.activeStates[0]).toBe('unlogined');
    } finally {
      controller.abort();
    }
  });

  it('ui - /ui serves the dashboard page and its assets from the package, without a key', async () => {
    const page = await fetch(`${deployment.nodes[0]!.httpUrl}/ui/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(await page.text()).toContain('/ui/app.js');
    for (const asset of ['/ui/app.js', '/ui/style.css']) expect((await fetch(`${deployment.nodes[0]!.httpUrl}${asset}`)).status).toBe(200);
    expect((await fetch(`${deployment.nodes[0]!.httpUrl}/ui/../package.json`)).status).toBe(404);
  });
});
