import type { Db } from './database.js';
// The journal's own notion of now, so leases compare the way its queries do.
import { now as nowIso } from './database.js';

/**
 * Journaled work bound to one VMM host: attach and detach workflows and
 * their leftover undos carry the host in their data (`vmmHost`). Exports and
 * sessions are per volume and host, so this work is too: a host that is gone
 * must not hold up work on the volume's other hosts, and an operator can
 * cancel what is parked on it (force detach, `vbs admin host retire`).
 */
const HOST_KINDS = ['AttachVolume', 'DetachVolume'];

export interface HostWork {
  /** Stalled or parked workflows nobody is running now. */
  readonly idle: { id: number; kind: string; volumeId: string; vmId: string; source: unknown; parkedStatus: string | null }[];
  /** Workflows a runner holds right now (their step is in flight). */
  readonly inFlight: number;
  readonly leftovers: { id: number; volumeId: string; vmId: string; source: unknown; parkedStatus: string | null }[];
}

interface Row {
  id: number;
  kind: string;
  resource_id: string;
  vm: string | null;
  source: string | null;
  leased: number;
  parked_status: string | null;
}

/** The attach/detach work journaled for `host` (on one volume, when given). */
export function hostWork(db: Db, host: string, volumeId?: string): HostWork {
  const t = nowIso();
  const where = `kind IN (SELECT value FROM json_each(?)) AND json_extract(data, '$.vmmHost') = ? AND (? IS NULL OR resource_id = ?)`;
  const args = [JSON.stringify(HOST_KINDS), host, volumeId ?? null, volumeId ?? null];
  const workflows = db
    .prepare(
      `SELECT id, kind, resource_id, json_extract(data, '$.vmId') AS vm, json_extract(data, '$.source') AS source, (lease_until IS NOT NULL AND lease_until >= ?) AS leased, parked_status
       FROM workflows WHERE state = 'running' AND ${where} ORDER BY id`,
    )
    .all(t, ...args) as Row[];
  const leftovers = db
    .prepare(`SELECT id, kind, resource_id, json_extract(data, '$.vmId') AS vm, json_extract(data, '$.source') AS source, 0 AS leased, parked_status FROM leftovers WHERE ${where} ORDER BY id`)
    .all(...args) as Row[];
  return {
    idle: workflows.filter((w) => !w.leased).map((w) => ({ id: w.id, kind: w.kind, volumeId: w.resource_id, vmId: w.vm ?? '', source: parse(w.source), parkedStatus: w.parked_status })),
    inFlight: workflows.filter((w) => w.leased).length,
    leftovers: leftovers.map((l) => ({ id: l.id, volumeId: l.resource_id, vmId: l.vm ?? '', source: parse(l.source), parkedStatus: l.parked_status })),
  };
}

/** The volumes a host has journaled work on. */
export function volumesWithHostWork(db: Db, host: string): string[] {
  const w = hostWork(db, host);
  return [...new Set([...w.idle.map((x) => x.volumeId), ...w.leftovers.map((x) => x.volumeId)])];
}

function parse(json: string | null): unknown {
  return json === null ? undefined : (JSON.parse(json) as unknown);
}

/**
 * Ends the idle work `hostWork` listed, with `reason` as each workflow's
 * error, inside the caller's write transaction. The caller deals with the
 * attachments that work was about (released once the host is fenced).
 */
export function cancelHostWork(db: Db, work: HostWork, reason: string): void {
  const t = nowIso();
  const endWorkflow = db.prepare(
    `UPDATE workflows SET state = 'failed', error = ?, updated_at = ?, lease_owner = NULL, lease_until = NULL
     WHERE id = ? AND state = 'running' AND (lease_until IS NULL OR lease_until < ?)`,
  );
  for (const w of work.idle) endWorkflow.run(reason, t, w.id, t);
  const drop = db.prepare('DELETE FROM leftovers WHERE id = ?');
  for (const l of work.leftovers) drop.run(l.id);
}

/**
 * Whether every piece of pending work on `resource` is attach/detach work
 * bound to a host other than `host`: then a new workflow on `host` neither
 * races it nor is harmed by it, and need not wait for it.
 */
export function pendingOnlyOnOtherHosts(db: Db, resource: string, host: string): boolean {
  const t = nowIso();
  const foreign = db
    .prepare(
      `SELECT 1 FROM (
         SELECT kind, data FROM workflows WHERE resource_id = ? AND state = 'running' AND (lease_until IS NULL OR lease_until < ?)
         UNION ALL SELECT kind, data FROM leftovers WHERE resource_id = ?) AS work
       WHERE kind NOT IN (SELECT value FROM json_each(?)) OR coalesce(json_extract(data, '$.vmmHost'), '') = ? LIMIT 1`,
    )
    .get(resource, t, resource, JSON.stringify(HOST_KINDS), host);
  return !foreign;
}
