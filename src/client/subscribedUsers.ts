/**
 * The client's own record of whom it subscribes to, kept from successful subscribe and
 * unsubscribe answers. The server holds the real list; this copy only tells a reconnect what to
 * re-read, so it mirrors the server's cap by dropping the ids the server reported evicted.
 */
export class SubscribedUsers {
  private readonly ids = new Set<string>();

  /** After a successful subscribe: add `userIDs`, then drop what the cap evicted. */
  added(userIDs: readonly string[], evicted: readonly string[]): void {
    for (const id of userIDs) {
      // Delete first so a re-subscribe moves the id to the end, as the server refreshes its age.
      this.ids.delete(id);
      this.ids.add(id);
    }
    for (const id of evicted) this.ids.delete(id);
  }

  /** After a successful unsubscribe; `undefined` or `[]` means every subscription was cleared. */
  removed(userIDs: readonly string[] | undefined): void {
    if (userIDs === undefined || userIDs.length === 0) {
      this.ids.clear();
      return;
    }
    for (const id of userIDs) this.ids.delete(id);
  }

  clear(): void {
    this.ids.clear();
  }

  get size(): number {
    return this.ids.size;
  }

  /** A snapshot split into lists of at most `size` ids, safe to use while the set changes. */
  chunks(size: number): string[][] {
    const all = [...this.ids];
    const out: string[][] = [];
    for (let i = 0; i < all.length; i += size) out.push(all.slice(i, i + size));
    return out;
  }
}
