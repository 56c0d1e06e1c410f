import { volumeRecordFields } from '../workflows/record-fields.js';
import { errorMessage } from '../core/errors.js';
import { busyResources } from '../db/journal.js';
import type { Logger } from '../core/log.js';
import { writeTx } from '../db/database.js';
import { currentGeneration } from '../db/generations.js';
import type { Metadata } from '../db/metadata.js';
import type { Record as XmlRecord } from '../soap/xml.js';
import { madeState } from '../workflows/made-state.js';
import type { DelegatePool } from './delegates.js';

const MAX_CREATE_ATTEMPTS = 3;
/** What a user reads on a snapshot whose copy its volume delegate lost (see `restart`). */
export const SNAPSHOT_LOST =
  'The volume delegate restarted while copying this snapshot, and the point in time it was taken at is lost. Delete it and take a new snapshot.';

/**
 * Watches volumes in `creating` and snapshots in `pending` until their
 * delegate reports the data ready (or failed). The news of a finished copy
 * normally comes at once through the long-poll (src/front/copy-watch.ts),
 * which hands what it learns to `apply`; this periodic poll is the fallback
 * that makes restarts safe: the state to watch is in the metadata, and a
 * volume's copy the delegate lost (it was restarted mid-copy) is started
 * again, a bounded number of times; a snapshot's ends in `error`, as its
 * moment is lost. The delegates never need to reach the front.
 */
export class CreationMonitor {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  /** Copies being started again now: the poll and the long-poll never restart one twice at once. */
  private readonly restarting = new Set<string>();
  /** Finished copies reported while their create workflow still ran (not applied then), by id: their delegate. */
  private readonly deferred = new Map<string, string>();

  constructor(
    private readonly meta: Metadata,
    private readonly delegates: DelegatePool,
    private readonly log: Logger,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    const tick = async () => {
      await this.pollOnce().catch((err) => this.log.error('creation monitor failed', { err }));
      if (this.running) this.timer = setTimeout(tick, this.intervalMs);
    };
    this.running = true;
    this.timer = setTimeout(tick, this.intervalMs);
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
  }

  /** Whether a delegate has anything being created (what the long-poll waits for). */
  hasWorkOn(delegate: string): boolean {
    return this.meta.creationsInProgress(delegate).length > 0;
  }

  /** The delegates with something being created. */
  delegatesWithWork(): string[] {
    return [...new Set(this.meta.creationsInProgress().map((r) => r.delegate))];
  }

  async pollOnce(): Promise<void> {
    const inProgress = this.meta.creationsInProgress();
    // Held-back reports of records no longer being created (committed, rolled back) are moot.
    const ids = new Set(inProgress.map((r) => r.id));
    for (const id of this.deferred.keys()) if (!ids.has(id)) this.deferred.delete(id);
    await Promise.all([...new Set(inProgress.map((r) => r.delegate))].map((d) => this.pollDelegate(d)));
  }

  /**
   * Asks one delegate (one DescribeObjects) about everything being created on
   * it, and applies the answers. False when the delegate did not answer.
   */
  async pollDelegate(delegate: string): Promise<boolean> {
    const ids = this.meta.creationsInProgress(delegate).map((r) => r.id);
    if (!ids.length) return true;
    if (!this.delegates.volumeDelegateNames().includes(delegate)) {
      this.abandon(delegate, ids);
      return true;
    }
    let objects: XmlRecord[];
    try {
      const r = await this.delegates.volumeDelegate(delegate).call('DescribeObjects', { id: ids });
      objects = (r.object as XmlRecord[]) ?? [];
    } catch (err) {
      this.log.warn('volume delegate unreachable; will poll again', { delegate, message: errorMessage(err) });
      return false;
    }
    await this.apply(delegate, objects);
    return true;
  }

  /**
   * Applies what a delegate reports of its objects: every status and progress
   * change in one transaction (each guarded by the status it leaves, so a
   * report that comes twice, or late, changes nothing), then starts again the
   * copies it lost.
   *
   * A record whose create workflow is still running is left alone, whatever
   * the delegate says: that workflow can still roll back (its CreateVolume
   * call may yet fail with an unknown outcome), and nothing a user has seen
   * `available`/`completed` may be rolled back. The workflow's own commit
   * promotes it, or it ends `creating` and the next look here does
   * (`lookAgainAfterCreate`).
   */
  async apply(delegate: string, objects: readonly XmlRecord[]): Promise<void> {
    const lost: { id: string; attempts: number }[] = [];
    writeTx(this.meta.db, () => {
      // Read in the transaction that promotes: a workflow cannot start or end between the look and the change.
      const busy = busyResources(this.meta.db);
      for (const o of objects) {
        const id = String(o.id);
        const state = String(o.state);
        if (busy.has(id)) {
          if (state === 'ready' || state === 'error') {
            // Said in the log so an operator (and the public-interface test of issue 16 item 1) can see it.
            if (!this.deferred.has(id)) this.log.info('finished copy held back while its create workflow runs', { id, state });
            this.deferred.set(id, delegate);
          }
        } else if (state === 'absent') lost.push({ id, attempts: id.startsWith('vol-') ? (this.meta.volumeAttempts(id) ?? 0) : 0 });
        else this.record(id, state, o);
      }
    });
    for (const { id, attempts } of lost) await this.restart(delegate, id, attempts);
  }

  /**
   * A create workflow on `delegate` ended with its copy still in progress:
   * if a report of a finished copy was held back while that workflow ran,
   * look again now instead of at the next fallback poll.
   */
  async lookAgainAfterCreate(delegate: string): Promise<void> {
    const held = [...this.deferred].filter(([, d]) => d === delegate).map(([id]) => id);
    if (!held.length) return;
    for (const id of held) this.deferred.delete(id);
    await this.pollDelegate(delegate);
  }

  private record(id: string, state: string, o: XmlRecord): void {
    const isVolume = id.startsWith('vol-');
    if (state === 'ready') {
      if (isVolume) this.meta.setVolumeStatus(id, ['creating'], 'available');
      else this.meta.setSnapshotStatus(id, ['pending'], 'completed', null, 100);
    } else if (state === 'error') {
      const message = String(o.message ?? 'the volume delegate could not create the data');
      if (isVolume) this.meta.setVolumeStatus(id, ['creating'], 'error', message);
      else this.meta.setSnapshotStatus(id, ['pending'], 'error', message);
    } else if (state === 'creating') {
      if (!isVolume && typeof o.progress === 'number') this.meta.setSnapshotProgress(id, o.progress);
    }
  }

  /**
   * A delegate removed from the configuration will never report these again:
   * polling it for ever would keep them creating, so they go to error, saying why.
   */
  private abandon(delegate: string, ids: readonly string[]): void {
    const message = `The volume delegate '${delegate}' is no longer in the front's configuration: the data can no longer be made.`;
    writeTx(this.meta.db, () => {
      for (const id of ids) {
        if (id.startsWith('vol-')) this.meta.setVolumeStatus(id, ['creating'], 'error', message);
        else this.meta.setSnapshotStatus(id, ['pending'], 'error', message);
      }
    });
    this.log.warn('creations on a volume delegate no longer configured were put in error', { delegate, ids: ids.length });
  }

  /**
   * The delegate lost a copy (it restarted). A volume's copy is started
   * again, a few times at most: its source (nothing, or a snapshot) does not
   * change. A snapshot's is not: the point in time it was taken at went with
   * the copy (lvm-iscsi removes its `cow.` source on start; a file copy was
   * reading the live volume), and copying the volume now would report
   * `completed` for data of another moment. It ends in `error` instead.
   */
  private async restart(delegate: string, id: string, seenAttempts: number): Promise<void> {
    if (!id.startsWith('vol-')) {
      if (writeTx(this.meta.db, () => this.meta.setSnapshotStatus(id, ['pending'], 'error', SNAPSHOT_LOST))) {
        this.log.warn('a snapshot copy was lost by a restart of its volume delegate', { id });
      }
      return;
    }
    if (this.restarting.has(id)) return;
    this.restarting.add(id);
    try {
      await this.restartOnce(delegate, id, seenAttempts);
    } finally {
      this.restarting.delete(id);
    }
  }

  private async restartOnce(delegate: string, id: string, seenAttempts: number): Promise<void> {
    const failed = (message: string) => this.meta.setVolumeStatus(id, ['creating'], 'error', message);
    // Several fronts poll the same delegates: only the one whose count still matches what it saw restarts the copy.
    const attempts = writeTx(this.meta.db, () => this.meta.bumpVolumeAttemptsFrom(id, seenAttempts));
    if (attempts === undefined) return;
    if (attempts > MAX_CREATE_ATTEMPTS) {
      failed(`the volume delegate lost the data ${MAX_CREATE_ATTEMPTS} times while creating it`);
      return;
    }
    this.log.info('restarting a copy the volume delegate lost', { id, attempts });
    let answer: XmlRecord | undefined;
    // Still its create's: the latest generation (a delete journaled since is newer, and its delegate refuses this).
    const latest = { generation: currentGeneration(this.meta.db, id) };
    try {
      const v = this.meta.volume(id);
      if (v?.status === 'creating') answer = await this.delegates.volumeDelegate(delegate).call('CreateVolume', { volumeId: id, sizeGiB: v.size_gib, snapshotId: v.snapshot_id ?? undefined, ...latest, ...volumeRecordFields(v) });
    } catch (err) {
      failed(`could not restart the copy: ${errorMessage(err)}`);
      return;
    }
    // A copy made within the call (a blank volume, a reflink) is done now.
    if (answer) writeTx(this.meta.db, () => this.record(id, madeState(answer).state, { id, ...madeState(answer) }));
  }
}
