import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loginDevice, type TestDevice } from '../support/clients.js';
import { launchChromium } from '../support/chromium.js';
import { startDeployment, type Deployment, type TestApp } from '../support/deployment.js';

/**
 * The dashboard at /ui in real headless Chromium (Debian's, driven by playwright-core):
 * a user's state highlighted on the state chart follows the user live.
 * `PRESENCE_UPDATE_SCREENSHOTS=1` also writes docs/ui-user.png and docs/ui-cluster.png
 * (with `PRESENCE_E2E_MODE=cluster` the cluster view shows three nodes).
 */

const DOCS = fileURLToPath(new URL('../../docs/', import.meta.url));
const UPDATE_SCREENSHOTS = process.env.PRESENCE_UPDATE_SCREENSHOTS === '1';

let deployment: Deployment;
let app: TestApp;
let browser: Browser;
let page: Page;
const devices: TestDevice[] = [];

beforeAll(async () => {
  deployment = await startDeployment();
  app = await deployment.newApp();
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
});

afterAll(async () => {
  for (const device of devices) device.client.close();
  await browser?.close();
  await deployment?.stop();
});

async function openUserView(userID: string): Promise<void> {
  await page.goto(`${deployment.nodes[0]!.httpUrl}/ui/#user`);
  await page.fill('#admin-key', deployment.adminKey);
  await page.click('#key-form button');
  await page.fill('#user-app', String(app.sdkAppID));
  await page.fill('#user-id', userID);
  await page.click('#user-form button');
  await page.waitForSelector('#live-state.live');
}

const activeState = (id: string) => `#chart [data-state-id="${id}"].active`;

describe('dashboard', () => {
  it('dashboard - the user view highlights online after a login, then offline when the socket drops, without a reload', async () => {
    const alice = await loginDevice(deployment, app, 'ui-alice');
    devices.push(alice);
    await alice.client.setSelfStatus({ customStatus: 'in a call' });
    await alice.client.subscribeUserStatus(['ui-bob', 'ui-carol']);

    await openUserView('ui-alice');
    await page.waitForSelector(activeState('online'));
    expect(await page.locator('#chart [data-state-id].active').evaluateAll((nodes) => nodes.map((n) => n.getAttribute('data-state-id')))).toEqual(['online']);
    await expect.poll(() => page.textContent('#user-status')).toContain('in a call');
    expect(await page.locator('#user-subs li').count()).toBe(2);
    expect(await page.locator('#user-devices tbody tr').count()).toBe(1);
    if (UPDATE_SCREENSHOTS) await page.screenshot({ path: `${DOCS}ui-user.png`, fullPage: true });

    const navigations: string[] = [];
    page.on('framenavigated', (frame) => navigations.push(frame.url()));
    alice.client.close(); // a drop, not a logout: the user becomes OFFLINE
    await page.waitForSelector(activeState('offline'));
    expect(await page.locator(activeState('online')).count()).toBe(0);
    await expect.poll(() => page.textContent('#transitions tbody')).toContain('DISCONNECT');
    await expect.poll(() => page.textContent('#user-status')).toContain('OFFLINE');
    expect(navigations).toEqual([]);
  });

  it('dashboard - the cluster view lists the nodes and colours every shard by its owner', async () => {
    await page.goto(`${deployment.nodes[0]!.httpUrl}/ui/#cluster`);
    await page.fill('#admin-key', deployment.adminKey);
    await page.click('#key-form button');
    await expect.poll(() => page.locator('#nodes tbody tr').count()).toBe(deployment.nodes.length);
    await expect.poll(() => page.textContent('#shard-summary')).toContain('1024 shards, 0 unowned');
    expect(await page.locator('#shards span').count()).toBe(1024);
    if (UPDATE_SCREENSHOTS) {
      mkdirSync(DOCS, { recursive: true });
      await page.screenshot({ path: `${DOCS}ui-cluster.png`, fullPage: true });
    }
  });

  it('dashboard - without the admin key the data is refused and the page says so', async () => {
    const fresh = await browser.newPage();
    await fresh.goto(`${deployment.nodes[0]!.httpUrl}/ui/#cluster`);
    await fresh.fill('#admin-key', 'not-the-key');
    await fresh.click('#key-form button');
    await fresh.waitForSelector('#error:not([hidden])');
    expect(await fresh.textContent('#error')).toContain('6014');
    await fresh.close();
  });
});
