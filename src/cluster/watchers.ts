/** Up to this many watchers are kept in a list; one more turns it into a Set. */
export const LIST_MAX = 64;
/** A Set that shrinks to this many turns back into a list (not at once at LIST_MAX, so it does not flip back and forth). */
export const BACK_TO_LIST = LIST_MAX / 2;

/**
 * The watchers of one user on this node, without repeats. Most users have a few dozen:
 * a list of them costs about half the memory of a Set (whose hash table of 50 entries
 * is 1.3 KB, one per watched user), and finding one in it is a scan of at most
 * LIST_MAX entries. A user watched by more is kept in a Set, so a celebrity's thousands
 * of watchers are added and removed in constant time.
 */
export class Watchers<T> implements Iterable<T> {
  private list: T[] | undefined = [];
  private set: Set<T> | undefined;

  get size(): number {
    return this.set ? this.set.size : this.list!.length;
  }

  add(watcher: T): void {
    if (this.set) {
      this.set.add(watcher);
      return;
    }
    const list = this.list!;
    if (list.includes(watcher)) return;
    if (list.length < LIST_MAX) {
      // A new list of the exact length: one grown by push keeps V8's slack, half again its
      // length plus 16 slots (77 for 50 watchers: 216 B per watched user), for good.
      this.list = list.concat(watcher);
      return;
    }
    this.set = new Set(list).add(watcher);
    this.list = undefined;
  }

  delete(watcher: T): boolean {
    if (this.set) {
      const deleted = this.set.delete(watcher);
      if (this.set.size <= BACK_TO_LIST) {
        this.list = [...this.set];
        this.set = undefined;
      }
      return deleted;
    }
    const list = this.list!;
    const at = list.indexOf(watcher);
    if (at < 0) return false;
    // Order does not matter to the fan-out: the last one takes the freed place.
    list[at] = list[list.length - 1]!;
    list.pop();
    return true;
  }

  [Symbol.iterator](): Iterator<T> {
    return (this.set ?? this.list!)[Symbol.iterator]();
  }
}
