import { now, type Db } from './database.js';

/** EC2's modification states: the back end grows (modifying), the hypervisors are told (optimizing), then completed or failed. */
export const MODIFICATION_STATES = ['modifying', 'optimizing', 'completed', 'failed'] as const;
export type ModificationState = (typeof MODIFICATION_STATES)[number];

export interface ModificationRow {
  /** Insertion number: the record's identity and the order pages are read in. */
  seq: number;
  volume_id: string;
  /** The volume's owner (an administrator's request is counted against the owner's quota). */
  owner: string;
  state: ModificationState;
  status_message: string | null;
  original_size: number;
  target_size: number;
  progress: number;
  start_time: string;
  end_time: string | null;
}

/** What a listing keeps: every value list is ORed, the lists ANDed; absent lists match all. */
export interface ModificationQuery {
  /** Only this owner's volumes (undefined: everyone's, for administrators). */
  readonly owner?: string;
  /** The `owner` filter (administrators). */
  readonly owners?: readonly string[];
  readonly volumeIds?: readonly string[];
  readonly states?: readonly ModificationState[];
  readonly originalSizes?: readonly number[];
  readonly targetSizes?: readonly number[];
  /** Every request (true) or, as EC2's DescribeVolumesModifications, each volume's most recent one. */
  readonly allRequests?: boolean;
  /** Records after this seq (the page token's key). */
  readonly after?: number;
  readonly limit?: number;
}

/**
 * The volume_modifications table (one row per ModifyVolume request). Writers
 * run inside the caller's write transaction; every state change is a
 * compare-and-swap on the state, so a late or repeated write changes nothing.
 */
export class Modifications {
  constructor(readonly db: Db) {}

  insert(m: { volumeId: string; owner: string; originalSize: number; targetSize: number }): number {
    const r = this.db
      .prepare(
        `INSERT INTO volume_modifications (volume_id, owner, state, original_size, target_size, progress, start_time)
         VALUES (?, ?, 'modifying', ?, ?, 0, ?) RETURNING seq`,
      )
      .get(m.volumeId, m.owner, m.originalSize, m.targetSize, now()) as { seq: number };
    return r.seq;
  }

  get(seq: number): ModificationRow | undefined {
    return this.db.prepare('SELECT * FROM volume_modifications WHERE seq = ?').get(seq) as ModificationRow | undefined;
  }

  /** The volume's modification still modifying or optimizing, if any (at most one: a unique index). */
  inFlight(volumeId: string): ModificationRow | undefined {
    return this.db.prepare(`SELECT * FROM volume_modifications WHERE volume_id = ? AND state IN ('modifying', 'optimizing')`).get(volumeId) as
      | ModificationRow
      | undefined;
  }

  /**
   * The back end holds the new size: the volume's record says so, and the
   * modification goes on to telling the hypervisors. From here the growth is
   * what users see, never taken back.
   */
  grown(seq: number): boolean {
    const m = this.get(seq);
    if (!m || m.state !== 'modifying') return false;
    this.db.prepare('UPDATE volumes SET size_gib = ? WHERE volume_id = ? AND size_gib < ?').run(m.target_size, m.volume_id, m.target_size);
    this.db.prepare(`UPDATE volume_modifications SET state = 'optimizing', progress = 50 WHERE seq = ? AND state = 'modifying'`).run(seq);
    return true;
  }

  /** Ends an optimizing modification; `message` says what a VM was not told. */
  complete(seq: number, message: string | null): boolean {
    const r = this.db
      .prepare(`UPDATE volume_modifications SET state = 'completed', progress = 100, status_message = ?, end_time = ? WHERE seq = ? AND state IN ('modifying', 'optimizing')`)
      .run(message, now(), seq);
    return r.changes === 1;
  }

  /** Ends a modification whose growth did not happen: the volume keeps its size. */
  fail(seq: number, message: string): boolean {
    const r = this.db
      .prepare(`UPDATE volume_modifications SET state = 'failed', status_message = ?, end_time = ? WHERE seq = ? AND state = 'modifying'`)
      .run(message, now(), seq);
    return r.changes === 1;
  }

  /** One page in seq order; each condition is bound as a JSON list, so the SQL is the same whatever the input. */
  list(q: ModificationQuery): ModificationRow[] {
    const json = (xs: readonly unknown[] | undefined) => (xs?.length ? JSON.stringify(xs) : null);
    const latest = q.allRequests ? '' : 'AND seq = (SELECT max(seq) FROM volume_modifications l WHERE l.volume_id = m.volume_id)';
    return this.db
      .prepare(
        `SELECT * FROM volume_modifications m
         WHERE (@owner IS NULL OR owner = @owner)
           AND (@owners IS NULL OR owner IN (SELECT value FROM json_each(@owners)))
           AND (@ids IS NULL OR volume_id IN (SELECT value FROM json_each(@ids)))
           AND (@states IS NULL OR state IN (SELECT value FROM json_each(@states)))
           AND (@orig IS NULL OR original_size IN (SELECT CAST(value AS INTEGER) FROM json_each(@orig)))
           AND (@target IS NULL OR target_size IN (SELECT CAST(value AS INTEGER) FROM json_each(@target)))
           AND seq > @after ${latest}
         ORDER BY seq LIMIT @limit`,
      )
      .all({
        owner: q.owner ?? null,
        owners: json(q.owners),
        ids: json(q.volumeIds),
        states: json(q.states),
        orig: json(q.originalSizes),
        target: json(q.targetSizes),
        after: q.after ?? 0,
        limit: q.limit ?? -1,
      }) as ModificationRow[];
  }
}
