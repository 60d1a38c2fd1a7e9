import { decode, encode } from '../codec.js';
import { userKey } from '../subjects.js';
import type { KvBucket } from '../transport/types.js';

/** When the admin API last kicked a user: UserSigs issued up to then are revoked (70052). */
export class RevocationStore {
  constructor(private readonly bucket: KvBucket) {}

  async revokedAt(sdkAppID: number, userID: string): Promise<number | undefined> {
    const entry = await this.bucket.get(userKey(sdkAppID, userID));
    return entry ? decode<number>(entry.value) : undefined;
  }

  async revoke(sdkAppID: number, userID: string, atMs: number): Promise<void> {
    await this.bucket.put(userKey(sdkAppID, userID), encode(atMs));
  }
}
