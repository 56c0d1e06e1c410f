import { crashPoint } from '../core/crash-points.js';
import { fenced } from '../core/claim-fence.js';
import * as metrics from '../core/metrics.js';
import { VbsError, errorMessage, toSafeError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { failureOutcome } from '../core/outcome.js';
import type { Db } from '../db/database.js';
import { now } from '../core/clock.js';
import { ClaimLost, Journal, lastStep, pendingWork, type Claim, type ClaimFilter, type LeftoverRow, type WorkflowRow } from '../db/journal.js';
import { newRunnerId, runnerIsGone, runnerStopped } from './runner-id.js';
import { pendingOnlyOnOtherHosts } from '../db/host-work.js';
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
   * Metadata changes when one of its leftover undos finally worked, with the
   * data that undo left (an abort may have kept a record for what could not be
   * undone yet). Runs inside the write transaction that drops the leftover.
   */
  leftoverDone?(meta: Metadata, data: D): void;
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

/** How the engine holds its claims; tests and the soak shorten the lease or step the clock. */
export interface ClaimOptions {
  /** How long a claim holds without being renewed (front config `claimLeaseMs`). */
  readonly leaseMs?: number;
  /** Milliseconds since the epoch (src/core/clock.ts unless a test brings its own). */
  readonly clock?: () => number;
}

/** A claim's lease unless configured: long enough for a delegate call that times out, short enough to take over a dead runner's work. */
export const DEFAULT_LEASE_MS = 120_000;

/** Leftover undos retried at once by one front: enough that one slow host does not hold back the rest, few enough to keep a 2-core front answering. */
const LEFTOVER_RUNNERS = 4;

/**
 * A request on a resource whose interrupted work the restarted front is still
 * recovering: retryable, like any unfinished earlier work.
 */
export class BeingRecovered extends VbsError {
  constructor(resource: string) {
    super('ServiceUnavailable', `'${resource}' is being recovered after a restart of the VBS service. Retry shortly.`);
  }
}

export class WorkflowEngine {
  private readonly kinds = new Map<string, AnyKind>();
  readonly journal: Journal;
  private readonly retry: RetryOptions;
  private readonly clock: () => number;
  /** Resources whose interrupted workflows recovery has not finished yet: requests on them are answered retryable. */
  private readonly recovering = new Map<string, number>();

  constructor(
    db: Db,
    private readonly meta: Metadata,
    private readonly log: Logger,
    /** Called before each step runs; tests use it to crash or fail at a chosen step. */
    private readonly beforeStep: (kind: string, step: string) => void = () => {},
    retry: Partial<RetryOptions> = {},
    claims: ClaimOptions = {},
  ) {
    this.clock = claims.clock ?? now;
    this.journal = new Journal(db, newRunnerId(), claims.leaseMs ?? DEFAULT_LEASE_MS, this.clock, runnerIsGone);
    this.retry = { ...DEFAULT_RETRY_OPTIONS, ...retry };
  }

  register(kind: AnyKind): void {
    this.kinds.set(kind.kind, kind);
    metrics.workflowKind(kind.kind);
  }

  /** This runner stops: its claims are free for a successor at once (it is no longer "live"). */
  stop(): void {
    runnerStopped(this.journal.owner);
  }

  /**
   * Journals a new workflow together with `prepare`'s metadata changes (one
   * transaction; prepare throws to refuse), then runs its steps. Unfinished
   * earlier work on the resource (`resource`, when the caller knows it before
   * preparing) is finished first; while any remains, the workflow is refused.
   * A retried detach or delete whose first attempt stalled is answered by the
   * work it finished: that is what the user asked for.
   */
  async run<D extends object>(kind: WorkflowKind<D>, prepare: () => D, resource?: string): Promise<D> {
    if (resource && this.recovering.has(resource)) throw new BeingRecovered(resource);
    const settled = resource ? await this.settle(resource) : [];
    try {
      return await this.start(kind, prepare, resource);
    } catch (err) {
      const finished = settled.find((w) => w.kind === kind.kind);
      if (finished && kind.recovery === 'rollforward' && isGoneOrDone(err)) return finished.data as D;
      if (!(err instanceof UndoPending) || err.resource === resource) throw err;
      await this.settle(err.resource);
      return this.start(kind, prepare);
    }
  }

  /** Runs a resource's pending work now (parked too: a user asked for something on it). Returns the workflows it finished. */
  private async settle(resource: string): Promise<{ kind: string; data: object }[]> {
    // A read first: claiming takes a write transaction per kind of work and per leftover runner, five
    // in all, for nothing on most resources. Work that appears after this look is refused by start's own check.
    if (!this.journal.hasPendingWork(resource)) return [];
    const finished: { kind: string; data: object }[] = [];
    await this.resume({ resource, notDueToo: true, parkedToo: true }, finished);
    return finished;
  }

  private async start<D extends object>(kind: WorkflowKind<D>, prepare: () => D, known?: string): Promise<D> {
    const { claim, data } = this.journal.db.transaction(() => {
      const data = this.prepareOrRetryable(kind, prepare, known);
      const resource = kind.resourceOf(data);
      if (this.recovering.has(resource)) throw new BeingRecovered(resource);
      if (this.journal.hasPendingWork(resource) && !this.onlyOtherHostsPending(kind, resource, data)) throw new UndoPending(resource, this.pendingSummary(resource));
      // The first step is journaled as started in this same commit (see execute).
      return { claim: this.journal.insert(kind.kind, resource, data, kind.steps(data)[0]?.name), data };
    }).immediate();
    crashPoint(`${kind.kind}/journaled`); // fault injection for crash tests (src/core/crash-points.ts)
    return this.execute(kind, claim, data, 0, false, true);
  }

  /**
   * A detach or delete refused as IncorrectState because the same operation is
   * still unfinished on the resource (stalled, or another runner is finishing
   * it) is the user's retry of it: retryable (ServiceUnavailable), as the
   * README promises, not IncorrectState.
   */
  private prepareOrRetryable<D>(kind: WorkflowKind<D>, prepare: () => D, resource?: string): D {
    try {
      return prepare();
    } catch (err) {
      if (resource && kind.recovery === 'rollforward' && err instanceof VbsError && err.code === 'IncorrectState' && this.journal.isRunning(kind.kind, resource)) {
        throw new VbsError('ServiceUnavailable', `An earlier ${kind.kind} of '${resource}' is being finished. Retry shortly.`);
      }
      // "In use" or "in the wrong state" while an undo is still pending on the resource is that undo's doing
      // (a failed attach keeps its attachment until its disk is seen gone): retryable, and says what waits.
      if (resource && err instanceof VbsError && (err.code === 'VolumeInUse' || err.code === 'IncorrectState') && this.journal.hasLeftovers(resource)) {
        throw new UndoPending(resource, this.pendingSummary(resource));
      }
      throw err;
    }
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

  /**
   * Runs `work` (a delegate call) while keeping the claim's lease alive, and
   * fenced (src/core/claim-fence.ts): the moment the claim may be lost, its
   * delegate calls are cut and no new one is sent, before another runner (a
   * second front on the database) can take the work over. That moment is a
   * renewal that fails (the claim is gone, or the database cannot be
   * reached), or the lease nearing its end with no renewal (the front is cut
   * off from its database, or too busy to renew): at seven eighths of it, so
   * the cut comes before the lease can expire. ClaimLost is then thrown, so
   * nothing more is written or called; what was in flight is left to whoever
   * holds the claim next (every step is idempotent and looks first).
   */
  private async holding<T>(claim: Claim, work: () => Promise<T>): Promise<T> {
    const fence = new AbortController();
    let lost: unknown;
    const cut = (why: unknown) => {
      lost ??= why;
      clearInterval(beat);
      clearTimeout(deadline);
      fence.abort();
    };
    const leaseMs = this.journal.leaseMs;
    // Cut an eighth of the lease before it ends: a renewal that never comes back leaves no gap for another runner.
    const armDeadline = (leaseLeftMs: number) => {
      const t = setTimeout(() => cut(new ClaimLost(claim)), Math.max(1, Math.floor(leaseLeftMs - leaseMs / 8)));
      t.unref();
      return t;
    };
    // The lease was renewed just before this step (setStep, renew): it holds about leaseMs from now.
    let deadline = armDeadline(leaseMs);
    const beat = setInterval(() => {
      try {
        const until = this.journal.renew(claim);
        clearTimeout(deadline);
        deadline = armDeadline(until - this.clock());
      } catch (err) {
        if (!(err instanceof ClaimLost)) this.log.warn('could not renew a claim; its work stops here and is taken over when the lease ends', { id: claim.id, err });
        cut(err);
      }
    }, Math.max(10, Math.floor(leaseMs / 4)));
    beat.unref();
    try {
      const out = await fenced(fence.signal, work);
      if (lost) throw lost instanceof ClaimLost ? lost : new ClaimLost(claim);
      return out;
    } catch (err) {
      if (lost) throw lost instanceof ClaimLost ? lost : new ClaimLost(claim);
      throw err;
    } finally {
      clearInterval(beat);
      clearTimeout(deadline);
    }
  }

  /**
   * Runs steps `from`.. and commits. Each commit of the journal is an fsync on
   * the front's event loop, so adjacent writes with nothing external between
   * them are one transaction: step `from` was journaled as started with the
   * workflow itself when `fromJournaled` (a new workflow), and the last step's
   * "done" is written with the commit. A crash just before such a merged
   * commit is a crash a moment earlier, so no new state appears.
   * `resumed`: an earlier attempt of this workflow may have acted (a crash, a stall), so no failure now proves that nothing changed.
   */
  private async execute<D extends object>(kind: WorkflowKind<D>, claim: Claim, data: D, from: number, resumed = false, fromJournaled = false): Promise<D> {
    const steps = kind.steps(data);
    for (let i = from; i < steps.length; i++) {
      const step = steps[i]!;
      if (!(fromJournaled && i === from)) this.journal.setStep(claim, i, step.name, 'started');
      let out: Partial<D> | void;
      const took = metrics.stopwatch();
      try {
        crashPoint(`${kind.kind}/${i + 1}/before`); // fault injection for crash tests
        this.beforeStep(kind.kind, step.name);
        out = await this.holding(claim, () => step.run(data));
        metrics.stepTimed(kind.kind, step.name, true, took());
      } catch (err) {
        metrics.stepTimed(kind.kind, step.name, false, took());
        if (err instanceof ClaimLost) throw err;
        return await this.failed(kind, claim, data, steps, i, toSafeError(err), resumed);
      }
      if (out) Object.assign(data, out);
      if (i === steps.length - 1) {
        // The last step's "done" and the commit are one transaction: the workflow is over when it lands.
        crashPoint(`${kind.kind}/commit`); // fault injection for crash tests: the last step acted, nothing of it journaled
        this.journal.finish(claim, 'done', null, () => kind.commit(this.meta, data), { idx: i, name: step.name, data });
        crashPoint(`${kind.kind}/${i + 1}/after`); // fault injection for crash tests: committed, not yet answered
        metrics.workflowEnded(kind.kind, 'done');
        return data;
      }
      this.journal.stepDone(claim, i, step.name, data);
      crashPoint(`${kind.kind}/${i + 1}/after`); // fault injection for crash tests
    }
    // No step left to run (every step was done before a restart, or a kind without steps).
    crashPoint(`${kind.kind}/commit`); // fault injection for crash tests
    this.journal.finish(claim, 'done', null, () => kind.commit(this.meta, data));
    metrics.workflowEnded(kind.kind, 'done');
    return data;
  }

  /** Decides what a failed step means for its workflow, acts on it, and throws what the caller sees. */
  private async failed<D extends object>(kind: WorkflowKind<D>, claim: Claim, data: D, steps: readonly Step<D>[], i: number, cause: VbsError, resumed: boolean): Promise<never> {
    const step = steps[i]!;
    const outcome = failureOutcome(cause);
    if (cause.code === 'InternalError') this.log.error('workflow step failed', { kind: kind.kind, step: step.name, err: cause.cause ?? cause });
    this.journal.setStep(claim, i, step.name, 'failed', cause.message);
    if (kind.recovery === 'rollforward') {
      // A resumed workflow's earlier attempt at this step may have acted even if this one never reached the host.
      const nothingChanged = !resumed && steps.slice(0, i).every((s) => s.observes) && (step.observes || outcome !== 'unknown');
      if (!nothingChanged) {
        this.stall(kind, claim, data, step.name, cause.message);
        metrics.workflowEnded(kind.kind, 'stalled');
        throw new StepStalled(kind.kind, i, steps.length, step.name, cause);
      }
      const failure = new StepFailed(kind.kind, i, steps.length, step.name, cause, true);
      this.journal.finish(claim, 'failed', failure.message, () => kind.abort(this.meta, data, failure));
      metrics.workflowEnded(kind.kind, 'failed');
      throw failure;
    }
    // A step that failed without acting changed nothing; one whose outcome is
    // unknown is undone too (undos look before they act).
    const undoFrom = outcome === 'unknown' ? i : i - 1;
    const clean = await this.compensate(kind, claim, data, steps, undoFrom);
    const failure = new StepFailed(kind.kind, i, steps.length, step.name, cause, clean);
    this.journal.finish(claim, 'failed', failure.message, () => kind.abort(this.meta, data, failure));
    metrics.workflowEnded(kind.kind, 'failed');
    throw failure;
  }

  /**
   * Undoes steps `last`..0 (those `skip` says are already undone aside);
   * returns whether every undo worked (the others are kept as leftovers).
   */
  private async compensate<D extends object>(kind: WorkflowKind<D>, claim: Claim, data: D, steps: readonly Step<D>[], last: number, skip: (idx: number) => boolean = () => false): Promise<boolean> {
    let clean = true;
    for (let j = last; j >= 0; j--) {
      const step = steps[j]!;
      if (!step.undo || skip(j)) continue;
      this.journal.renew(claim); // no undo runs from a claim that is gone
      try {
        await this.holding(claim, () => step.undo!(data));
      } catch (err) {
        if (err instanceof ClaimLost) throw err;
        clean = false;
        const message = errorMessage(err);
        this.log.warn('undo failed; kept as a leftover to retry', { kind: kind.kind, step: step.name, message });
        this.journal.addLeftover(claim, kind.kind, step.name, kind.resourceOf(data), data, message, this.nextAttempt(0));
        continue;
      }
      this.journal.setStep(claim, j, step.name, 'undone');
    }
    return clean;
  }

  /** A rollforward workflow that could not finish now: released, retried later, or given up on past the limit. */
  private stall<D extends object>(kind: WorkflowKind<D>, claim: Claim, data: D, stepName: string, reason: string): void {
    const resource = kind.resourceOf(data);
    const { attempts, parked } = this.journal.stall(
      claim,
      reason,
      (failuresBefore) => this.nextAttempt(failuresBefore),
      (firstFailedAt) => {
        if (this.clock() - Date.parse(firstFailedAt) < this.retry.giveUpAfterMs) return undefined;
        const where = stepLocation(stepName, data as Record<string, unknown>);
        const message = `${kind.kind} could not finish ${stepName} on '${where}' since ${firstFailedAt}: ${reason} VBS stopped retrying; \`vbs admin check --repair\` resumes it.`;
        return () => this.giveUp(resource, message);
      },
    );
    this.log.warn('workflow stalled; it will be resumed', { id: claim.id, kind: kind.kind, step: stepName, attempts, message: reason });
    if (parked) this.log.error('gave up retrying; the resource is in error until a repair resumes it', { resource });
  }

  /** Puts a resource in error saying what is left; returns the status to put back on resuming. */
  private giveUp(resource: string, message: string): string | undefined {
    return this.meta.markError(resource, message);
  }

  private nextAttempt(failures: number): string {
    const delay = Math.min(this.retry.maxDelayMs, this.retry.firstDelayMs * 2 ** Math.max(0, failures));
    return new Date(this.clock() + delay).toISOString();
  }

  /**
   * Finishes or undoes every workflow a crash left running. A workflow whose
   * steps are all done only lacks its final metadata change: it is committed,
   * whatever its kind. Otherwise rollback kinds undo every step that started
   * (undo is idempotent; failures become leftovers) and restore the metadata;
   * rollforward kinds rerun from the first step not done.
   *
   * Only work nobody is running is taken (a lease expired, or held by this
   * process's dead predecessor; a second live front keeps its own), one
   * workflow at a time. One workflow's failure never stops the others: it is
   * logged and left to be retried (parked in error past the retry limit), and
   * recover() itself never throws, so the front keeps serving. While it runs,
   * requests on a resource still to recover are answered retryable.
   */
  async recover(): Promise<number> {
    let done = 0;
    try {
      for (const r of this.journal.runningResources()) this.recovering.set(r, (this.recovering.get(r) ?? 0) + 1);
      for (let after = 0; ; ) {
        const next = this.journal.claimOrphan(after);
        if (!next) break;
        after = next.row.id;
        done++;
        const kind = this.kinds.get(next.row.kind);
        if (!kind) {
          this.log.error('journal holds a workflow of an unknown kind', { id: next.row.id, kind: next.row.kind });
          this.doneRecovering(next.row.resource_id);
          continue;
        }
        this.log.info('recovering workflow', { id: next.row.id, kind: next.row.kind, resource: next.row.resource_id, recovery: kind.recovery });
        await this.recoverOne(kind, next.row, next.claim);
        this.doneRecovering(next.row.resource_id);
      }
    } catch (err) {
      this.log.error('recovery stopped early; the timer retries what is left', { err });
    } finally {
      this.recovering.clear();
    }
    return done;
  }

  /** One of a resource's interrupted workflows is dealt with; requests on it are taken again once all are. */
  private doneRecovering(resource: string): void {
    const left = (this.recovering.get(resource) ?? 1) - 1;
    if (left > 0) this.recovering.set(resource, left);
    else this.recovering.delete(resource);
  }

  /**
   * Continues a claimed workflow: forward from its first step not done
   * (rollforward kinds, or any whose steps are all done), else back (a rollback
   * kind whose runner was cut off: a crash, a lost claim). Never throws:
   * returns whether the workflow finished.
   */
  private async recoverOne(kind: AnyKind, row: WorkflowRow, claim: Claim, finished?: { kind: string; data: object }[]): Promise<boolean> {
    const data = JSON.parse(row.data) as object;
    try {
      const steps = kind.steps(data);
      const journaled = this.journal.steps(row.id);
      const state = (i: number) => journaled.find((s) => s.idx === i)?.state;
      const firstNotDone = steps.findIndex((_, i) => state(i) !== 'done');
      if (kind.recovery === 'rollforward' || firstNotDone < 0) {
        await this.execute(kind, claim, data, firstNotDone < 0 ? steps.length : firstNotDone, true);
      } else {
        const lastStarted = journaled.length ? Math.max(...journaled.map((s) => s.idx)) : -1;
        await this.compensate(kind, claim, data, steps, lastStarted, (i) => state(i) === 'undone');
        const failure = new VbsError('OperationFailed', `${row.kind} was interrupted by a restart of the VBS service and was rolled back.`);
        this.journal.finish(claim, 'failed', failure.message, () => kind.abort(this.meta, data, failure));
        metrics.workflowEnded(row.kind, 'rolled_back');
      }
      finished?.push({ kind: row.kind, data });
      return true;
    } catch (err) {
      if (err instanceof ClaimLost) {
        this.log.warn('claim on a workflow lost; another runner finishes it', { id: row.id, kind: row.kind });
      } else if (err instanceof StepStalled || err instanceof StepFailed) {
        this.log.warn('resumed workflow not finished yet', { id: row.id, kind: row.kind, message: err.message });
      } else {
        // Our own failure (a commit or abort that throws, say): logged in full, retried later, never shown to users.
        this.log.error('recovering a workflow failed; it is retried later', { id: row.id, kind: row.kind, resource: row.resource_id, err });
        this.release(kind, claim, data, `${row.kind} could not be finished because of an internal error (see the service log).`);
      }
      return false;
    }
  }

  /** Gives a workflow whose recovery failed back to the journal, to be retried with back-off (and parked past the limit). */
  private release(kind: AnyKind, claim: Claim, data: object, reason: string): void {
    try {
      this.stall(kind, claim, data, lastStep(this.journal.db, claim.id) ?? 'commit', reason);
    } catch (err) {
      this.log.error('could not release a workflow after its recovery failed; it is retried when its lease expires', { id: claim.id, err });
    }
  }

  /**
   * Runs pending work nobody else is running: stalled workflows first, then
   * leftover undos, each claimed right before it runs (one at a time: nothing
   * waits unrenewed behind another's work). By default only work whose next
   * attempt is due and that was not given up on; a delegate back from an
   * outage asks for everything not parked, a repair for everything.
   * Returns how many pieces of work finished.
   */
  async resume(f: ClaimFilter = {}, finished?: { kind: string; data: object }[]): Promise<number> {
    const limit = f.limit ?? Infinity;
    let done = 0;
    let taken = 0;
    for (let after = 0; taken < limit; ) {
      const next = this.journal.claimStalled(f, after);
      if (!next) break;
      after = next.row.id;
      taken++;
      const { row, claim } = next;
      // Another runner held it (a front that died, or was cut off past its lease): said, so an operator sees fronts taking over.
      if (next.takenOver) this.log.info('took over a workflow whose runner is gone or whose lease ran out', { id: row.id, kind: row.kind, resource: row.resource_id });
      const kind = this.kinds.get(row.kind);
      if (!kind) {
        this.log.error('journal holds a workflow of an unknown kind', { id: row.id, kind: row.kind });
        continue;
      }
      try {
        if (row.parked_at) this.journal.unpark(claim, () => row.parked_status && this.meta.clearError(row.resource_id, row.parked_status));
      } catch (err) {
        this.log.warn('could not resume parked work', { id: row.id, err });
        continue;
      }
      if (await this.recoverOne(kind, row, claim, finished)) done++;
    }
    // Leftover undos: a bounded pool of runners, so one host that is slow to
    // answer does not hold back every other resource's clean-up. Each runner
    // follows the workflow it took to the end of its chain of undos (they run
    // in order: see claimLeftover) while they keep working.
    let after = 0;
    const runner = async () => {
      while (taken < limit) {
        let next = this.journal.claimLeftover(f, after);
        if (!next) return;
        after = Math.max(after, next.row.id);
        while (next && taken < limit) {
          taken++;
          if (!(await this.retryLeftover(next.row, next.claim))) break;
          done++;
          next = this.journal.claimLeftover({ ...f, workflowId: next.row.workflow_id });
        }
      }
    };
    await Promise.all(Array.from({ length: LEFTOVER_RUNNERS }, runner));
    return done;
  }

  private async retryLeftover(l: LeftoverRow, claim: Claim): Promise<boolean> {
    const data = JSON.parse(l.data) as Record<string, unknown>;
    const kind = this.kinds.get(l.kind);
    const step = kind?.steps(data).find((s) => s.name === l.step);
    try {
      // Resuming parked work starts its retries afresh, with its resource as it was.
      if (l.parked_at) this.journal.unpark(claim, () => l.parked_status && this.meta.clearError(l.resource_id, l.parked_status));
      if (!step?.undo) throw new Error(`no undo for ${l.kind}/${l.step}`);
      await this.holding(claim, () => step.undo!(data));
      this.journal.dropLeftover(claim, () => kind?.leftoverDone?.(this.meta, data));
      return true;
    } catch (err) {
      if (err instanceof ClaimLost) {
        this.log.warn('claim on a leftover undo lost; another runner retries it', { id: l.id, step: l.step });
        return false;
      }
      const message = errorMessage(err);
      const since = l.parked_at ? this.clock() : Date.parse(l.created_at);
      const giveUp = !l.parked_at && this.clock() - since >= this.retry.giveUpAfterMs;
      const where = stepLocation(l.step, data);
      const parkMessage = `the undo of ${l.step} (${l.kind}) on '${where}' has failed since ${l.created_at}: ${message} VBS stopped retrying; \`vbs admin check --repair\` resumes it.`;
      try {
        this.journal.rescheduleLeftover(claim, message, this.nextAttempt(l.parked_at ? 0 : l.attempts), giveUp ? () => this.giveUp(l.resource_id, parkMessage) : undefined);
        if (giveUp) this.log.error('gave up retrying; the resource is in error until a repair resumes it', { resource: l.resource_id, message: parkMessage });
      } catch (e) {
        this.log.warn('could not reschedule a leftover undo', { id: l.id, err: e });
      }
      return false;
    }
  }
}

/**
 * The refusal a finished detach or delete leaves for its retry: the attachment
 * is not there any more. Only IncorrectState: prepare checks who the caller is
 * first, so a caller who may not see the resource never gets its work's result.
 */
function isGoneOrDone(err: unknown): boolean {
  return err instanceof VbsError && err.code === 'IncorrectState';
}
