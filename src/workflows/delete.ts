import type { SnapshotState, VolumeState } from '../core/states.js';
import type { WorkflowDeps } from './deps.js';
import type { WorkflowKind } from './engine.js';

export interface DeleteData {
  id: string;
  delegate: string;
  /** The status before deleting, restored if the delegate refuses. */
  previous: string;
}

/**
 * Delete volume / delete snapshot: status `deleting` with the journal entry,
 * then the delegate deletes the data (idempotent), then the row goes. A crash
 * in between finishes the delete on restart (rollforward); a delegate that
 * refuses puts the record back as it was.
 */
export function deleteVolumeKind({ delegates }: WorkflowDeps): WorkflowKind<DeleteData> {
  return {
    kind: 'DeleteVolume',
    recovery: 'rollforward',
    resourceOf: (d) => d.id,
    steps: (d) => [deleteObjectStep(delegates, d)],
    commit: (m, d) => m.deleteVolume(d.id),
    abort: (m, d, err) => {
      m.setVolumeStatus(d.id, ['deleting'], d.previous as VolumeState, d.previous === 'error' ? `deletion failed: ${err.message}` : null);
    },
  };
}

export function deleteSnapshotKind({ delegates }: WorkflowDeps): WorkflowKind<DeleteData> {
  return {
    kind: 'DeleteSnapshot',
    recovery: 'rollforward',
    resourceOf: (d) => d.id,
    steps: (d) => [deleteObjectStep(delegates, d)],
    commit: (m, d) => m.deleteSnapshot(d.id),
    abort: (m, d, err) => {
      m.setSnapshotStatus(d.id, ['deleting'], d.previous as SnapshotState, d.previous === 'error' ? `deletion failed: ${err.message}` : null);
    },
  };
}

function deleteObjectStep(delegates: WorkflowDeps['delegates'], d: DeleteData) {
  return {
    name: 'volume-delegate.DeleteObject',
    run: async () => {
      await delegates.volumeDelegate(d.delegate).call('DeleteObject', { id: d.id });
    },
  };
}
