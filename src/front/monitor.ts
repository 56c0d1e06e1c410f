import { errorMessage } from '../core/errors.js';
import { workflowRunningOn } from '../db/journal.js';
import type { Logger } from '../core/log.js';
import { writeTx } from '../db/database.js';
import type { Metadata } from '../db/metadata.js';
import type { Record as XmlRecord } from '../soap/xml.js';
import type { DelegatePool } from './delegates.js';

const MAX_CREATE_ATTEMPTS = 3;

/**
 * Watches volumes in `creating` and snapshots in `pending` until their
 * delegate reports the data ready (or failed). Polling from the front, rather
 * than callbacks from delegates, means a restart of either side loses nothing:
 * the state to watch is in the metadata, and a copy the delegate lost (it was
 * restarted mid-copy) is started again, a bounded number of times.
 */
export class CreationMonitor {
  private timer: NodeJS.Timeout | undefined;
  private running = false;

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

  async pollOnce(): Promise<void> {
    const volumes = this.meta.volumesInStatus('creating').filter((v) => !this.inFlight(v.volume_id));
    const snapshots = this.meta.snapshotsInStatus('pending').filter((s) => !this.inFlight(s.snapshot_id));
    const byDelegate = new Map<string, string[]>();
    for (const r of [...volumes.map((v) => [v.delegate, v.volume_id]), ...snapshots.map((s) => [s.delegate, s.snapshot_id])] as [string, string][]) {
      byDelegate.set(r[0], [...(byDelegate.get(r[0]) ?? []), r[1]]);
    }
    await Promise.all(
      [...byDelegate].map(async ([delegate, ids]) => {
        let objects: XmlRecord[];
        try {
          const r = await this.delegates.volumeDelegate(delegate).call('DescribeObjects', { id: ids });
          objects = (r.object as XmlRecord[]) ?? [];
        } catch (err) {
          this.log.warn('volume delegate unreachable; will poll again', { delegate, message: errorMessage(err) });
          return;
        }
        for (const o of objects) await this.apply(delegate, o);
      }),
    );
  }

  /** The create workflow itself is still talking to the delegate: not ours yet. */
  private inFlight(id: string): boolean {
    return workflowRunningOn(this.meta.db, id);
  }

  private async apply(delegate: string, o: XmlRecord): Promise<void> {
    const id = String(o.id);
    const state = String(o.state);
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
    } else if (state === 'absent') {
      await this.restart(delegate, id, isVolume);
    }
  }

  /** The delegate lost a copy (it restarted): start it again, a few times at most. */
  private async restart(delegate: string, id: string, isVolume: boolean): Promise<void> {
    const attempts = writeTx(this.meta.db, () => (isVolume ? this.meta.bumpVolumeAttempts(id) : this.meta.bumpSnapshotAttempts(id)));
    if (attempts > MAX_CREATE_ATTEMPTS) {
      const message = `the volume delegate lost the data ${MAX_CREATE_ATTEMPTS} times while creating it`;
      if (isVolume) this.meta.setVolumeStatus(id, ['creating'], 'error', message);
      else this.meta.setSnapshotStatus(id, ['pending'], 'error', message);
      return;
    }
    this.log.info('restarting a copy the volume delegate lost', { id, attempts });
    try {
      if (isVolume) {
        const v = this.meta.volume(id);
        if (v) await this.delegates.volumeDelegate(delegate).call('CreateVolume', { volumeId: id, sizeGiB: v.size_gib, snapshotId: v.snapshot_id ?? undefined });
      } else {
        const s = this.meta.snapshot(id);
        if (s) await this.delegates.volumeDelegate(delegate).call('CreateSnapshot', { snapshotId: id, volumeId: s.volume_id });
      }
    } catch (err) {
      const message = `could not restart the copy: ${errorMessage(err)}`;
      if (isVolume) this.meta.setVolumeStatus(id, ['creating'], 'error', message);
      else this.meta.setSnapshotStatus(id, ['pending'], 'error', message);
    }
  }
}
