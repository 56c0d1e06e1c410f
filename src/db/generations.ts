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
