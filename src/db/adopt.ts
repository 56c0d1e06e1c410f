import { now } from '../core/clock.js';
import type { Db } from './database.js';
import { raiseGenerations } from './generations.js';

/**
 * Rows put back from what the hosts hold (`vbs admin check --repair` after a
 * restore, `vbs admin rebuild`): each with the id, owner, size, lineage and
 * creation time the volume delegate recorded beside the data, its id
 * entered in the ids table so it is never issued again, and a generation
 * above any its delegates saw (src/db/generations.ts).
 */
export interface AdoptedVolume {
  volumeId: string;
  owner: string;
  sizeGiB: number;
  snapshotId: string | null;
  delegate: string;
  zone: string;
  createdAt: string;
}

export interface AdoptedSnapshot {
  snapshotId: string;
  owner: string;
  /** The volume it copied; '' for a snapshot with no source volume (an imported image). */
  volumeId: string;
  sizeGiB: number;
  delegate: string;
  createdAt: string;
}

/** The id is free: never issued by this metadata (one that was, and whose row is gone, was deleted here). */
export function neverIssued(db: Db, id: string): boolean {
  return db.prepare('SELECT 1 FROM ids WHERE id = ?').get(id) === undefined;
}

export function adoptVolume(db: Db, v: AdoptedVolume): void {
  db.prepare(`INSERT INTO ids (id, kind, created_at) VALUES (?, 'vol', ?)`).run(v.volumeId, v.createdAt);
  db.prepare(
    `INSERT INTO volumes (volume_id, owner, size_gib, comment, snapshot_id, status, delegate, create_time, availability_zone)
     VALUES (?, ?, ?, '', ?, 'available', ?, ?, ?)`,
  ).run(v.volumeId, v.owner, v.sizeGiB, v.snapshotId, v.delegate, v.createdAt, v.zone);
  raiseGenerations(db, now(), v.volumeId);
}

export function adoptSnapshot(db: Db, s: AdoptedSnapshot): void {
  db.prepare(`INSERT INTO ids (id, kind, created_at) VALUES (?, 'snap', ?)`).run(s.snapshotId, s.createdAt);
  db.prepare(
    `INSERT INTO snapshots (snapshot_id, owner, volume_id, size_gib, comment, status, progress, delegate, create_time)
     VALUES (?, ?, ?, ?, '', 'completed', 100, ?, ?)`,
  ).run(s.snapshotId, s.owner, s.volumeId, s.sizeGiB, s.delegate, s.createdAt);
  raiseGenerations(db, now(), s.snapshotId);
}
