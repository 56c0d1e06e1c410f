import { now as clockNow } from '../core/clock.js';
import { VbsError } from '../core/errors.js';
import { claimTakenOver } from '../core/metrics.js';
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
  /** At most this many pieces of work in one pass. */
  readonly limit?: number;
  /** Only this workflow's (leftover undos). */
  readonly workflowId?: number;
}

const WORKFLOW_COLUMNS = 'id, kind, resource_id, data, attempts, first_failed_at, last_error, parked_at, parked_status';
const LEFTOVER_COLUMNS = 'id, workflow_id, kind, step, data, error, attempts, created_at, resource_id, parked_at, parked_status';

/**
 * One runner's hold on one workflow or leftover: the row's `lease_owner` is
 * this token while the claim lasts. Every claim gets a token of its own (not
 * just one per process), so a runner whose claim lapsed and was taken again,
 * even by another runner in the same process, can tell that it is no longer
 * the holder.
 */
export interface Claim {
  readonly table: 'workflows' | 'leftovers';
  readonly id: number;
  readonly token: string;
}

/**
 * The runner no longer holds its claim: its lease ran out (a step outlived
 * it, or the clock stepped forward) and someone else may be running the work
 * now. The runner abandons the work without another write or delegate call;
 * whoever holds the claim now (or the next to take it) finishes it.
 */
export class ClaimLost extends VbsError {
  constructor(readonly claim: Claim) {
    super('ServiceUnavailable', 'Another runner took over this operation; VBS finishes it. Retry shortly.');
  }
}

/**
 * The workflow journal's queries. Work is run by one runner at a time: a
 * workflow is leased to its runner from the moment it is journaled, renewed
 * while its steps run, and released when it stalls; a stalled workflow or a
 * leftover undo is claimed (a compare-and-swap on its lease) before it is run
 * again. Every write a runner makes is conditional on still holding the claim
 * (its token, a lease not expired, the workflow still running), checked in
 * the same transaction as the write: a runner that lost its claim changes
 * nothing (ClaimLost).
 */
export class Journal {
  private claims = 0;

  constructor(
    readonly db: Db,
    /** Who this runner is (one per front process); each claim's token starts with it. */
    readonly owner: string,
    readonly leaseMs: number,
    /** Milliseconds since the epoch: src/core/clock.ts, or a test's clock. */
    private readonly clock: () => number = clockNow,
    /** Whether the runner holding a claim (its lease owner) is known to be gone: its work is free before the lease runs out. */
    isGone: (owner: string) => boolean = () => false,
  ) {
    db.function('vbs_runner_gone', { deterministic: false }, (owner: unknown) => (typeof owner === 'string' && isGone(owner) ? 1 : 0));
    this.isGone = isGone;
  }

  private readonly isGone: (owner: string) => boolean;

  private nowIso(): string {
    return new Date(this.clock()).toISOString();
  }

  private leaseUntil(): string {
    return new Date(this.clock() + this.leaseMs).toISOString();
  }

  private newToken(): string {
    return `${this.owner}:${++this.claims}`;
  }

  /**
   * Journals a new workflow, claimed by this runner, with its first step
   * (`firstStep`, if it has steps) journaled as started: one commit, not two,
   * since nothing external happens between them (a crash before it leaves no
   * workflow, after it a step that may or may not have begun, as before).
   * Call inside the transaction that prepares it.
   */
  insert(kind: string, resource: string, data: object, firstStep?: string): Claim {
    const t = this.nowIso();
    const token = this.newToken();
    const r = this.db
      .prepare(
        `INSERT INTO workflows (kind, resource_id, state, data, created_at, updated_at, lease_owner, lease_until) VALUES (?, ?, 'running', ?, ?, ?, ?, ?) RETURNING id`,
      )
      .get(kind, resource, JSON.stringify(data), t, t, token, this.leaseUntil()) as { id: number };
    if (firstStep !== undefined) this.setStepInTx(r.id, 0, firstStep, 'started', null);
    return { table: 'workflows', id: r.id, token };
  }

  /**
   * Inside a write transaction: renews the claim's lease if the claim is still
   * held (this token, lease not expired, a workflow still running), else throws
   * ClaimLost so the transaction, and whatever it was to write, rolls back.
   */
  private hold(c: Claim): string {
    const running = c.table === 'workflows' ? ` AND state = 'running'` : '';
    const until = this.leaseUntil();
    const r = this.db
      .prepare(`UPDATE ${c.table} SET lease_until = ? WHERE id = ? AND lease_owner = ? AND lease_until >= ?${running}`)
      .run(until, c.id, c.token, this.nowIso());
    if (r.changes !== 1) throw new ClaimLost(c);
    return until;
  }

  /**
   * Renews a claim (the heartbeat while a step runs, and a check right before
   * a delegate call); throws ClaimLost if it is gone. Returns when the renewed
   * lease ends (milliseconds, on the journal's clock).
   */
  renew(c: Claim): number {
    return Date.parse(writeTx(this.db, () => this.hold(c)));
  }

  /** Records a step's state; renews the runner's lease. */
  setStep(c: Claim, idx: number, name: string, state: string, error: string | null = null): void {
    writeTx(this.db, () => {
      this.hold(c);
      this.setStepInTx(c.id, idx, name, state, error);
    });
  }

  /** Records a step done together with what it returned. */
  stepDone(c: Claim, idx: number, name: string, data: object): void {
    writeTx(this.db, () => {
      this.hold(c);
      this.db.prepare('UPDATE workflows SET data = ?, updated_at = ? WHERE id = ?').run(JSON.stringify(data), this.nowIso(), c.id);
      this.setStepInTx(c.id, idx, name, 'done', null);
    });
  }

  private setStepInTx(id: number, idx: number, name: string, state: string, error: string | null): void {
    this.db
      .prepare(
        `INSERT INTO workflow_steps (workflow_id, idx, name, state, error, updated_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (workflow_id, idx) DO UPDATE SET state = excluded.state, error = excluded.error, updated_at = excluded.updated_at`,
      )
      .run(id, idx, name, state, error, this.nowIso());
  }

  /** The journaled state of each step that started. */
  steps(id: number): { idx: number; state: string }[] {
    return this.db.prepare('SELECT idx, state FROM workflow_steps WHERE workflow_id = ? ORDER BY idx').all(id) as { idx: number; state: string }[];
  }

  /**
   * Ends a workflow; `change` (the kind's commit or abort) runs in the same
   * transaction, only while the claim holds. `lastDone` is the last step, done
   * now and journaled in this same transaction with what it returned: one
   * commit instead of two, since nothing external happens between them.
   */
  finish(c: Claim, state: 'done' | 'failed', error: string | null, change: () => void, lastDone?: { idx: number; name: string; data: object }): void {
    writeTx(this.db, () => {
      this.hold(c);
      if (lastDone) {
        this.db.prepare('UPDATE workflows SET data = ? WHERE id = ?').run(JSON.stringify(lastDone.data), c.id);
        this.setStepInTx(c.id, lastDone.idx, lastDone.name, 'done', null);
      }
      change();
      this.db
        .prepare('UPDATE workflows SET state = ?, error = ?, updated_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?')
        .run(state, error, this.nowIso(), c.id);
    });
  }

  /**
   * A workflow that could not finish a step stays running without a runner:
   * its lease is released and its next attempt scheduled (`nextAttemptAt` of
   * how many times it failed before). `giveUp`, asked with when it first
   * failed, returns the change that gives up on it (puts its resource in error,
   * returning the status to put back) or nothing to keep retrying; it runs in
   * the same transaction and the workflow is parked.
   */
  stall(
    c: Claim,
    error: string,
    nextAttemptAt: (failuresBefore: number) => string,
    giveUp: (firstFailedAt: string) => (() => string | undefined) | undefined,
  ): { attempts: number; firstFailedAt: string; parked: boolean } {
    return writeTx(this.db, () => {
      this.hold(c);
      const t = this.nowIso();
      const before = this.db.prepare('SELECT attempts FROM workflows WHERE id = ?').get(c.id) as { attempts: number };
      this.db
        .prepare(
          `UPDATE workflows SET lease_owner = NULL, lease_until = NULL, attempts = attempts + 1, next_attempt_at = ?,
           first_failed_at = coalesce(first_failed_at, ?), last_error = ?, updated_at = ? WHERE id = ?`,
        )
        .run(nextAttemptAt(before.attempts), t, error, t, c.id);
      const r = this.db.prepare('SELECT attempts, first_failed_at FROM workflows WHERE id = ?').get(c.id) as { attempts: number; first_failed_at: string };
      const park = giveUp(r.first_failed_at);
      if (park) this.parkInTx('workflows', c.id, park);
      return { attempts: r.attempts, firstFailedAt: r.first_failed_at, parked: Boolean(park) };
    });
  }

  /**
   * Recovery at start-up: claims the next running workflow (after `afterId`)
   * that nobody is running: its lease is gone or expired, or its owner is a
   * runner `isGone` says is dead (this process's predecessor). Stalled ones
   * are taken whether due or not: a restart retries everything. A workflow a
   * live runner holds (another front on the same database) is left alone.
   */
  claimOrphan(afterId: number): { row: WorkflowRow; claim: Claim } | undefined {
    const t = this.nowIso();
    return writeTx(this.db, () => {
      const candidates = this.db
        .prepare(`SELECT id, lease_owner, lease_until FROM workflows WHERE state = 'running' AND parked_at IS NULL AND id > ? ORDER BY id`)
        .all(afterId) as { id: number; lease_owner: string | null; lease_until: string | null }[];
      const free = candidates.find((r) => r.lease_until === null || r.lease_until < t || (r.lease_owner !== null && this.isGone(r.lease_owner)));
      if (!free) return undefined;
      if (free.lease_until !== null) claimTakenOver('workflow');
      const token = this.newToken();
      const row = this.db
        .prepare(`UPDATE workflows SET lease_owner = ?, lease_until = ? WHERE id = ? AND lease_owner IS ? RETURNING ${WORKFLOW_COLUMNS}`)
        .get(token, this.leaseUntil(), free.id, free.lease_owner) as WorkflowRow;
      return { row, claim: { table: 'workflows', id: row.id, token } };
    });
  }

  /** The resource of each running workflow recovery will look at (those not parked), once per workflow. */
  runningResources(): string[] {
    return (this.db.prepare(`SELECT resource_id FROM workflows WHERE state = 'running' AND parked_at IS NULL ORDER BY id`).all() as { resource_id: string }[]).map((r) => r.resource_id);
  }

  /** Claims the next stalled workflow after `afterId`: running, nobody's live lease, due (unless told otherwise). One at a time, so no claim waits unrenewed behind another's work. */
  claimStalled(f: ClaimFilter = {}, afterId = 0): { row: WorkflowRow; claim: Claim; takenOver: boolean } | undefined {
    const t = this.nowIso();
    const token = this.newToken();
    let takenOver = false;
    const row = writeTx(this.db, () => {
      // Looked up first, in the same transaction, to tell a takeover (a lease that ran out, a runner gone) from a retry.
      const next = this.db
        .prepare(
          `SELECT id, lease_until FROM workflows WHERE state = 'running' AND (lease_until IS NULL OR lease_until < ? OR vbs_runner_gone(lease_owner)) AND id > ?
             AND (? IS NULL OR resource_id = ?) AND (? OR next_attempt_at IS NULL OR next_attempt_at <= ?) AND (? OR parked_at IS NULL)
             ORDER BY id LIMIT 1`,
        )
        .get(t, afterId, f.resource ?? null, f.resource ?? null, f.notDueToo ? 1 : 0, t, f.parkedToo ? 1 : 0) as { id: number; lease_until: string | null } | undefined;
      if (!next) return undefined;
      takenOver = next.lease_until !== null;
      if (takenOver) claimTakenOver('workflow');
      return this.db.prepare(`UPDATE workflows SET lease_owner = ?, lease_until = ? WHERE id = ? RETURNING ${WORKFLOW_COLUMNS}`).get(token, this.leaseUntil(), next.id) as WorkflowRow;
    });
    return row && { row, claim: { table: 'workflows', id: row.id, token }, takenOver };
  }

  /** Keeps an undo that failed, while the workflow's claim holds. */
  addLeftover(c: Claim, kind: string, step: string, resource: string, data: object, error: string, nextAttemptAt: string): void {
    writeTx(this.db, () => {
      this.hold(c);
      this.db
        .prepare(`INSERT INTO leftovers (workflow_id, kind, step, data, error, created_at, next_attempt_at, resource_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
        .run(c.id, kind, step, JSON.stringify(data), error, this.nowIso(), nextAttemptAt, resource);
    });
  }

  /**
   * Claims the next leftover undo after `afterId`. A workflow's undos run in
   * the order its compensation kept them, one at a time: a later one (remove
   * the target) waits until the earlier one (log the host out) has worked, as
   * it would fail before. Different workflows' undos may run side by side.
   */
  claimLeftover(f: ClaimFilter = {}, afterId = 0): { row: LeftoverRow; claim: Claim } | undefined {
    const t = this.nowIso();
    const token = this.newToken();
    const row = writeTx(this.db, () => {
      const next = this.db
        .prepare(
          `SELECT id, lease_until FROM leftovers l WHERE (lease_until IS NULL OR lease_until < ? OR vbs_runner_gone(lease_owner)) AND id > ?
             AND (? IS NULL OR resource_id = ?) AND (? IS NULL OR workflow_id = ?) AND (? OR next_attempt_at <= ?) AND (? OR parked_at IS NULL)
             AND NOT EXISTS (SELECT 1 FROM leftovers e WHERE e.workflow_id = l.workflow_id AND e.id < l.id)
             ORDER BY id LIMIT 1`,
        )
        .get(t, afterId, f.resource ?? null, f.resource ?? null, f.workflowId ?? null, f.workflowId ?? null, f.notDueToo ? 1 : 0, t, f.parkedToo ? 1 : 0) as
        | { id: number; lease_until: string | null }
        | undefined;
      if (!next) return undefined;
      if (next.lease_until !== null) claimTakenOver('undo');
      return this.db.prepare(`UPDATE leftovers SET lease_owner = ?, lease_until = ? WHERE id = ? RETURNING ${LEFTOVER_COLUMNS}`).get(token, this.leaseUntil(), next.id) as LeftoverRow;
    });
    return row && { row, claim: { table: 'leftovers', id: row.id, token } };
  }

  /** A leftover that worked: gone (only while its claim holds). */
  dropLeftover(c: Claim, change?: () => void): void {
    writeTx(this.db, () => {
      this.hold(c);
      this.db.prepare('DELETE FROM leftovers WHERE id = ?').run(c.id);
      change?.();
    });
  }

  /** A leftover that failed again: released and scheduled, or given up on (parked) when `giveUp` is set. */
  rescheduleLeftover(c: Claim, error: string, nextAttemptAt: string, giveUp?: () => string | undefined): void {
    writeTx(this.db, () => {
      this.hold(c);
      this.db
        .prepare('UPDATE leftovers SET attempts = attempts + 1, error = ?, next_attempt_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?')
        .run(error, nextAttemptAt, c.id);
      if (giveUp) this.parkInTx('leftovers', c.id, giveUp);
    });
  }

  /**
   * Gives up on a workflow or leftover: it stays, parked, until a repair
   * resumes it. `change` (which puts the resource in error) runs in the same
   * transaction and returns the status to put back on resuming.
   */
  private parkInTx(table: 'workflows' | 'leftovers', id: number, change: () => string | undefined): void {
    const previous = change() ?? null;
    this.db.prepare(`UPDATE ${table} SET parked_at = ?, parked_status = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?`).run(this.nowIso(), previous, id);
  }

  /** Resumes parked work the claim holds: retried as if new (attempts and the give-up clock start again). */
  unpark(c: Claim, change: () => void): void {
    writeTx(this.db, () => {
      this.hold(c);
      change();
      this.db.prepare(`UPDATE ${c.table} SET parked_at = NULL, parked_status = NULL, attempts = 0 WHERE id = ?`).run(c.id);
      // The give-up clock: a workflow's first failure, a leftover's creation.
      if (c.table === 'workflows') this.db.prepare('UPDATE workflows SET first_failed_at = NULL WHERE id = ?').run(c.id);
      else this.db.prepare('UPDATE leftovers SET created_at = ? WHERE id = ?').run(this.nowIso(), c.id);
    });
  }

  /** Whether a workflow of this kind is running (or stalled) on a resource. */
  isRunning(kind: string, resource: string): boolean {
    return Boolean(this.db.prepare(`SELECT 1 FROM workflows WHERE kind = ? AND resource_id = ? AND state = 'running' LIMIT 1`).get(kind, resource));
  }

  /** Whether earlier work on a resource is unfinished and nobody is running it: a stalled or parked workflow, or a leftover undo. */
  /** Undos of failed workflows still waiting on the resource. */
  hasLeftovers(resource: string): boolean {
    return Boolean(this.db.prepare('SELECT 1 FROM leftovers WHERE resource_id = ? LIMIT 1').get(resource));
  }

  hasPendingWork(resource: string): boolean {
    const t = this.nowIso();
    const stalled = this.db
      .prepare(`SELECT 1 FROM workflows WHERE resource_id = ? AND state = 'running' AND (lease_until IS NULL OR lease_until < ? OR vbs_runner_gone(lease_owner)) LIMIT 1`)
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
      .prepare(`SELECT ${LEFTOVER_COLUMNS} FROM leftovers ORDER BY id`)
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
