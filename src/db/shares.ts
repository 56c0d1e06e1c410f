import { now, type Db } from './database.js';

/**
 * Snapshot sharing, as EBS's createVolumePermission: a user a snapshot is
 * shared with may see it and create volumes from it, nothing more. Shares of
 * a deleted snapshot are removed with its row (a trigger, migration 4).
 */
export class SnapshotShares {
  constructor(private readonly db: Db) {}

  /** Shares a snapshot with a user; sharing again changes nothing. */
  add(snapshotId: string, user: string): void {
    this.db.prepare('INSERT OR IGNORE INTO snapshot_shares (snapshot_id, user, created_at) VALUES (?, ?, ?)').run(snapshotId, user, now());
  }

  /** Stops sharing; a user it was not shared with changes nothing. Volumes already made from it stay. */
  remove(snapshotId: string, user: string): void {
    this.db.prepare('DELETE FROM snapshot_shares WHERE snapshot_id = ? AND user = ?').run(snapshotId, user);
  }

  isSharedWith(snapshotId: string, user: string): boolean {
    return this.db.prepare('SELECT 1 FROM snapshot_shares WHERE snapshot_id = ? AND user = ?').get(snapshotId, user) !== undefined;
  }

  /** The users a snapshot is shared with, in name order. */
  usersOf(snapshotId: string): string[] {
    return (this.db.prepare('SELECT user FROM snapshot_shares WHERE snapshot_id = ? ORDER BY user').all(snapshotId) as { user: string }[]).map((r) => r.user);
  }
}
