import type { UserStatus } from '../../src/actors/types.js';

export interface AppSettings {
  secretKey: string;
  edition?: 'basic' | 'premium';
  userStatusEnabled?: boolean;
  friendStatusAutoNotify?: boolean;
  limits?: Record<string, unknown>;
  callbackUrl?: string | null;
}

export class AdminError extends Error {
  constructor(readonly status: number, readonly body: { code: number; desc: string }) {
    super(`admin ${status}: ${body.code} ${body.desc}`);
    this.name = 'AdminError';
  }
}

/** A thin client of the admin API (SPEC.md §6), for tests, the benchmark and scripts. */
export class AdminClient {
  constructor(private readonly baseUrl: string, private readonly key: string) {}

  putApp(sdkAppID: number, app: AppSettings): Promise<unknown> {
    return this.call('PUT', `/admin/apps/${sdkAppID}`, app);
  }

  getApp(sdkAppID: number): Promise<Record<string, unknown>> {
    return this.call('GET', `/admin/apps/${sdkAppID}`) as Promise<Record<string, unknown>>;
  }

  friends(sdkAppID: number, change: { add?: Array<[string, string]>; remove?: Array<[string, string]> }): Promise<unknown> {
    return this.call('POST', `/admin/apps/${sdkAppID}/friends`, change);
  }

  async status(sdkAppID: number, userIDs: string[]): Promise<UserStatus[]> {
    return ((await this.call('POST', `/admin/apps/${sdkAppID}/status`, { userIDs })) as { statuses: UserStatus[] }).statuses;
  }

  kick(sdkAppID: number, userID: string): Promise<unknown> {
    return this.call('POST', `/admin/apps/${sdkAppID}/kick`, { userID });
  }

  cluster(): Promise<Record<string, unknown>> {
    return this.call('GET', '/admin/cluster') as Promise<Record<string, unknown>>;
  }

  async call(method: string, path: string, body?: unknown, key = this.key): Promise<unknown> {
    const response = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    const json = (await response.json()) as { code: number; desc: string };
    if (!response.ok) throw new AdminError(response.status, json);
    return json;
  }
}
