import { randomUUID } from 'node:crypto';
import { crashPoint } from '../core/crash-points.js';
import { VbsError, errorMessage, toSafeError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { failureOutcome } from '../core/outcome.js';
import type { Db } from '../db/database.js';
import { pendingOnlyOnOtherHosts } from '../db/host-work.js';
import { Journal, pendingWork, type ClaimFilter, type LeftoverRow, type WorkflowRow } from '../db/journal.js';
import type { Metadata } from '../db/metadata.js';

/**
 * Multi-step operations as journaled workflows.
 *
 * A workflow's first change to the metadata (for example: volume available ->
 * attachment attaching) is made in the same transaction that journals it. Each
 * external step is journaled as `started` before it runs and `done` after, with
 * whatever it returned merged into the workflow's data.
 *
 * What a failure means depends on the kind's direction:
 * - rollback kinds (attach, creates) undo the completed steps in reverse; an
 *   undo that fails is kept as a leftover and retried.
 * - rollforward kinds (detach, deletes: what a user expects to finish) abort
 *   only while nothing has changed yet (every earlier step only looked, and
 *   this one failed without acting); otherwise they stall and are finished
 *   later, never turned back.
 * Whether a failed step acted is decided in one place (src/core/outcome.ts).
 *
 * Work nobody is running (a stalled workflow, a leftover undo) is claimed in
 * the database before it runs, so it runs in one place at a time; it is retried
 * with a capped exponential back-off and, past the retry limit, parked: its
 * resource goes to `error` with a message saying what is left and where, until
 * `vbs admin check --repair` (or the user's next request on it) resumes it.
 * A new workflow on a resource first finishes that resource's pending work, in
 * the order it was journaled, and is refused while any remains: an old undo
 * never runs after a newer operation.
 */
export interface Step<D> {
  readonly name: string;
  run(data: D): Promise<Partial<D> | void>;
  /** Idempotent, and it looks before it acts. Absent for steps with nothing to undo. */
  undo?(data: D): Promise<void>;
  /** The step only looks: whatever happens to it, it changed nothing. */
  readonly observes?: boolean;
}

export interface WorkflowKind<D> {
  readonly kind: string;
  /** On failure and after a crash: undo what ran (rollback) or finish it (rollforward: every step idempotent). */
  readonly recovery: 'rollback' | 'rollforward';
  /** The volume or snapshot the workflow is about, for the journal. */
  resourceOf(data: D): string;
  steps(data: D): readonly Step<D>[];
  /** Metadata changes once every step is done. Runs inside a write transaction. */
  commit(meta: Metadata, data: D): void;
  /** Metadata changes when the workflow is abandoned. Runs inside a write transaction. */
  abort(meta: Metadata, data: D, error: VbsError): void;
  /**
   * Its work is per volume and VMM host (`data.vmmHost`): pending work of the
   * resource bound to other hosts does not hold it up (src/db/host-work.ts).
   */
  readonly perHost?: boolean;
}

type AnyKind = WorkflowKind<any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** How pending work is retried. */
export interface RetryOptions {
  /** First wait after a failed attempt; doubled after each. */
  readonly firstDelayMs: number;
  /** The longest wait between two attempts. */
  readonly maxDelayMs: number;
  /** Retrying stops this long after the first failure: the work is parked and its resource set to error. */
  readonly giveUpAfterMs: number;
}

export const DEFAULT_RETRY_OPTIONS: RetryOptions = { firstDelayMs: 2_000, maxDelayMs: 300_000, giveUpAfterMs: 3_600_000 };

/** How long a runner's claim on a workflow holds without a step being journaled. */
const LEASE_MS = 120_000;

/** A step failure as the user sees it: which step and why. */
export class StepFailed extends VbsError {
  constructor(kind: string, stepIndex: number, stepCount: number, stepName: string, cause: VbsError, rolledBack: boolean) {
    super(
      userCode(cause),
      `${kind} failed at step ${stepIndex + 1} of ${stepCount} (${stepName}): ${cause.message}${rolledBack ? '' : ' What it changed is being undone.'}`,
      { cause },
    );
  }
}

/**
 * A delegate's fault is about VBS's request to the delegate, not the user's
 * request to VBS: only codes that tell the user something true about their own
 * request or about capacity pass; the rest is our failure (soap:Server).
 */
function userCode(cause: VbsError): VbsError['code'] {
  switch (cause.code) {
    case 'InsufficientCapacity':
    case 'VolumeInUse':
    case 'ServiceUnavailable':
    case 'OperationFailed':
      return cause.code;
    default:
      return 'OperationFailed';
  }
}

/**
 * A step of a rollforward workflow (a detach, a delete) that could not be
 * finished now. Its effect may already be partly there, so it is never turned
 * back: the workflow stays running and is finished when the host answers.
 */
export class StepStalled extends VbsError {
  constructor(kind: string, stepIndex: number, stepCount: number, stepName: string, cause: VbsError) {
    super(
      'ServiceUnavailable',
      `${kind} could not finish step ${stepIndex + 1} of ${stepCount} (${stepName}): ${cause.message} VBS finishes it when the host answers again.`,
      { cause },
    );
  }
}

/**
 * A new workflow on a resource whose earlier work is unfinished (a stalled
 * workflow, an undo to retry): running it first could let that old work break
 * the new result, so it is refused until the old work is done.
 */
export class UndoPending extends VbsError {
  constructor(readonly resource: string, what: string) {
    super('ServiceUnavailable', `An earlier operation on '${resource}' is not finished (${what}); VBS keeps retrying it. Retry shortly.`);
  }
}

/** Where a step acts: the VMM host or the volume delegate named in the workflow's data. */
export function stepLocation(step: string, data: Record<string, unknown>): string {
  const at = step.startsWith('vmm-delegate') ? data.vmmHost : data.delegate;
  return typeof at === 'string' ? at : '-';
}

export class WorkflowEngine {
  private readonly kinds = new Map<string, AnyKind>();
  /** Workflows this process is running now (the lease in the journal says the same to everyone). */
  private readonly active = new Set<number>();
  readonly journal: Journal;
  private readonly retry: RetryOptions;

  constructor(
    db: Db,
    private readonly meta: Metadata,
    private readonly log: Logger,
    /** Called before each step runs; tests use it to crash or fail at a chosen step. */
    private readonly beforeStep: (kind: string, step: string) => void = () => {},
    retry: Partial<RetryOptions> = {},
  ) {
    this.journal = new Journal(db, `front-${process.pid}-${randomUUID()}`, LEASE_MS);
    this.retry = { ...DEFAULT_RETRY_OPTIONS, ...retry };
  }

  register(kind: AnyKind): void {
    this.kinds.set(kind.kind, kind);
  }

  /**
   * Journals a new workflow together with `prepare`'s metadata changes (one
   * transaction; prepare throws to refuse), then runs its steps. Unfinished
   * earlier work on the resource (`resource`, when the caller knows it before
   * preparing) is finished first; while any remains, the workflow is refused.
   */
  async run<D extends object>(kind: WorkflowKind<D>, prepare: () => D, resource?: string): Promise<D> {
    if (resource) await this.settle(resource);
    try {
      return await this.start(kind, prepare);
    } catch (err) {
      if (!(err instanceof UndoPending)) throw err;
      await this.settle(err.resource);
      return this.start(kind, prepare);
    }
  }

  /** Runs a resource's pending work now (parked too: a user asked for something on it). */
  private async settle(resource: string): Promise<void> {
    await this.resume({ resource, notDueToo: true, parkedToo: true });
  }

  private async start<D extends object>(kind: WorkflowKind<D>, prepare: () => D): Promise<D> {
    const { id, data } = this.journal.db.transaction(() => {
      const data = prepare();
      const resource = kind.resourceOf(data);
      if (this.journal.hasPendingWork(resource) && !this.onlyOtherHostsPending(kind, resource, data)) throw new UndoPending(resource, this.pendingSummary(resource));
      return { id: this.journal.insert(kind.kind, resource, data), data };
    }).immediate();
    crashPoint(`${kind.kind}/journaled`); // fault injection for crash tests (src/core/crash-points.ts)
    return this.execute(kind, id, data, 0);
  }

  /** A host that is gone must not block the volume's work on its other hosts. */
  private onlyOtherHostsPending<D extends object>(kind: WorkflowKind<D>, resource: string, data: D): boolean {
    const host = (data as { vmmHost?: unknown }).vmmHost;
    return kind.perHost === true && typeof host === 'string' && pendingOnlyOnOtherHosts(this.journal.db, resource, host);
  }

  private pendingSummary(resource: string): string {
    const { workflows, leftovers } = pendingWork(this.journal.db);
    const w = workflows.find((r) => r.resource_id === resource);
    if (w) return `${w.kind}${w.last_error ? `: ${w.last_error}` : ''}`;
    const l = leftovers.find((r) => r.resource_id === resource);
    return l ? `the undo of ${l.step}: ${l.error}` : 'a step in flight';
  }

  /** `resumed`: an earlier attempt of this workflow may have acted (a crash, a stall), so no failure now proves that nothing changed. */
  private async execute<D extends object>(kind: WorkflowKind<D>, id: number, data: D, from: number, resumed = false): Promise<D> {
    this.active.add(id);
    try {
      return await this.executeSteps(kind, id, data, from, resumed);
    } finally {
      this.active.delete(id);
    }
  }

  private async executeSteps<D extends object>(kind: WorkflowKind<D>, id: number, data: D, from: number, resumed: boolean): Promise<D> {
    const steps = kind.steps(data);
    for (let i = from; i < steps.length; i++) {
      const step = steps[i]!;
      this.journal.setStep(id, i, step.name, 'started');
      let out: Partial<D> | void;
      try {
        crashPoint(`${kind.kind}/${i + 1}/before`); // fault injection for crash tests
        this.beforeStep(kind.kind, step.name);
        out = await step.run(data);
      } catch (err) {
        return await this.failed(kind, id, data, steps, i, toSafeError(err), resumed);
      }
      if (out) Object.assign(data, out);
      this.journal.stepDone(id, i, step.name, data);
      crashPoint(`${kind.kind}/${i + 1}/after`); // fault injection for crash tests
    }
    crashPoint(`${kind.kind}/commit`); // fault injection for crash tests
    this.journal.finish(id, 'done', null, () => kind.commit(this.meta, data));
    return data;
  }

  /** Decides what a failed step means for its workflow, acts on it, and throws what the caller sees. */
  private async failed<D extends object>(kind: WorkflowKind<D>, id: number, data: D, steps: readonly Step<D>[], i: number, cause: VbsError, resumed: boolean): Promise<never> {
    const step = steps[i]!;
    const outcome = failureOutcome(cause);
    if (cause.code === 'InternalError') this.log.error('workflow step failed', { kind: kind.kind, step: step.name, err: cause.cause ?? cause });
    this.journal.setStep(id, i, step.name, 'failed', cause.message);
    if (kind.recovery === 'rollforward') {
      // A resumed workflow's earlier attempt at this step may have acted even if this one never reached the host.
      const nothingChanged = !resumed && steps.slice(0, i).every((s) => s.observes) && (step.observes || outcome !== 'unknown');
      if (!nothingChanged) {
        this.stall(kind, id, data, step.name, cause);
        throw new StepStalled(kind.kind, i, steps.length, step.name, cause);
      }
      const failure = new StepFailed(kind.kind, i, steps.length, step.name, cause, true);
      this.journal.finish(id, 'failed', failure.message, () => kind.abort(this.meta, data, failure));
      throw failure;
    }
    // A step that failed without acting changed nothing; one whose outcome is
    // unknown is undone too (undos look before they act).
    const undoFrom = outcome === 'unknown' ? i : i - 1;
    const clean = await this.compensate(kind, id, data, steps, undoFrom);
    const failure = new StepFailed(kind.kind, i, steps.length, step.name, cause, clean);
    this.journal.finish(id, 'failed', failure.message, () => kind.abort(this.meta, data, failure));
    throw failure;
  }

  /** Undoes steps `last`..0; returns whether every undo worked (the others are kept as leftovers). */
  private async compensate<D extends object>(kind: WorkflowKind<D>, id: number, data: D, steps: readonly Step<D>[], last: number): Promise<boolean> {
    let clean = true;
    for (let j = last; j >= 0; j--) {
      const step = steps[j]!;
      if (!step.undo) continue;
      try {
        await step.undo(data);
        this.journal.setStep(id, j, step.name, 'undone');
      } catch (err) {
        clean = false;
        const message = errorMessage(err);
        this.log.warn('undo failed; kept as a leftover to retry', { kind: kind.kind, step: step.name, message });
        this.journal.addLeftover(id, kind.kind, step.name, kind.resourceOf(data), data, message, this.nextAttempt(0));
      }
    }
    return clean;
  }

  /** A rollforward workflow that could not finish now: released, retried later, or given up on past the limit. */
  private stall<D extends object>(kind: WorkflowKind<D>, id: number, data: D, stepName: string, cause: VbsError): void {
    const { attempts, firstFailedAt } = this.journal.stall(id, cause.message, (failuresBefore) => this.nextAttempt(failuresBefore));
    this.log.warn('workflow stalled; it will be resumed', { id, kind: kind.kind, step: stepName, attempts, message: cause.message });
    if (Date.now() - Date.parse(firstFailedAt) < this.retry.giveUpAfterMs) return;
    const where = stepLocation(stepName, data as Record<string, unknown>);
    const message = `${kind.kind} could not finish ${stepName} on '${where}' since ${firstFailedAt}: ${cause.message} VBS stopped retrying; \`vbs admin check --repair\` resumes it.`;
    this.park('workflows', id, kind.resourceOf(data), message);
  }

  private park(table: 'workflows' | 'leftovers', id: number, resource: string, message: string): void {
    this.journal.park(table, id, () => this.meta.markError(resource, message));
    this.log.error('gave up retrying; the resource is in error until a repair resumes it', { resource, message });
  }

  private nextAttempt(failures: number): string {
    const delay = Math.min(this.retry.maxDelayMs, this.retry.firstDelayMs * 2 ** Math.max(0, failures));
    return new Date(Date.now() + delay).toISOString();
  }

  /**
   * Finishes or undoes every workflow a crash left running. A workflow whose
   * steps are all done only lacks its final metadata change: it is committed,
   * whatever its kind. Otherwise rollback kinds undo every step that started
   * (undo is idempotent; failures become leftovers) and restore the metadata;
   * rollforward kinds rerun from the first step not done.
   */
  async recover(): Promise<number> {
    const rows = this.journal.takeAllRunning();
    for (const row of rows) {
      const kind = this.kinds.get(row.kind);
      if (!kind) {
        this.log.error('journal holds a workflow of an unknown kind', { id: row.id, kind: row.kind });
        continue;
      }
      this.log.info('recovering workflow', { id: row.id, kind: row.kind, resource: row.resource_id, recovery: kind.recovery });
      await this.recoverOne(kind, row, true);
    }
    return rows.length;
  }

  /** Continues a claimed workflow: forward from its first step not done, or (rollback kinds, after a crash) back. */
  private async recoverOne(kind: AnyKind, row: WorkflowRow, afterCrash: boolean): Promise<boolean> {
    const data = JSON.parse(row.data) as object;
    const steps = kind.steps(data);
    const journaled = this.journal.steps(row.id);
    const firstNotDone = steps.findIndex((_, i) => journaled.find((s) => s.idx === i)?.state !== 'done');
    if (kind.recovery === 'rollforward' || firstNotDone < 0 || !afterCrash) {
      try {
        await this.execute(kind, row.id, data, firstNotDone < 0 ? steps.length : firstNotDone, true);
        return true;
      } catch (err) {
        this.log.warn('resumed workflow not finished yet', { id: row.id, kind: row.kind, message: errorMessage(err) });
        return false;
      }
    }
    const lastStarted = journaled.length ? Math.max(...journaled.map((s) => s.idx)) : -1;
    await this.compensate(kind, row.id, data, steps, lastStarted);
    const failure = new VbsError('OperationFailed', `${row.kind} was interrupted by a restart of the VBS service and was rolled back.`);
    this.journal.finish(row.id, 'failed', failure.message, () => kind.abort(this.meta, data, failure));
    return true;
  }

  /**
   * Runs pending work nobody else is running: stalled workflows first, then
   * leftover undos, each claimed before it runs. By default only work whose
   * next attempt is due and that was not given up on; a delegate back from an
   * outage asks for everything not parked, a repair for everything.
   * Returns how many pieces of work finished.
   */
  async resume(f: ClaimFilter = {}): Promise<number> {
    let finished = 0;
    for (const row of this.journal.claimStalled(f)) {
      const kind = this.kinds.get(row.kind);
      if (!kind || this.active.has(row.id)) continue;
      if (row.parked_at) this.journal.unpark('workflows', row.id, () => row.parked_status && this.meta.clearError(row.resource_id, row.parked_status));
      if (await this.recoverOne(kind, row, false)) finished++;
    }
    for (const l of this.journal.claimLeftovers(f)) {
      if (await this.retryLeftover(l)) finished++;
    }
    return finished;
  }

  private async retryLeftover(l: LeftoverRow): Promise<boolean> {
    const data = JSON.parse(l.data) as Record<string, unknown>;
    const step = this.kinds.get(l.kind)?.steps(data).find((s) => s.name === l.step);
    // Resuming parked work starts its retries afresh, with its resource as it was.
    if (l.parked_at) this.journal.unpark('leftovers', l.id, () => l.parked_status && this.meta.clearError(l.resource_id, l.parked_status));
    try {
      if (!step?.undo) throw new Error(`no undo for ${l.kind}/${l.step}`);
      await step.undo(data);
      this.journal.dropLeftover(l.id);
      return true;
    } catch (err) {
      const message = errorMessage(err);
      this.journal.rescheduleLeftover(l.id, message, this.nextAttempt(l.parked_at ? 0 : l.attempts));
      const since = l.parked_at ? Date.now() : Date.parse(l.created_at);
      if (!l.parked_at && Date.now() - since >= this.retry.giveUpAfterMs) {
        const where = stepLocation(l.step, data);
        this.park('leftovers', l.id, l.resource_id, `the undo of ${l.step} (${l.kind}) on '${where}' has failed since ${l.created_at}: ${message} VBS stopped retrying; \`vbs admin check --repair\` resumes it.`);
      }
      return false;
    }
  }
}
