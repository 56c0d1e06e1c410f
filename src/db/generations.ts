import type { Db } from './database.js';

/**
 * Generations (issue 16): every workflow on a volume or snapshot takes the
 * next number of that resource (1, 2, 3...) in the transaction that journals
 * it, and carries it in its journaled data; its delegate calls, and its undos
 * however late they run, send it. A delegate refuses a call older than one it
 * already acted on the other way (src/delegates/generations.ts), so a call a
 * stale runner sent, or an undo run from a stale copy, cannot pull a newer
 * attachment's disk, session or export.
 */

/** Takes the resource's next generation. Call inside the write transaction that journals the workflow. */
export function nextGeneration(db: Db, resource: string): number {
  const r = db
    .prepare(
      `INSERT INTO generations (resource_id, generation) VALUES (?, 1)
       ON CONFLICT (resource_id) DO UPDATE SET generation = generations.generation + 1 RETURNING generation`,
    )
    .get(resource) as { generation: number };
  return r.generation;
}

/**
 * The resource's latest generation (0: no workflow yet), for calls made
 * outside a workflow on what the metadata says now (repairs, restarting a
 * lost copy): they act for the newest state, so they pass where it would.
 */
export function currentGeneration(db: Db, resource: string): number {
  const r = db.prepare('SELECT generation FROM generations WHERE resource_id = ?').get(resource) as { generation: number } | undefined;
  return r?.generation ?? 0;
}

/**
 * After a restore or a rebuild the metadata's counters are behind what the
 * delegates remember (workflows ran after the backup; a new database starts
 * at 0), and every call the front makes would be refused as stale. So every
 * id the metadata knows (`ids`, or the one given) gets a generation of at
 * least `floor`, a clock reading in milliseconds: no resource ran a workflow
 * per millisecond since an earlier floor, so the new numbers are above
 * anything a delegate saw. (The larger of two is a CASE, and the column
 * qualified: PostgreSQL has no two-argument max() and calls a bare
 * `generation` ambiguous in an upsert.)
 */
export function raiseGenerations(db: Db, floor: number, id?: string): void {
  db.prepare(
    `INSERT INTO generations (resource_id, generation) SELECT id, @floor FROM ids WHERE @id IS NULL OR id = @id
     ON CONFLICT (resource_id) DO UPDATE SET generation = CASE WHEN generations.generation > excluded.generation THEN generations.generation ELSE excluded.generation END`,
  ).run({ floor, id: id ?? null });
}
