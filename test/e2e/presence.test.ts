import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserStatusType } from '../../src/client/index.js';
import { expectCode, loginDevice, type TestDevice } from '../support/clients.js';
import { startDeployment, type Deployment, type TestApp } from '../support/deployment.js';

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

const login = async (userID: string, options: Parameters<typeof loginDevice>[3] = {}) => {
  const device = await loginDevice(deployment, app, userID, options);
  devices.push(device);
  return device;
};

describe('presence', () => {
  it('presence - login makes the user ONLINE for everyone who asks', async () => {
    const alice = await login('p1-alice', { node: 0 });
    const bob = await login('p1-bob', { node: 1 });
    const [status] = await bob.client.getUserStatus(['p1-alice']);
    expect(status).toMatchObject({ userID: 'p1-alice', statusType: UserStatusType.ONLINE, customStatus: '', lastSeenAt: 0 });
    expect(status!.version).toBeGreaterThan(0);
    expect(alice.client.getLoginUser()).toBe('p1-alice');
  });

  it('presence - a subscriber sees a custom status change pushed', async () => {
    const carol = await login('p2-carol', { node: 0 });
    const dave = await login('p2-dave', { node: 1 });
    await dave.client.subscribeUserStatus(['p2-carol']);
    await carol.client.setSelfStatus({ customStatus: 'in a call' });
    const pushed = await dave.waitForStatus('p2-carol', (s) => s.customStatus === 'in a call');
    expect(pushed.statusType).toBe(UserStatusType.ONLINE);
  });

  it('presence - getUserStatus of unknown users answers UNLOGINED', async () => {
    const erin = await login('p3-erin');
    const [status] = await erin.client.getUserStatus(['p3-nobody']);
    expect(status).toEqual({ userID: 'p3-nobody', statusType: UserStatusType.UNLOGINED, customStatus: '', version: 0, lastSeenAt: 0 });
  });

  it('presence - a call before login is refused with 6014', async () => {
    const { PresenceClient } = await import('../../src/client/index.js');
    const client = new PresenceClient({ url: deployment.url(), sdkAppID: app.sdkAppID });
    await expectCode(client.getUserStatus(['x']), 6014);
    client.close();
  });
});
