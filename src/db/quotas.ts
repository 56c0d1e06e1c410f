import { now, type Db } from './database.js';

/** One user's limits; each undefined in an override means "the configured default". */
export interface Limits {
  readonly volumes: number;
  readonly gib: number;
  readonly snapshots: number;
  /** GiB of snapshots: snapshot storage counts apart from volume storage, as in EBS. */
  readonly snapshotGib: number;
}

export type LimitName = keyof Limits;

/** What a user holds: every volume and snapshot row of theirs (see usage()). */
export interface Usage {
  readonly volumes: number;
  readonly gib: number;
  readonly snapshots: number;
  readonly snapshotGib: number;
}

/** The per-user overrides of the quota defaults, and each user's usage. */
export class QuotaStore {
  constructor(private readonly db: Db) {}

  /** A user's overrides (absent fields: the default). */
  overrides(owner: string): Partial<Limits> {
    const row = this.db.prepare('SELECT volumes, gib, snapshots, snapshot_gib AS snapshotGib FROM quotas WHERE owner = ?').get(owner) as
      | { [K in LimitName]: number | null }
      | undefined;
    const out: { -readonly [K in LimitName]?: number } = {};
    for (const k of ['volumes', 'gib', 'snapshots', 'snapshotGib'] as const) if (row?.[k] != null) out[k] = row[k]!;
    return out;
  }

  /** Sets the given limits, keeping the others as they were. */
  set(owner: string, limits: Partial<Limits>): void {
    this.db
      .prepare(
        `INSERT INTO quotas (owner, volumes, gib, snapshots, snapshot_gib, updated_at) VALUES (@owner, @volumes, @gib, @snapshots, @snapshotGib, @t)
         ON CONFLICT (owner) DO UPDATE SET volumes = coalesce(@volumes, quotas.volumes), gib = coalesce(@gib, quotas.gib),
           snapshots = coalesce(@snapshots, quotas.snapshots), snapshot_gib = coalesce(@snapshotGib, quotas.snapshot_gib), updated_at = @t`,
      )
      .run({
        owner,
        volumes: limits.volumes ?? null,
        gib: limits.gib ?? null,
        snapshots: limits.snapshots ?? null,
        snapshotGib: limits.snapshotGib ?? null,
        t: now(),
      });
  }

  /**
   * Every row a user owns counts, whatever its status: `creating`/`pending`
   * (being made), `deleting` (its data is still there) and `error` (it holds
   * data until deleted). A failed create's rollback and a finished delete
   * remove the row, which gives its usage back. A volume being grown
   * (ModifyVolume, state modifying) counts at its target size.
   */
  usage(owner: string): Usage {
    const v = this.db.prepare('SELECT count(*) AS n, coalesce(sum(size_gib), 0) AS gib FROM volumes WHERE owner = ?').get(owner) as { n: number; gib: number };
    // A volume being grown holds its target size: the grow may land at any moment.
    const growing = this.db
      .prepare(`SELECT coalesce(sum(target_size - original_size), 0) AS gib FROM volume_modifications WHERE owner = ? AND state = 'modifying'`)
      .get(owner) as { gib: number };
    const s = this.db.prepare('SELECT count(*) AS n, coalesce(sum(size_gib), 0) AS gib FROM snapshots WHERE owner = ?').get(owner) as { n: number; gib: number };
    return { volumes: v.n, gib: v.gib + growing.gib, snapshots: s.n, snapshotGib: s.gib };
  }
}
