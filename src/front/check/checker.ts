import type { Logger } from '../../core/log.js';
import { now, writeTx } from '../../db/database.js';
import type { Metadata } from '../../db/metadata.js';
import type { WorkflowEngine } from '../../workflows/engine.js';
import type { DelegatePool } from '../delegates.js';
import { compare, leftoverLocation } from './compare.js';
import { identityOf, sortFindings, type Finding, type Suspect } from './findings.js';
import { gather, readMeta, type GatherTargets } from './observe.js';
import { repair } from './repair.js';

export interface CheckerOptions {
  /**
   * Wait between the two observations a difference must survive: longer than
   * the creation monitor's poll, so a copy that just finished is not reported.
   */
  readonly settleMs: number;
  /** A delegate that has not answered by then is unreachable. */
  readonly callTimeoutMs: number;
  readonly sleep?: (ms: number) => Promise<void>;
}

export interface CheckResult {
  clean: boolean;
  finding: Finding[];
}

const LEFTOVER_BATCH = 20; // what WorkflowEngine.retryLeftovers takes per call

/**
 * Reconciliation: compares the metadata with what every delegate reports.
 *
 * A difference is reported only when it is seen twice: within one
 * observation (metadata read before and after the delegates answered; a
 * request that moved on meanwhile makes the two disagree) and again in a
 * second observation after `settleMs`. Resources a workflow is working on are
 * skipped. One check runs at a time.
 */
export class ConsistencyChecker {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly meta: Metadata,
    private readonly delegates: DelegatePool,
    private readonly engine: WorkflowEngine,
    private readonly opts: CheckerOptions,
  ) {}

  check(repairing: boolean, log: Logger): Promise<CheckResult> {
    const run = this.queue.then(() => this.checkNow(repairing, log));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async checkNow(repairing: boolean, log: Logger): Promise<CheckResult> {
    const retried = repairing ? await this.retryLeftoversNow() : [];
    const first = await this.observe();
    let confirmed: Suspect[] = [];
    if (first.length) {
      await (this.opts.sleep ?? defaultSleep)(this.opts.settleMs);
      const seen = new Set(first.map(identityOf));
      confirmed = (await this.observe()).filter((s) => seen.has(identityOf(s)));
    }
    const findings: Finding[] = [...retried];
    for (const s of confirmed) {
      // One at a time: a repair may change what the next one checks.
      findings.push(repairing ? await repair(s, { meta: this.meta, delegates: this.delegates, log }) : { kind: s.kind, resource: s.resource, location: s.location, detail: s.detail, repaired: false });
    }
    const finding = sortFindings(findings);
    if (finding.length) log.info('consistency check', { findings: finding.length, unrepaired: finding.filter((f) => !f.repaired).length });
    return { clean: finding.every((f) => f.repaired), finding };
  }

  /** Differences between the delegates' reports and the metadata both before and after them. */
  private async observe(): Promise<Suspect[]> {
    const before = readMeta(this.meta);
    const reports = await gather(this.targets());
    const after = readMeta(this.meta);
    const seen = new Set(compare(before, reports).map(identityOf));
    return compare(after, reports).filter((s) => seen.has(identityOf(s)));
  }

  private targets(): GatherTargets {
    return {
      volumeDelegates: this.delegates.volumeDelegateNames().map((name) => ({ name, client: this.delegates.volumeDelegate(name) })),
      vmmHosts: this.delegates.vmmHostNames().map((name) => ({ name, client: this.delegates.vmmDelegate(name) })),
      callTimeoutMs: this.opts.callTimeoutMs,
    };
  }

  /**
   * Retries now, through the engine, every pending undo of a finished
   * workflow; those that succeed are reported repaired, the others are found
   * again by the observations that follow.
   */
  private async retryLeftoversNow(): Promise<Finding[]> {
    const db = this.meta.db;
    const m = readMeta(this.meta);
    const pending = m.leftovers.filter((l) => !m.busy.has(l.resourceId));
    if (!pending.length) return [];
    const due = writeTx(db, () => {
      const t = now();
      const mark = db.prepare('UPDATE leftovers SET next_attempt_at = ? WHERE id = ?');
      for (const l of pending) mark.run(t, l.id);
      return (db.prepare('SELECT count(*) AS n FROM leftovers WHERE next_attempt_at <= ?').get(t) as { n: number }).n;
    });
    // Each call takes up to a batch of due leftovers; a failed one is rescheduled later, so every call moves on.
    for (let i = 0; i < Math.ceil(due / LEFTOVER_BATCH); i++) await this.engine.retryLeftovers();
    const left = new Set((db.prepare('SELECT id FROM leftovers').all() as { id: number }[]).map((r) => r.id));
    return pending
      .filter((l) => !left.has(l.id))
      .map((l) => ({
        kind: 'leftover' as const,
        resource: l.resourceId,
        location: leftoverLocation(l),
        detail: `the undo of ${l.step} (${l.kind}) was pending; repaired: retried now and it succeeded`,
        repaired: true,
      }));
  }
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
