import { VbsError } from '../core/errors.js';
import type { Limits, QuotaStore, Usage } from '../db/quotas.js';

/** The limits of a user with no override (the front configuration's `quotas` has the same defaults). */
export const DEFAULT_LIMITS: Limits = { volumes: 1000, gib: 102_400, snapshots: 1000, snapshotGib: 102_400 };

/**
 * Per-user quotas: number of volumes, GiB of volumes, number of snapshots,
 * GiB of snapshots (a snapshot holds its volume's size: what it may cost).
 * admit* run inside the transaction that inserts the record (the workflow's
 * prepare, BEGIN IMMEDIATE), so concurrent creates are counted one after the
 * other and can never overshoot a limit together.
 */
export class QuotaPolicy {
  constructor(
    private readonly store: QuotaStore,
    private readonly defaults: Limits = DEFAULT_LIMITS,
  ) {}

  limits(owner: string): Limits {
    return { ...this.defaults, ...this.store.overrides(owner) };
  }

  /** A user's limits beside what they hold now. */
  describe(owner: string): { limits: Limits; usage: Usage } {
    return { limits: this.limits(owner), usage: this.store.usage(owner) };
  }

  set(owner: string, limits: Partial<Limits>): void {
    this.store.set(owner, limits);
  }

  /** Refuses a new volume of sizeGiB that would take the owner past a limit. Call inside the creating transaction. */
  admitVolume(owner: string, sizeGiB: number): void {
    const { limits, usage } = this.describe(owner);
    if (usage.volumes + 1 > limits.volumes) {
      throw new VbsError('QuotaExceeded', `Quota exceeded: volumes. ${owner} holds ${usage.volumes} of ${limits.volumes} volumes.`);
    }
    if (usage.gib + sizeGiB > limits.gib) {
      throw new VbsError('QuotaExceeded', `Quota exceeded: gib. ${owner} holds ${usage.gib} GiB of ${limits.gib}; ${sizeGiB} more would pass it.`);
    }
  }

  /** Refuses growing a volume of owner's by moreGiB past the GiB limit (ModifyVolume). Call inside the modifying transaction. */
  admitGrowth(owner: string, moreGiB: number): void {
    const { limits, usage } = this.describe(owner);
    if (usage.gib + moreGiB > limits.gib) {
      throw new VbsError('QuotaExceeded', `Quota exceeded: gib. ${owner} holds ${usage.gib} GiB of ${limits.gib}; growing by ${moreGiB} more would pass it.`);
    }
  }

  /** Refuses a new snapshot of sizeGiB past the owner's limits. Call inside the creating transaction. */
  admitSnapshot(owner: string, sizeGiB: number): void {
    const { limits, usage } = this.describe(owner);
    if (usage.snapshots + 1 > limits.snapshots) {
      throw new VbsError('QuotaExceeded', `Quota exceeded: snapshots. ${owner} holds ${usage.snapshots} of ${limits.snapshots} snapshots.`);
    }
    if (usage.snapshotGib + sizeGiB > limits.snapshotGib) {
      throw new VbsError(
        'QuotaExceeded',
        `Quota exceeded: snapshotGib. ${owner} holds ${usage.snapshotGib} GiB of snapshots of ${limits.snapshotGib}; ${sizeGiB} more would pass it.`,
      );
    }
  }
}
