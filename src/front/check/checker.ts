import type { KeyedMutex } from '../../core/keyed-mutex.js';
import type { Logger } from '../../core/log.js';
import type { Metadata } from '../../db/metadata.js';
import type { WorkflowEngine } from '../../workflows/engine.js';
import type { DelegatePool } from '../delegates.js';
import { compare, leftoverLocation } from './compare.js';
import { identityOf, repairOrder, sortFindings, type Finding, type Fix, type Suspect } from './findings.js';
import { gather, readMeta, type GatherTargets } from './observe.js';
import { repair, type DetachAttachment } from './repair.js';

export interface CheckerOptions {
  /**
   * Wait between the two observations a difference must survive: longer than
   * the creation monitor's poll, so a copy that just finished is not reported.
   */
  readonly settleMs: number;
  /** A delegate that has not answered by then is unreachable. */
  readonly callTimeoutMs: number;
  readonly sleep?: (ms: number) => Promise<void>;
  /** The workflows' host locks (FrontWorkflows.hostLocks), taken by the export repairs. */
  readonly hostLocks: KeyedMutex;
  /** Detaches one attachment through DetachVolume's workflow, for repairs that forget an attachment. */
  readonly detach?: DetachAttachment;
  /** The availability zone of a volume delegate, for volumes adopted from a record that names none. */
  readonly zoneOf?: (delegate: string) => string;
}

/** Which repairs a check applies: none (report only), all, or those a predicate allows (the rest are reported). */
export type RepairScope = boolean | ((fix: Fix) => boolean);

export interface CheckResult {
  clean: boolean;
  finding: Finding[];
}

const RESUME_BATCH = 20;

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

  check(repairing: RepairScope, log: Logger): Promise<CheckResult> {
    const run = this.queue.then(() => this.checkNow(repairing, log));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async checkNow(scope: RepairScope, log: Logger): Promise<CheckResult> {
    const allowed = (s: Suspect) => Boolean(s.fix) && (typeof scope === 'function' ? scope(s.fix!) : scope);
    const retried = scope === true ? await this.retryLeftoversNow() : [];
    const first = await this.observe();
    let confirmed: Suspect[] = [];
    if (first.length) {
      await (this.opts.sleep ?? defaultSleep)(this.opts.settleMs);
      const seen = new Set(first.map(identityOf));
      confirmed = (await this.observe()).filter((s) => seen.has(identityOf(s))).sort((a, b) => repairOrder(a) - repairOrder(b));
    }
    const findings: Finding[] = [...retried];
    for (const s of confirmed) {
      // One at a time: a repair may change what the next one checks.
      findings.push(
        allowed(s)
          ? await repair(s, { meta: this.meta, delegates: this.delegates, log, hostLocks: this.opts.hostLocks, detach: this.opts.detach, zoneOf: this.opts.zoneOf })
          : { kind: s.kind, resource: s.resource, location: s.location, detail: s.detail, repaired: false },
      );
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
   * Resumes now, through the engine, all unfinished work (parked work too);
   * what finishes is reported repaired, the rest is found again by the
   * observations that follow.
   */
  private async retryLeftoversNow(): Promise<Finding[]> {
    const pending = readMeta(this.meta).leftovers;
    if (!pending.length) return [];
    // Each pass claims a batch; work that fails again is rescheduled, so every pass moves on.
    for (let i = 0; i <= Math.ceil(pending.length / RESUME_BATCH); i++) {
      await this.engine.resume({ notDueToo: true, parkedToo: true, limit: RESUME_BATCH });
    }
    const left = new Set(readMeta(this.meta).leftovers.map((l) => l.key));
    return pending
      .filter((l) => !left.has(l.key))
      .map((l) => ({
        kind: 'leftover' as const,
        resource: l.resourceId,
        location: leftoverLocation(l),
        detail: `${l.key.startsWith('workflow:') ? `${l.kind} had not finished ${l.step}` : `the undo of ${l.step} (${l.kind}) was pending`}; repaired: retried now and it succeeded`,
        repaired: true,
      }));
  }
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
