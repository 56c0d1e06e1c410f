import { crashPoint } from '../core/crash-points.js';
import { VbsError, errorMessage, toSafeError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { now, writeTx, type Db } from '../db/database.js';
import type { Metadata } from '../db/metadata.js';

/**
 * Multi-step operations as journaled workflows with compensation.
 *
 * A workflow's first change to the metadata (for example: volume available ->
 * attachment attaching) is made in the same transaction that journals it. Each
 * external step is journaled as `started` before it runs and `done` after, with
 * whatever it returned merged into the workflow's data. When a step fails, the
 * completed steps are undone in reverse and `abort` restores the metadata; an
 * undo that fails is kept as a leftover and retried until it succeeds. After a
 * crash, `recover` finishes or undoes every workflow still running, so nothing
 * stays in a transient state.
 */
export interface Step<D> {
  readonly name: string;
  run(data: D): Promise<Partial<D> | void>;
  /** Idempotent. Absent for steps with nothing to undo. */
  undo?(data: D): Promise<void>;
}

export interface WorkflowKind<D> {
  readonly kind: string;
  /** After a crash: undo what ran (rollback) or finish it (rollforward: every step idempotent). */
  readonly recovery: 'rollback' | 'rollforward';
  /** The volume or snapshot the workflow is about, for the journal. */
  resourceOf(data: D): string;
  steps(data: D): readonly Step<D>[];
  /** Metadata changes once every step is done. Runs inside a write transaction. */
  commit(meta: Metadata, data: D): void;
  /** Metadata changes when the workflow is abandoned. Runs inside a write transaction. */
  abort(meta: Metadata, data: D, error: VbsError): void;
}

type AnyKind = WorkflowKind<any>; // eslint-disable-line @typescript-eslint/no-explicit-any

interface WorkflowRow {
  id: number;
  kind: string;
  resource_id: string;
  data: string;
}

/** A step failure as the user sees it: which step and why. */
export class StepFailed extends VbsError {
  constructor(kind: string, stepIndex: number, stepCount: number, stepName: string, cause: VbsError) {
    super(
      // The step's own code (InsufficientCapacity, VolumeInUse...) tells the
      // user most; only an internal error is reported as a failed operation.
      cause.code === 'InternalError' ? 'OperationFailed' : cause.code,
      `${kind} failed at step ${stepIndex + 1} of ${stepCount} (${stepName}): ${cause.message}`,
      { cause },
    );
  }
}

/**
 * A step of a rollforward workflow (a delete) whose outcome is unknown: it may
 * have taken effect, so rolling back could leave a record without its data.
 * The workflow stays running and is finished once the delegate answers.
 */
export class StepStalled extends VbsError {
  constructor(kind: string, stepIndex: number, stepCount: number, stepName: string, cause: VbsError) {
    super(
      'ServiceUnavailable',
      `${kind} could not finish step ${stepIndex + 1} of ${stepCount} (${stepName}): ${cause.message} VBS finishes it when the delegate answers again.`,
      { cause },
    );
  }
}

/**
 * A new workflow on a resource whose earlier workflow still has an undo to
 * retry: running it first could let that stale undo break the new result
 * (detach the disk a retried attach just attached), so it waits.
 */
export class UndoPending extends VbsError {
  constructor(readonly resource: string) {
    super('ServiceUnavailable', `An earlier operation on '${resource}' was interrupted and VBS is still undoing part of it; retry shortly.`);
  }
}

/** Errors after which we cannot tell whether the step took effect. */
function outcomeUnknown(err: VbsError): boolean {
  return err.code === 'ServiceUnavailable' || err.code === 'InternalError';
}

export class WorkflowEngine {
  private readonly kinds = new Map<string, AnyKind>();
  /** Workflows this process is running now: a stalled workflow is one it is not. */
  private readonly active = new Set<number>();

  constructor(
    private readonly db: Db,
    private readonly meta: Metadata,
    private readonly log: Logger,
    /** Called before each step runs; tests use it to crash or fail at a chosen step. */
    private readonly beforeStep: (kind: string, step: string) => void = () => {},
  ) {}

  register(kind: AnyKind): void {
    this.kinds.set(kind.kind, kind);
  }

  /**
   * Journals a new workflow together with `prepare`'s metadata changes (one
   * transaction; prepare throws to refuse), then runs its steps. While an
   * earlier workflow on the same resource has an undo left to retry, that
   * undo is retried first; if it still fails, the new workflow is refused.
   */
  async run<D extends object>(kind: WorkflowKind<D>, prepare: () => D): Promise<D> {
    try {
      return await this.start(kind, prepare);
    } catch (err) {
      if (!(err instanceof UndoPending)) throw err;
      await this.retryLeftovers({ all: true, resource: err.resource });
      return this.start(kind, prepare);
    }
  }

  private hasLeftovers(resource: string): boolean {
    return Boolean(
      this.db.prepare('SELECT 1 FROM leftovers l JOIN workflows w ON w.id = l.workflow_id WHERE w.resource_id = ? LIMIT 1').get(resource),
    );
  }

  private async start<D extends object>(kind: WorkflowKind<D>, prepare: () => D): Promise<D> {
    const { id, data } = writeTx(this.db, () => {
      const data = prepare();
      if (this.hasLeftovers(kind.resourceOf(data))) throw new UndoPending(kind.resourceOf(data));
      const t = now();
      const r = this.db
        .prepare(`INSERT INTO workflows (kind, resource_id, state, data, created_at, updated_at) VALUES (?, ?, 'running', ?, ?, ?)`)
        .run(kind.kind, kind.resourceOf(data), JSON.stringify(data), t, t);
      return { id: Number(r.lastInsertRowid), data };
    });
    crashPoint(`${kind.kind}/journaled`); // fault injection for crash tests (src/core/crash-points.ts)
    return this.execute(kind, id, data, 0);
  }

  private async execute<D extends object>(kind: WorkflowKind<D>, id: number, data: D, from: number): Promise<D> {
    this.active.add(id);
    try {
      return await this.executeSteps(kind, id, data, from);
    } finally {
      this.active.delete(id);
    }
  }

  private async executeSteps<D extends object>(kind: WorkflowKind<D>, id: number, data: D, from: number): Promise<D> {
    const steps = kind.steps(data);
    for (let i = from; i < steps.length; i++) {
      const step = steps[i]!;
      this.markStep(id, i, step.name, 'started');
      let out: Partial<D> | void;
      try {
        crashPoint(`${kind.kind}/${i + 1}/before`); // fault injection for crash tests
        this.beforeStep(kind.kind, step.name);
        out = await step.run(data);
      } catch (err) {
        const cause = toSafeError(err);
        if (cause.code === 'InternalError') this.log.error('workflow step failed', { kind: kind.kind, step: step.name, err });
        this.markStep(id, i, step.name, 'failed', cause.message);
        if (kind.recovery === 'rollforward' && outcomeUnknown(cause)) {
          this.log.warn('workflow stalled on a step of unknown outcome; it will be resumed', { id, kind: kind.kind, step: step.name, message: cause.message });
          throw new StepStalled(kind.kind, i, steps.length, step.name, cause);
        }
        // A step that failed cleanly changed nothing; one whose outcome is
        // unknown (timeout, lost connection) is undone too, to be safe.
        const undoFrom = outcomeUnknown(cause) ? i : i - 1;
        await this.compensate(kind, id, data, steps, undoFrom);
        const failure = new StepFailed(kind.kind, i, steps.length, step.name, cause);
        this.finish(id, 'failed', failure.message, () => kind.abort(this.meta, data, failure));
        throw failure;
      }
      if (out) Object.assign(data, out);
      writeTx(this.db, () => {
        this.db.prepare('UPDATE workflows SET data = ?, updated_at = ? WHERE id = ?').run(JSON.stringify(data), now(), id);
        this.setStep(id, i, step.name, 'done');
      });
      crashPoint(`${kind.kind}/${i + 1}/after`); // fault injection for crash tests
    }
    crashPoint(`${kind.kind}/commit`); // fault injection for crash tests
    this.finish(id, 'done', null, () => kind.commit(this.meta, data));
    return data;
  }

  private async compensate<D extends object>(kind: WorkflowKind<D>, id: number, data: D, steps: readonly Step<D>[], last: number): Promise<void> {
    for (let j = last; j >= 0; j--) {
      const step = steps[j]!;
      if (!step.undo) continue;
      try {
        await step.undo(data);
        this.markStep(id, j, step.name, 'undone');
      } catch (err) {
        const message = errorMessage(err);
        this.log.warn('undo failed; kept as a leftover to retry', { kind: kind.kind, step: step.name, message });
        writeTx(this.db, () => {
          const t = now();
          this.db
            .prepare(`INSERT INTO leftovers (workflow_id, kind, step, data, error, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)`)
            .run(id, kind.kind, step.name, JSON.stringify(data), message, t, t);
        });
      }
    }
  }

  private finish(id: number, state: 'done' | 'failed', error: string | null, change: () => void): void {
    writeTx(this.db, () => {
      change();
      this.db.prepare('UPDATE workflows SET state = ?, error = ?, updated_at = ? WHERE id = ?').run(state, error, now(), id);
    });
  }

  private markStep(id: number, idx: number, name: string, state: string, error: string | null = null): void {
    writeTx(this.db, () => this.setStep(id, idx, name, state, error));
  }

  private setStep(id: number, idx: number, name: string, state: string, error: string | null = null): void {
    this.db
      .prepare(
        `INSERT INTO workflow_steps (workflow_id, idx, name, state, error, updated_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (workflow_id, idx) DO UPDATE SET state = excluded.state, error = excluded.error, updated_at = excluded.updated_at`,
      )
      .run(id, idx, name, state, error, now());
  }

  /**
   * Finishes or undoes every workflow a crash left running. A workflow whose
   * steps are all done only lacks its final metadata change: it is committed,
   * whatever its kind. Otherwise rollback kinds undo every step that started
   * (undo is idempotent; failures become leftovers) and restore the metadata;
   * rollforward kinds rerun from the first step not done.
   */
  async recover(): Promise<number> {
    const rows = this.db.prepare(`SELECT id, kind, resource_id, data FROM workflows WHERE state = 'running' ORDER BY id`).all() as WorkflowRow[];
    for (const row of rows) {
      const kind = this.kinds.get(row.kind);
      const data = JSON.parse(row.data) as object;
      if (!kind) {
        this.log.error('journal holds a workflow of an unknown kind', { id: row.id, kind: row.kind });
        continue;
      }
      const steps = kind.steps(data);
      const journaled = this.db.prepare('SELECT idx, state FROM workflow_steps WHERE workflow_id = ? ORDER BY idx').all(row.id) as {
        idx: number;
        state: string;
      }[];
      this.log.info('recovering workflow', { id: row.id, kind: row.kind, resource: row.resource_id, recovery: kind.recovery });
      const firstNotDone = steps.findIndex((_, i) => journaled.find((s) => s.idx === i)?.state !== 'done');
      if (kind.recovery === 'rollforward' || firstNotDone < 0) {
        try {
          await this.execute(kind, row.id, data, firstNotDone < 0 ? steps.length : firstNotDone);
        } catch (err) {
          this.log.warn('rolled-forward workflow failed', { id: row.id, message: errorMessage(err) });
        }
      } else {
        const lastStarted = journaled.length ? Math.max(...journaled.map((s) => s.idx)) : -1;
        await this.compensate(kind, row.id, data, steps, lastStarted);
        const failure = new VbsError('OperationFailed', `${row.kind} was interrupted by a restart of the VBS service and was rolled back.`);
        this.finish(row.id, 'failed', failure.message, () => kind.abort(this.meta, data, failure));
      }
    }
    return rows.length;
  }

  /**
   * Retries failed undo steps whose time has come (or all of them, when a
   * delegate just came back), or those of one resource; drops those that
   * succeed. Stalled rollforward workflows are resumed first (resumeStalled).
   */
  async retryLeftovers(opts: { all?: boolean; resource?: string } = {}): Promise<number> {
    await this.resumeStalled();
    const until = opts.all ? '9999' : now();
    const due = this.db
      .prepare(
        `SELECT id, kind, step, data, attempts FROM leftovers WHERE next_attempt_at <= ?
         AND (? IS NULL OR workflow_id IN (SELECT id FROM workflows WHERE resource_id = ?)) ORDER BY id LIMIT 20`,
      )
      .all(until, opts.resource ?? null, opts.resource ?? null) as {
      id: number;
      kind: string;
      step: string;
      data: string;
      attempts: number;
    }[];
    let fixed = 0;
    for (const l of due) {
      const data = JSON.parse(l.data) as object;
      const step = this.kinds.get(l.kind)?.steps(data).find((s) => s.name === l.step);
      try {
        if (!step?.undo) throw new Error(`no undo for ${l.kind}/${l.step}`);
        await step.undo(data);
        writeTx(this.db, () => this.db.prepare('DELETE FROM leftovers WHERE id = ?').run(l.id));
        fixed++;
      } catch (err) {
        const backoffMs = Math.min(300_000, 2_000 * 2 ** l.attempts);
        writeTx(this.db, () =>
          this.db
            .prepare('UPDATE leftovers SET attempts = attempts + 1, error = ?, next_attempt_at = ? WHERE id = ?')
            .run(errorMessage(err), new Date(Date.now() + backoffMs).toISOString(), l.id),
        );
      }
    }
    return fixed;
  }

  /**
   * Resumes rollforward workflows left running after a step of unknown outcome
   * (StepStalled), from their first step not done. Bounded: each pass tries
   * each stalled workflow once.
   */
  async resumeStalled(): Promise<number> {
    const rows = this.db.prepare(`SELECT id, kind, data FROM workflows WHERE state = 'running' ORDER BY id`).all() as Omit<WorkflowRow, 'resource_id'>[];
    let finished = 0;
    for (const row of rows) {
      const kind = this.kinds.get(row.kind);
      if (!kind || kind.recovery !== 'rollforward' || this.active.has(row.id)) continue;
      const data = JSON.parse(row.data) as object;
      const done = this.db.prepare(`SELECT idx FROM workflow_steps WHERE workflow_id = ? AND state = 'done'`).all(row.id) as { idx: number }[];
      const steps = kind.steps(data);
      const from = steps.findIndex((_, i) => !done.some((s) => s.idx === i));
      try {
        await this.execute(kind, row.id, data, from < 0 ? steps.length : from);
        finished++;
      } catch (err) {
        this.log.warn('stalled workflow not finished yet', { id: row.id, kind: row.kind, message: errorMessage(err) });
      }
    }
    return finished;
  }
}
