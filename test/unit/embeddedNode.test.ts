import { afterEach, describe, expect, it } from 'vitest';
import { genUserSig } from '../../src/auth/index.js';
import { PresenceClient } from '../../src/client/index.js';
import { PresenceNode } from '../../src/cluster/node.js';
import { withDefaultLimits, type AppConfig } from '../../src/cluster/stores/apps.js';
import { BUCKETS } from '../../src/cluster/subjects.js';
import { createLogger } from '../../src/log.js';

const app: AppConfig = {
  sdkAppID: 1400000001,
  secretKey: 'embedded-node-test-secret',
  edition: 'premium',
  userStatusEnabled: true,
  friendStatusAutoNotify: false,
  limits: withDefaultLimits(undefined),
};

describe('embedded node', () => {
  let node: PresenceNode | undefined;
  let client: PresenceClient | undefined;
  afterEach(async () => {
    client?.close();
    await node?.stop();
    node = client = undefined;
  });

  it('embedded node - keeps an online user in its actor alone, and stores the user when the actor leaves memory', async () => {
    node = new PresenceNode({ host: '127.0.0.1', port: 0, apps: [app], log: createLogger({ level: 'silent' }) });
    const port = await node.start();
    const users = await node.transport.kv(BUCKETS.users);
    client = new PresenceClient({ url: `ws://127.0.0.1:${port}/ws`, sdkAppID: app.sdkAppID });
    await client.login('alice', genUserSig({ sdkAppID: app.sdkAppID, secretKey: app.secretKey, userID: 'alice' }));
    await client.setSelfStatus({ customStatus: 'in a call' });
    expect(await users.keys()).toEqual([]);
    // Logged out with nothing pending, the actor is passivated: its snapshot is written then.
    await client.logout();
    expect(await users.keys()).toHaveLength(1);
  });

  it('embedded node - an empty admin key is replaced by a random one, and the admin API answers it', async () => {
    node = new PresenceNode({ host: '127.0.0.1', port: 0, apps: [app], adminKey: '', log: createLogger({ level: 'silent' }) });
    const port = await node.start();
    expect(node.adminKey.length).toBeGreaterThanOrEqual(32);
    const url = `http://127.0.0.1:${port}/admin/apps/${app.sdkAppID}`;
    expect((await fetch(url)).status).toBe(401);
    expect((await fetch(url, { headers: { authorization: `Bearer ${node.adminKey}` } })).status).toBe(200);
  });
});
