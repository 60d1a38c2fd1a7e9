import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyWebhook } from '../../src/webhooks/signature.js';
import { loginDevice, type TestDevice } from '../support/clients.js';
import { startDeployment, type Deployment } from '../support/deployment.js';
import { WebhookReceiver, type Received } from '../support/webhookReceiver.js';

/**
 * Webhooks: an app with a `callbackUrl` gets a signed `State.StateChange` POST for every
 * status change, in order per user, and every one of them even when its server was down
 * for a while. Every userID starts with `wh-`.
 */

let deployment: Deployment;
const receiver = new WebhookReceiver();
const devices: TestDevice[] = [];

beforeAll(async () => {
  deployment = await startDeployment();
  await receiver.start();
});

afterAll(async () => {
  for (const device of devices) device.client.close();
  await deployment?.stop();
  await receiver.down().catch(() => undefined);
});

/** Polls `condition`, for state only an admin call can show. */
async function until(condition: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const giveUpAt = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > giveUpAt) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const summary = (r: Received) => `${r.body.Info.Action}/${r.body.Info.Reason}/${r.body.CustomStatus}/v${r.body.Version}`;

describe('webhooks', () => {
  it('webhooks - login, custom status, logout arrive in order, signed with the app secret, with an idempotency key', async () => {
    const app = await deployment.newApp({ callbackUrl: receiver.url });
    const alice = await loginDevice(deployment, app, 'wh-alice');
    devices.push(alice);
    await alice.client.setSelfStatus({ customStatus: 'in a call' });
    await alice.client.logout();

    await receiver.until(() => receiver.of('wh-alice').length === 3, 'three events of wh-alice');
    const events = receiver.of('wh-alice');
    expect(events.map(summary)).toEqual(['Login/Register//v1', 'Login/CustomStatus/in a call/v2', 'Logout/Unregister//v3']);
    for (const event of events) {
      expect(event.body).toMatchObject({ CallbackCommand: 'State.StateChange', KickedDevice: [] });
      expect(typeof event.body.EventTime).toBe('number');
      expect(event.idempotencyKey).toBe(`${app.sdkAppID}:wh-alice:${event.body.Version}`);
      expect(verifyWebhook(app.secretKey, event.raw, event.signature)).toBe(true);
      // Tencent's query, which app servers moving over route on.
      expect(event.target).toBe(`/presence-callback?SdkAppid=${app.sdkAppID}&CallbackCommand=State.StateChange&contenttype=json`);
    }
  });

  it('webhooks - a receiver that is down for a while still gets every event afterwards, in order', async () => {
    const app = await deployment.newApp({ callbackUrl: receiver.url });
    const port = receiver.port;
    await receiver.down();
    const bob = await loginDevice(deployment, app, 'wh-bob');
    devices.push(bob);
    for (const text of ['one', 'two', 'three']) await bob.client.setSelfStatus({ customStatus: text });
    bob.client.close(); // a drop: Disconnect
    await new Promise((resolve) => setTimeout(resolve, 1_500)); // the outage outlasts the first retry
    expect(receiver.of('wh-bob')).toEqual([]);

    await receiver.start(port);
    await receiver.until(() => receiver.of('wh-bob').some((r) => r.body.Info.Action === 'Disconnect'), 'the Disconnect of wh-bob', 30_000);
    const versions = receiver.of('wh-bob').map((r) => r.body.Version);
    expect(versions).toEqual([1, 2, 3, 4, 5]);
    expect(receiver.of('wh-bob').map((r) => r.body.Info.Action)).toEqual(['Login', 'Login', 'Login', 'Login', 'Disconnect']);
  });

  it('webhooks - events that waited while the app had no callbackUrl go out once it has one again', async () => {
    const gone = new WebhookReceiver();
    await gone.start();
    await gone.down();
    const app = await deployment.newApp({ callbackUrl: gone.url });
    const carol = await loginDevice(deployment, app, 'wh-carol');
    devices.push(carol);
    // Her Login fails to go out; the retry finds no callbackUrl and stops, the event still waiting.
    await deployment.admin.call('PUT', `/admin/apps/${app.sdkAppID}`, { callbackUrl: null });
    type View = { webhooks?: { pending: number; failures?: number } };
    const view = () => deployment.admin.call('GET', `/admin/apps/${app.sdkAppID}/users/wh-carol`) as Promise<View>;
    await until(async () => {
      const { webhooks } = await view();
      return webhooks?.pending === 1 && webhooks.failures === undefined;
    }, 'the retry of wh-carol without a callbackUrl');

    await deployment.admin.call('PUT', `/admin/apps/${app.sdkAppID}`, { callbackUrl: receiver.url });
    await receiver.until(() => receiver.of('wh-carol').length === 1, 'the Login of wh-carol', 10_000);
    expect(receiver.of('wh-carol').map(summary)).toEqual(['Login/Register//v1']);
  });

  it('webhooks - callbackUrl is validated, shown by GET, and removed with null', async () => {
    const app = await deployment.newApp();
    const put = (body: unknown) =>
      fetch(`${deployment.nodes[0]!.httpUrl}/admin/apps/${app.sdkAppID}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${deployment.adminKey}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const bad = await put({ callbackUrl: 'ftp://example.com/x' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { code: number }).code).toBe(6017);
    expect((await put({ callbackUrl: receiver.url })).status).toBe(200);
    expect((await deployment.admin.getApp(app.sdkAppID)).callbackUrl).toBe(receiver.url);
    expect((await put({ callbackUrl: null })).status).toBe(200);
    expect((await deployment.admin.getApp(app.sdkAppID)).callbackUrl).toBeUndefined();
  });
});
