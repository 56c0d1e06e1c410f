import type { WorkflowDeps } from './deps.js';
import type { WorkflowKind } from './engine.js';

export interface CreateSnapshotData {
  snapshotId: string;
  volumeId: string;
  delegate: string;
  owner: string;
  clientToken: string | null;
}

/** Create snapshot: as create volume, with the copy made from the volume. */
export function createSnapshotKind({ delegates }: WorkflowDeps): WorkflowKind<CreateSnapshotData> {
  return {
    kind: 'CreateSnapshot',
    recovery: 'rollback',
    resourceOf: (d) => d.snapshotId,
    steps: (d) => [
      {
        name: 'volume-delegate.CreateSnapshot',
        run: async () => {
          await delegates.volumeDelegate(d.delegate).call('CreateSnapshot', { snapshotId: d.snapshotId, volumeId: d.volumeId });
        },
        undo: async () => {
          await delegates.volumeDelegate(d.delegate).call('DeleteObject', { id: d.snapshotId });
        },
      },
    ],
    commit: () => {},
    abort: (m, d) => {
      m.deleteSnapshot(d.snapshotId);
      if (d.clientToken) m.deleteClientToken(d.owner, d.clientToken);
    },
  };
}
