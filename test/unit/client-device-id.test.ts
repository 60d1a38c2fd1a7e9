import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { genUserSig } from '../../src/auth/index.js';
import { ErrorCode, PresenceClient, UserStatusType } from '../../src/client/index.js';
import { PresenceNode } from '../../src/cluster/node.js';
import { withDefaultLimits, type AppConfig } from '../../src/cluster/stores/apps.js';
import { createLogger } from '../../src/log.js';
import { Changes, record } from '../support/clientHarness.js';

/**
 * A client is one device: the deviceId the server picked at its first login is presented again by
 * every later login that names none, whatever ended the one before. Against a real embedded node,
 * whose user actor shows the devices it counts.
 */

const app: AppConfig = {
  sdkAppID: 1400000001,
  secretKey: 'client-device-id-test-secret',
  edition: 'premium',
  userStatusEnabled: true,
  friendStatusAutoNotify: false,
  limits: withDefaultLimits(undefined),
};

/** A `ws` WebSocket that remembers its instances, so a test can drop a client's connection. */
const sockets: WebSocket[] = [];
class TrackedWebSocket extends WebSocket {
  constructor(url: string) {
    super(url);
    sockets.push(this);
  }
}

let node: PresenceNode | undefined;
const clients: PresenceClient[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await node?.stop();
  node = undefined;
  sockets.length = 0;
  vi.restoreAllMocks();
});

async function startNode(): Promise<string> {
  node = new PresenceNode({ host: '127.0.0.1', port: 0, apps: [app], log: createLogger({ level: 'silent' }) });
  return `ws://127.0.0.1:${await node.start()}/ws`;
}

function newClient(url: string) {
  const changes = new Changes();
  const client = new PresenceClient({ url, sdkAppID: app.sdkAppID, WebSocket: TrackedWebSocket, reconnect: { initialDelayMs: 0, maxDelayMs: 0 } });
  clients.push(client);
  return { changes, client, events: record(client, changes) };
}

const sig = (userID: string, now = Date.now()): string => genUserSig({ sdkAppID: app.sdkAppID, secretKey: app.secretKey, userID, now });

async function deviceIds(userID: string): Promise<string[]> {
  return (await node!.inspect(app.sdkAppID, userID)).devices.map((device) => device.deviceId);
}

describe('client device id', () => {
  it('client device id - a login after a re-login refused with 70001 is the same device, so a logout leaves the user UNLOGINED', async () => {
    const { changes, client } = newClient(await startNode());
    let expired = false;
    client.addListener({ onUserSigExpired: () => { expired = true; changes.notify(); } });
    await client.login('alice', genUserSig({ sdkAppID: app.sdkAppID, secretKey: app.secretKey, userID: 'alice', expire: 60 }));
    const picked = await deviceIds('alice');

    // Two minutes on, the UserSig has expired while connected; then the connection drops.
    const realNow = Date.now;
    vi.spyOn(Date, 'now').mockImplementation(() => realNow() + 120_000);
    sockets[0]!.terminate();
    await changes.until(() => expired);

    await client.login('alice', sig('alice'));
    expect(await deviceIds('alice')).toEqual(picked);
    // A second device, the dropped one, would have left her OFFLINE.
    await client.logout();
    expect((await node!.inspect(app.sdkAppID, 'alice')).status.statusType).toBe(UserStatusType.UNLOGINED);
  });

  it('client device id - a login after an admin kick (70052) presents the deviceId the server picked before', async () => {
    const { changes, client, events } = newClient(await startNode());
    await client.login('alice', sig('alice'));
    const picked = await deviceIds('alice');

    await node!.kick(app.sdkAppID, 'alice');
    await changes.until(() => events.kicked.length === 1);
    expect(events.kicked[0]).toMatchObject({ code: ErrorCode.USERSIG_REVOKED });
    // The kick revokes the UserSigs issued up to its second.
    await client.login('alice', sig('alice', Date.now() + 1000));
    expect(await deviceIds('alice')).toEqual(picked);
  });

  it('client device id - a login after a 6208 kick takes the device back from the login that replaced it', async () => {
    const url = await startNode();
    const phone = newClient(url);
    await phone.client.login('alice', sig('alice'));
    const picked = await deviceIds('alice');

    const other = newClient(url);
    await other.client.login('alice', sig('alice'), { deviceId: picked[0] });
    await phone.changes.until(() => phone.events.kicked.length === 1);
    expect(phone.events.kicked[0]).toMatchObject({ code: ErrorCode.KICKED_BY_SAME_DEVICE });

    await phone.client.login('alice', sig('alice'));
    expect(await deviceIds('alice')).toEqual(picked);
    await other.changes.until(() => other.events.kicked.length === 1);
    expect(other.events.kicked[0]).toMatchObject({ code: ErrorCode.KICKED_BY_SAME_DEVICE });
  });

  it('client device id - the picked deviceId names the device for the next user too; one the app names wins', async () => {
    const { client } = newClient(await startNode());
    await client.login('alice', sig('alice'));
    const picked = await deviceIds('alice');
    await client.logout();

    await client.login('bob', sig('bob'));
    expect(await deviceIds('bob')).toEqual(picked);
    await client.logout();

    await client.login('bob', sig('bob'), { deviceId: 'bobs-tablet' });
    expect(await deviceIds('bob')).toEqual(['bobs-tablet']);
  });
});
