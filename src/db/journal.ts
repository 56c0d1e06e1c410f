import { now, writeTx, type Db } from './database.js';

/** A journaled workflow. */
export interface WorkflowRow {
  id: number;
  kind: string;
  resource_id: string;
  data: string;
  attempts: number;
  first_failed_at: string | null;
  last_error: string | null;
  parked_at: string | null;
  parked_status: string | null;
}

/** An undo step that failed, kept to be retried. */
export interface LeftoverRow {
  id: number;
  workflow_id: number;
  kind: string;
  step: string;
  data: string;
  error: string;
  attempts: number;
  created_at: string;
  resource_id: string;
  parked_at: string | null;
  parked_status: string | null;
}

/** Which pending work to claim. */
export interface ClaimFilter {
  /** Only this resource's. */
  readonly resource?: string;
  /** Also work whose next attempt is not due yet. */
  readonly notDueToo?: boolean;
  /** Also work that was given up on (parked). */
  readonly parkedToo?: boolean;
  /** At most this many rows. */
  readonly limit?: number;
}

const WORKFLOW_COLUMNS = 'id, kind, resource_id, data, attempts, first_failed_at, last_error, parked_at, parked_status';

/**
 * The workflow journal's queries. Work is run by one runner at a time: a
 * workflow is leased to its runner from the moment it is journaled, renewed at
 * every step, and released when it stalls; a stalled workflow or a leftover
 * undo is claimed (a compare-and-swap on its lease) before it is run again.
 */
export class Journal {
  constructor(
    readonly db: Db,
    /** Who this runner is (one per front process). */
    private readonly owner: string,
    private readonly leaseMs: number,
  ) {}

  private leaseUntil(): string {
    return new Date(Date.now() + this.leaseMs).toISOString();
  }

  /** Journals a new workflow, leased to this runner. Call inside the transaction that prepares it. */
  insert(kind: string, resource: string, data: object): number {
    const t = now();
    const r = this.db
      .prepare(
        `INSERT INTO workflows (kind, resource_id, state, data, created_at, updated_at, lease_owner, lease_until) VALUES (?, ?, 'running', ?, ?, ?, ?, ?)`,
      )
      .run(kind, resource, JSON.stringify(data), t, t, this.owner, this.leaseUntil());
    return Number(r.lastInsertRowid);
  }

  /** Records a step's state; renews the runner's lease. */
  setStep(id: number, idx: number, name: string, state: string, error: string | null = null): void {
    writeTx(this.db, () => this.setStepInTx(id, idx, name, state, error));
  }

  /** Records a step done together with what it returned. */
  stepDone(id: number, idx: number, name: string, data: object): void {
    writeTx(this.db, () => {
      this.db.prepare('UPDATE workflows SET data = ?, updated_at = ? WHERE id = ?').run(JSON.stringify(data), now(), id);
      this.setStepInTx(id, idx, name, 'done', null);
    });
  }

  private setStepInTx(id: number, idx: number, name: string, state: string, error: string | null): void {
    this.db
      .prepare(
        `INSERT INTO workflow_steps (workflow_id, idx, name, state, error, updated_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (workflow_id, idx) DO UPDATE SET state = excluded.state, error = excluded.error, updated_at = excluded.updated_at`,
      )
      .run(id, idx, name, state, error, now());
    this.db.prepare('UPDATE workflows SET lease_until = ? WHERE id = ? AND lease_owner = ?').run(this.leaseUntil(), id, this.owner);
  }

  /** The journaled state of each step that started. */
  steps(id: number): { idx: number; state: string }[] {
    return this.db.prepare('SELECT idx, state FROM workflow_steps WHERE workflow_id = ? ORDER BY idx').all(id) as { idx: number; state: string }[];
  }

  /** Ends a workflow; `change` (the kind's commit or abort) runs in the same transaction. */
  finish(id: number, state: 'done' | 'failed', error: string | null, change: () => void): void {
    writeTx(this.db, () => {
      change();
      this.db
        .prepare('UPDATE workflows SET state = ?, error = ?, updated_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?')
        .run(state, error, now(), id);
    });
  }

  /**
   * A workflow that could not finish a step stays running without a runner:
   * its lease is released and its next attempt scheduled (`delay` of how many
   * times it failed before). Returns when it first failed, to decide whether
   * to give up.
   */
  stall(id: number, error: string, nextAttemptAt: (failuresBefore: number) => string): { attempts: number; firstFailedAt: string } {
    return writeTx(this.db, () => {
      const t = now();
      const before = this.db.prepare('SELECT attempts FROM workflows WHERE id = ?').get(id) as { attempts: number };
      this.db
        .prepare(
          `UPDATE workflows SET lease_owner = NULL, lease_until = NULL, attempts = attempts + 1, next_attempt_at = ?,
           first_failed_at = coalesce(first_failed_at, ?), last_error = ?, updated_at = ? WHERE id = ?`,
        )
        .run(nextAttemptAt(before.attempts), t, error, t, id);
      const r = this.db.prepare('SELECT attempts, first_failed_at FROM workflows WHERE id = ?').get(id) as { attempts: number; first_failed_at: string };
      return { attempts: r.attempts, firstFailedAt: r.first_failed_at };
    });
  }

  /** Every workflow still running (at start-up: all of them were cut off by the crash). Takes their leases. */
  takeAllRunning(): WorkflowRow[] {
    return writeTx(this.db, () => {
      this.db.prepare(`UPDATE workflows SET lease_owner = ?, lease_until = ? WHERE state = 'running' AND parked_at IS NULL`).run(this.owner, this.leaseUntil());
      return this.db.prepare(`SELECT ${WORKFLOW_COLUMNS} FROM workflows WHERE state = 'running' AND parked_at IS NULL ORDER BY id`).all() as WorkflowRow[];
    });
  }

  /** Claims stalled workflows: running, nobody's lease, due (unless told otherwise). */
  claimStalled(f: ClaimFilter = {}): WorkflowRow[] {
    const t = now();
    return writeTx(this.db, () =>
      this.db
        .prepare(
          `UPDATE workflows SET lease_owner = ?, lease_until = ? WHERE id IN (
             SELECT id FROM workflows WHERE state = 'running' AND (lease_until IS NULL OR lease_until < ?)
             AND (? IS NULL OR resource_id = ?) AND (? OR next_attempt_at IS NULL OR next_attempt_at <= ?) AND (? OR parked_at IS NULL)
             ORDER BY id LIMIT ?)
           RETURNING ${WORKFLOW_COLUMNS}`,
        )
        .all(this.owner, this.leaseUntil(), t, f.resource ?? null, f.resource ?? null, f.notDueToo ? 1 : 0, t, f.parkedToo ? 1 : 0, f.limit ?? 20) as WorkflowRow[],
    ).sort((a, b) => a.id - b.id);
  }

  addLeftover(workflowId: number, kind: string, step: string, resource: string, data: object, error: string, nextAttemptAt: string): void {
    writeTx(this.db, () => {
      this.db
        .prepare(`INSERT INTO leftovers (workflow_id, kind, step, data, error, created_at, next_attempt_at, resource_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
        .run(workflowId, kind, step, JSON.stringify(data), error, now(), nextAttemptAt, resource);
    });
  }

  /** Claims leftover undos, in the order they were kept: the order their compensation ran them in. */
  claimLeftovers(f: ClaimFilter = {}): LeftoverRow[] {
    const t = now();
    return writeTx(this.db, () =>
      this.db
        .prepare(
          `UPDATE leftovers SET lease_owner = ?, lease_until = ? WHERE id IN (
             SELECT id FROM leftovers WHERE (lease_until IS NULL OR lease_until < ?)
             AND (? IS NULL OR resource_id = ?) AND (? OR next_attempt_at <= ?) AND (? OR parked_at IS NULL)
             ORDER BY id LIMIT ?)
           RETURNING id, workflow_id, kind, step, data, error, attempts, created_at, resource_id, parked_at, parked_status`,
        )
        .all(this.owner, this.leaseUntil(), t, f.resource ?? null, f.resource ?? null, f.notDueToo ? 1 : 0, t, f.parkedToo ? 1 : 0, f.limit ?? 20) as LeftoverRow[],
    ).sort((a, b) => a.id - b.id);
  }

  /** A leftover that worked: gone. */
  dropLeftover(id: number): void {
    writeTx(this.db, () => this.db.prepare('DELETE FROM leftovers WHERE id = ?').run(id));
  }

  /** A leftover that failed again: released and scheduled. */
  rescheduleLeftover(id: number, error: string, nextAttemptAt: string): void {
    writeTx(this.db, () =>
      this.db
        .prepare('UPDATE leftovers SET attempts = attempts + 1, error = ?, next_attempt_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?')
        .run(error, nextAttemptAt, id),
    );
  }

  /**
   * Gives up on a workflow or leftover: it stays, parked, until a repair
   * resumes it. `change` (which puts the resource in error) runs in the same
   * transaction and returns the status to put back on resuming.
   */
  park(table: 'workflows' | 'leftovers', id: number, change: () => string | undefined): void {
    writeTx(this.db, () => {
      const previous = change() ?? null;
      this.db.prepare(`UPDATE ${table} SET parked_at = ?, parked_status = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?`).run(now(), previous, id);
    });
  }

  /** Resumes parked work: retried as if new (attempts and the give-up clock start again). */
  unpark(table: 'workflows' | 'leftovers', id: number, change: () => void): void {
    writeTx(this.db, () => {
      change();
      this.db.prepare(`UPDATE ${table} SET parked_at = NULL, parked_status = NULL, attempts = 0 WHERE id = ?`).run(id);
      // The give-up clock: a workflow's first failure, a leftover's creation.
      if (table === 'workflows') this.db.prepare('UPDATE workflows SET first_failed_at = NULL WHERE id = ?').run(id);
      else this.db.prepare('UPDATE leftovers SET created_at = ? WHERE id = ?').run(now(), id);
    });
  }

  /** Whether earlier work on a resource is unfinished and nobody is running it: a stalled or parked workflow, or a leftover undo. */
  hasPendingWork(resource: string): boolean {
    const t = now();
    const stalled = this.db
      .prepare(`SELECT 1 FROM workflows WHERE resource_id = ? AND state = 'running' AND (lease_until IS NULL OR lease_until < ?) LIMIT 1`)
      .get(resource, t);
    return Boolean(stalled || this.db.prepare('SELECT 1 FROM leftovers WHERE resource_id = ? LIMIT 1').get(resource));
  }
}

// --- read-only looks at the journal (the consistency check, the creation monitor) ---

/** Whether any workflow (running now, or stalled) is on a resource: the one definition of "busy". */
export function workflowRunningOn(db: Db, resource: string): boolean {
  return Boolean(db.prepare(`SELECT 1 FROM workflows WHERE resource_id = ? AND state = 'running' LIMIT 1`).get(resource));
}

/** Resources some workflow in the journal is still working on. */
export function busyResources(db: Db): Set<string> {
  return new Set((db.prepare(`SELECT DISTINCT resource_id FROM workflows WHERE state = 'running'`).all() as { resource_id: string }[]).map((r) => r.resource_id));
}

/** Work nobody is running now: stalled or parked workflows, and leftover undos. */
export function pendingWork(db: Db): { workflows: WorkflowRow[]; leftovers: LeftoverRow[] } {
  const t = now();
  return db.transaction(() => ({
    workflows: db
      .prepare(`SELECT ${WORKFLOW_COLUMNS} FROM workflows WHERE state = 'running' AND (lease_until IS NULL OR lease_until < ?) ORDER BY id`)
      .all(t) as WorkflowRow[],
    leftovers: db
      .prepare('SELECT id, workflow_id, kind, step, data, error, attempts, created_at, resource_id, parked_at, parked_status FROM leftovers ORDER BY id')
      .all() as LeftoverRow[],
  }))();
}

/** The name of the last step a workflow journaled: where a stalled one stopped. */
export function lastStep(db: Db, workflowId: number): string | undefined {
  const r = db.prepare('SELECT name FROM workflow_steps WHERE workflow_id = ? ORDER BY idx DESC LIMIT 1').get(workflowId) as { name: string } | undefined;
  return r?.name;
}

/** The data the last delete of a resource started from. */
export function lastDeleteData(db: Db, resource: string): string | undefined {
  const w = db
    .prepare(`SELECT data FROM workflows WHERE resource_id = ? AND kind IN ('DeleteVolume', 'DeleteSnapshot') ORDER BY id DESC LIMIT 1`)
    .get(resource) as { data: string } | undefined;
  return w?.data;
}
