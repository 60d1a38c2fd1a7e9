import { PresenceClient, PresenceError, type UserStatus } from '../../src/client/index.js';
import type { Deployment, TestApp } from './deployment.js';

/** How long a test waits for an expected push before it fails with what it saw. */
export const PUSH_TIMEOUT_MS = 10_000;

/**
 * A logged-in SDK client that records every status push and kick, so a test can
 * wait for the event it expects instead of sleeping.
 */
export class TestDevice {
  readonly received: UserStatus[] = [];
  readonly kicks: PresenceError[] = [];
  readonly states: string[] = [];
  private waiters: Array<() => void> = [];

  constructor(readonly client: PresenceClient, readonly userID: string) {
    client.addListener({
      onUserStatusChanged: (list) => {
        this.received.push(...list);
        this.wake();
      },
      onKickedOffline: (error) => {
        this.kicks.push(error as PresenceError);
        this.wake();
      },
      onConnectionStateChanged: (state) => {
        this.states.push(state);
        this.wake();
      },
    });
  }

  /** Resolves with the first push (seen so far or later) about `userID` that matches. */
  async waitForStatus(userID: string, match: (status: UserStatus) => boolean, what = 'a matching status'): Promise<UserStatus> {
    const found = () => this.received.find((s) => s.userID === userID && match(s));
    await this.until(() => found() !== undefined, `${this.userID} to receive ${what} of ${userID}`);
    return found()!;
  }

  async waitForKick(): Promise<PresenceError> {
    await this.until(() => this.kicks.length > 0, `${this.userID} to be kicked`);
    return this.kicks[0]!;
  }

  async waitForState(state: string): Promise<void> {
    await this.until(() => this.states.includes(state), `${this.userID} to reach connection state ${state}`);
  }

  /** Pushes about `userID` received so far. */
  statusesOf(userID: string): UserStatus[] {
    return this.received.filter((s) => s.userID === userID);
  }

  async until(condition: () => boolean, what: string, timeoutMs = PUSH_TIMEOUT_MS): Promise<void> {
    if (condition()) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; received ${JSON.stringify(this.received)}`));
      }, timeoutMs);
      const check = () => {
        if (!condition()) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve();
      };
      this.waiters.push(check);
    });
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}

export interface DeviceOptions {
  /** Which node to connect to (modulo the node count). */
  node?: number;
  deviceId?: string;
  heartbeatIntervalMs?: number;
  requestTimeoutMs?: number;
}

/** Connects a device of `userID` to the deployment and logs it in. */
export async function loginDevice(deployment: Deployment, app: TestApp, userID: string, options: DeviceOptions = {}): Promise<TestDevice> {
  const client = new PresenceClient({
    url: deployment.url(options.node ?? 0),
    sdkAppID: app.sdkAppID,
    reconnect: { initialDelayMs: 50, maxDelayMs: 1_000 },
    ...(options.heartbeatIntervalMs === undefined ? {} : { heartbeatIntervalMs: options.heartbeatIntervalMs }),
    ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
  });
  const device = new TestDevice(client, userID);
  await client.login(userID, app.sig(userID), options.deviceId ? { deviceId: options.deviceId } : {});
  return device;
}

/** Expects `promise` to reject with a PresenceError of `code`; returns the error. */
export async function expectCode(promise: Promise<unknown>, code: number): Promise<PresenceError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof PresenceError && error.code === code) return error;
    throw new Error(`expected PresenceError ${code}, got ${error instanceof Error ? error.message : String(error)}`);
  }
  throw new Error(`expected PresenceError ${code}, but the call succeeded`);
}
