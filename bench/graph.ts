/**
 * The subscription graph of the workload, the same in the coordinator and every driver:
 * user i subscribes to the S users after it (i+1 … i+S mod N), so every user has exactly S
 * watchers (i-1 … i-S); with F friends, i is a friend of i±(S+1) … i±(S+F/2), so no pair is
 * both subscribed and befriended and every change reaches exactly S+F watchers.
 */
export interface Workload {
  users: number;
  subs: number;
  friends: number;
}

export const userID = (i: number): string => `u${i}`;
export const userIndex = (id: string): number => Number(id.slice(1));

export function subscriptionTargets(w: Workload, i: number): number[] {
  const targets: number[] = [];
  for (let k = 1; k <= w.subs; k++) targets.push((i + k) % w.users);
  return targets;
}

export function friendsOf(w: Workload, i: number): number[] {
  const out: number[] = [];
  for (let k = 1; k <= w.friends / 2; k++) {
    out.push((i + w.subs + k) % w.users, (i - w.subs - k + w.users * 2) % w.users);
  }
  return out;
}

/** Friend pairs, each once: (i, i+S+k) for k = 1 … F/2. */
export function friendPairs(w: Workload): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (let i = 0; i < w.users; i++) {
    for (let k = 1; k <= w.friends / 2; k++) pairs.push([userID(i), userID((i + w.subs + k) % w.users)]);
  }
  return pairs;
}

/** Who every status change of one user reaches while everybody is online. */
export const fanout = (w: Workload): number => w.subs + w.friends;

/** Checks the graph has no self-loops or duplicates; throws a readable error otherwise. */
export function validateWorkload(w: Workload): void {
  if (!Number.isInteger(w.users) || w.users < 2) throw new Error('--users must be an integer >= 2');
  if (!Number.isInteger(w.subs) || w.subs < 0) throw new Error('--subs must be a non-negative integer');
  if (!Number.isInteger(w.friends) || w.friends < 0 || w.friends % 2) throw new Error('--friends must be a non-negative even integer');
  if (w.subs >= w.users) throw new Error('--subs must be below --users');
  if (w.friends > 0 && 2 * w.subs + w.friends >= w.users) throw new Error('2 × --subs + --friends must be below --users');
  if (w.subs + w.friends === 0) throw new Error('--subs + --friends must be at least 1 (nothing would be delivered)');
}
