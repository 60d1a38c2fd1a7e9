import { UserStatusType, type Platform, type UserStatus } from '../actors/types.js';

/** One webhook event, kept in the user's durable outbox until the app server took it. */
export interface WebhookEvent {
  /** Idempotency key: the same event always carries the same id, however often it is sent. */
  id: string;
  /** The JSON body, as Tencent Cloud IM's `State.StateChange` callback has it. */
  body: StateChangeBody;
}

export interface StateChangeBody {
  CallbackCommand: 'State.StateChange';
  EventTime: number;
  Info: { Action: 'Login' | 'Logout' | 'Disconnect'; To_Account: string; Reason: string };
  CustomStatus: string;
  KickedDevice: Array<{ Platform: string }>;
  /** Our additions, which a Tencent handler ignores: the status `version`, and the id again. */
  Version: number;
  EventId: string;
}

const ACTION: Record<number, StateChangeBody['Info']['Action'] | undefined> = {
  [UserStatusType.ONLINE]: 'Login',
  [UserStatusType.OFFLINE]: 'Disconnect',
  [UserStatusType.UNLOGINED]: 'Logout',
};

/**
 * The webhook for one change of a user's public status, or none when it did not
 * change. Tencent's actions are Login, Logout and Disconnect; a change of custom
 * status alone is sent as the current action with reason `CustomStatus`.
 */
export function stateChangeEvent(
  sdkAppID: number,
  before: UserStatus,
  after: UserStatus,
  /** Platforms of devices this change logged out (a login replacing one with the same deviceId). */
  kickedPlatforms: readonly Platform[],
  eventTime: number,
): WebhookEvent | undefined {
  if (after.version === before.version) return undefined;
  const action = ACTION[after.statusType];
  if (!action) return undefined;
  const id = `${sdkAppID}:${after.userID}:${after.version}`;
  return {
    id,
    body: {
      CallbackCommand: 'State.StateChange',
      EventTime: eventTime,
      Info: { Action: action, To_Account: after.userID, Reason: reasonOf(before, after) },
      CustomStatus: after.customStatus,
      KickedDevice: kickedPlatforms.map((platform) => ({ Platform: PLATFORM_NAMES[platform] })),
      Version: after.version,
      EventId: id,
    },
  };
}

/**
 * Where an event is POSTed: the app's callback URL with the query Tencent Cloud IM adds to its
 * callbacks (`SdkAppid`, `CallbackCommand`, `contenttype`), since app servers moving over route
 * on them; the body names no app. Parameters of the app's own in the URL are kept.
 */
export function callbackUrlFor(callbackUrl: string, sdkAppID: number): string {
  const url = new URL(callbackUrl);
  url.searchParams.set('SdkAppid', String(sdkAppID));
  url.searchParams.set('CallbackCommand', 'State.StateChange');
  url.searchParams.set('contenttype', 'json');
  return url.href;
}

function reasonOf(before: UserStatus, after: UserStatus): string {
  if (before.statusType === after.statusType) return 'CustomStatus';
  switch (after.statusType) {
    case UserStatusType.ONLINE:
      return 'Register';
    case UserStatusType.UNLOGINED:
      return 'Unregister';
    default:
      return 'LinkClose';
  }
}

const PLATFORM_NAMES: Record<Platform, string> = { ios: 'iOS', android: 'Android', web: 'Web', windows: 'Windows', mac: 'Mac', linux: 'Linux', other: 'Other' };
