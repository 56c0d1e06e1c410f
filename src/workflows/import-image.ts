import { VbsError } from '../core/errors.js';
import type { WorkflowDeps } from './deps.js';
import type { WorkflowKind } from './engine.js';
import { stillCreating } from './create-guard.js';
import { generationOf, unlessSuperseded, type Numbered } from './generation.js';

/** EC2 names the source of an imported snapshot vol-ffffffff; ours has our ids' length. */
export const IMPORTED_VOLUME_ID = 'vol-fffffffffffffffff';

export interface ImportImageData extends Numbered {
  snapshotId: string;
  delegate: string;
  owner: string;
  format: string;
  /** The bytes of the snapshot once raw (set by the step). */
  sizeBytes?: number;
}

/**
 * The uploads in progress on this front, by snapshot id: the request's body
 * cannot be journaled, so the step finds it here. After a crash it is gone,
 * and the workflow (recovery: rollback) undoes what the delegate may hold.
 */
export class UploadDesk {
  private readonly sends = new Map<string, () => Promise<number>>();

  put(snapshotId: string, send: () => Promise<number>): void {
    this.sends.set(snapshotId, send);
  }

  /** Sends the upload once; a second call (or after a restart) finds nothing to send. */
  async send(snapshotId: string): Promise<number> {
    const send = this.sends.get(snapshotId);
    this.sends.delete(snapshotId);
    if (!send) throw new VbsError('RequestTimeout', 'The upload of this image is no longer there; nothing was kept.');
    return send();
  }

  drop(snapshotId: string): void {
    this.sends.delete(snapshotId);
  }
}

/**
 * Import image: the snapshot row is inserted `pending` with the journal entry
 * (quota admitted by the upload's size), the upload streams through this
 * front to the snapshot's volume delegate, which checks, converts and keeps
 * it; the commit records the size it ended with and completes it. Any failure,
 * an upload cut midway included, deletes the row and whatever the delegate
 * kept: a partial import never becomes a snapshot.
 */
export function importImageKind({ delegates, meta, log }: WorkflowDeps, desk: UploadDesk): WorkflowKind<ImportImageData> {
  return {
    kind: 'ImportImage',
    recovery: 'rollback',
    resourceOf: (d) => d.snapshotId,
    steps: (d) => [
      {
        name: 'volume-delegate.ImportImage',
        run: async () => ({ sizeBytes: await desk.send(d.snapshotId) }),
        undo: async () => {
          if (!stillCreating(meta, d.snapshotId)) return;
          await unlessSuperseded(log, 'DeleteObject', d, () => delegates.volumeDelegate(d.delegate).call('DeleteObject', { id: d.snapshotId, ...generationOf(d) }));
        },
      },
    ],
    commit: (m, d) => {
      if (d.sizeBytes !== undefined) m.setSnapshotSize(d.snapshotId, Math.max(1, Math.ceil(d.sizeBytes / 1024 ** 3)));
      m.setSnapshotStatus(d.snapshotId, ['pending'], 'completed', null, 100);
    },
    abort: (m, d) => {
      desk.drop(d.snapshotId);
      if (!stillCreating(m, d.snapshotId)) return;
      m.deleteSnapshot(d.snapshotId);
    },
  };
}
