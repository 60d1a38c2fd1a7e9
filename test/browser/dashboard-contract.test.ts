import type { Browser, Page, Request, Route } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loginDevice, type TestDevice } from '../support/clients.js';
import { launchChromium } from '../support/chromium.js';
import { startDeployment, type Deployment, type TestApp } from '../support/deployment.js';

/** What the user view promises beyond dashboard.test.ts: the right user, the right state, streams closed. */

/** How long to wait for an event the page owes us before the test fails. */
const EVENT_TIMEOUT_MS = 10_000;

let deployment: Deployment;
let app: TestApp;
let browser: Browser;
const devices: TestDevice[] = [];

beforeAll(async () => {
  deployment = await startDeployment();
  app = await deployment.newApp();
  browser = await launchChromium();
});

afterAll(async () => {
  for (const device of devices) device.client.close();
  await browser?.close();
  await deployment?.stop();
});

async function login(userID: string): Promise<TestDevice> {
  const device = await loginDevice(deployment, app, userID);
  devices.push(device);
  return device;
}

async function newPage(): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  await page.goto(`${deployment.nodes[0]!.httpUrl}/ui/#user`);
  await page.fill('#admin-key', deployment.adminKey);
  await page.click('#key-form button');
  return page;
}

async function lookUp(page: Page, userID: string, sdkAppID = String(app.sdkAppID)): Promise<void> {
  await page.fill('#user-app', sdkAppID);
  await page.fill('#user-id', userID);
  await page.click('#user-form button');
}

const activeState = (id: string) => `#chart [data-state-id="${id}"].active`;
const activeStates = (page: Page) =>
  page.locator('#chart [data-state-id].active').evaluateAll((nodes) => nodes.map((n) => n.getAttribute('data-state-id')));
const userPath = (userID: string) => `/admin/apps/${app.sdkAppID}/users/${encodeURIComponent(userID)}`;

describe('dashboard contract', () => {
  it('dashboard-contract - a re-read of the previous user still under way does not draw that user into the next one looked up', async () => {
    const ann = await login('uc-ann');
    const page = await newPage();
    await lookUp(page, 'uc-ann');
    await page.waitForSelector(activeState('online'));

    // Ann's re-read after her next transition is held until Ben is on show.
    const annPath = userPath('uc-ann');
    let hold!: (route: Route) => void;
    const held = new Promise<Route>((resolve) => (hold = resolve));
    await page.route((url) => url.pathname === annPath, (route) => hold(route));
    await ann.client.setSelfStatus({ customStatus: 'ann-only' });
    const route = await held;

    await lookUp(page, 'uc-ben');
    await page.waitForSelector(activeState('unlogined'));
    const failed = page.waitForEvent('requestfailed', { predicate: (r) => new URL(r.url()).pathname === annPath, timeout: EVENT_TIMEOUT_MS });
    await route.continue().catch(() => undefined);
    // Done when the page aborted it, or read all of it (then one more task for what it does with it).
    await Promise.race([
      failed,
      page.evaluate(
        (path) =>
          new Promise<void>((resolve) => {
            const read = () => performance.getEntriesByType('resource').some((entry) => entry.name.endsWith(path));
            const settle = () => setTimeout(resolve, 0);
            if (read()) return settle();
            new PerformanceObserver((_list, observer) => {
              if (!read()) return;
              observer.disconnect();
              settle();
            }).observe({ type: 'resource' });
          }),
        annPath,
      ),
    ]);

    expect(await activeStates(page)).toEqual(['unlogined', 'unlogined.idle']);
    expect(await page.textContent('#user-status')).not.toContain('ann-only');
    await page.close();
  });

  it('dashboard-contract - leaving the user view closes its live stream', async () => {
    await login('uc-cleo');
    const page = await newPage();
    const stream = page.waitForRequest((r) => r.url().endsWith(`${userPath('uc-cleo')}/events`));
    await lookUp(page, 'uc-cleo');
    const request: Request = await stream;
    await page.waitForSelector(activeState('online'));

    const closed = page.waitForEvent('requestfailed', { predicate: (r) => r === request, timeout: EVENT_TIMEOUT_MS });
    await page.click('#tab-cluster');
    expect((await closed).failure()?.errorText).toBeDefined();
    await page.close();
  });

  it('dashboard-contract - a look-up that fails leaves no state of the user shown before', async () => {
    const dina = await login('uc-dina');
    await dina.client.setSelfStatus({ customStatus: 'dina-only' });
    const page = await newPage();
    await lookUp(page, 'uc-dina');
    await page.waitForSelector(activeState('online'));
    await expect.poll(() => page.textContent('#user-status')).toContain('dina-only');

    await lookUp(page, 'uc-dina', '999');
    await page.waitForSelector('#error:not([hidden])');
    expect(await page.textContent('#error')).toContain('999');
    expect(await activeStates(page)).toEqual([]);
    expect(await page.textContent('#user-status')).not.toContain('dina-only');
    await page.close();
  });

  it('dashboard-contract - a custom status or a userID written as HTML is shown as text', async () => {
    const eve = await login('uc-eve');
    const markup = '<img src=x onerror="window.__xss=1">';
    await eve.client.setSelfStatus({ customStatus: markup });
    const page = await newPage();
    await lookUp(page, 'uc-eve');
    await expect.poll(() => page.textContent('#user-status')).toContain(markup);
    expect(await page.locator('#user-status img').count()).toBe(0);

    await lookUp(page, markup);
    await page.waitForSelector('#error:not([hidden])');
    expect(await page.textContent('#error')).toContain('6017');
    expect(await page.locator('#error *').count()).toBe(0);
    expect(await page.evaluate(() => (window as { __xss?: number }).__xss)).toBeUndefined();
    await page.close();
  });

  it('dashboard-contract - after a logout the chart highlights unlogined and the sub-state that keeps the subscriptions', async () => {
    const finn = await login('uc-finn');
    await finn.client.subscribeUserStatus(['uc-gus']);
    const page = await newPage();
    await lookUp(page, 'uc-finn');
    await page.waitForSelector(activeState('online'));

    await finn.client.logout();
    await page.waitForSelector(activeState('unlogined.retainingSubscriptions'));
    expect(await activeStates(page)).toEqual(['unlogined', 'unlogined.retainingSubscriptions']);
    await expect.poll(() => page.textContent('#user-deadlines')).toContain('subscription retention ends');
    await expect.poll(() => page.textContent('#transitions tbody')).toContain('LOGOUT');
    await page.close();
  });
});
