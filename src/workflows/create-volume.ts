import type { WorkflowDeps } from './deps.js';
import type { WorkflowKind } from './engine.js';

export interface CreateVolumeData {
  volumeId: string;
  sizeGiB: number;
  snapshotId: string | null;
  delegate: string;
  owner: string;
  clientToken: string | null;
}

/**
 * Create volume: the row is inserted `creating` with the journal entry; the
 * delegate checks capacity and starts the copy in the background; the monitor
 * turns the volume available (or error) when the delegate reports it done.
 * Any failure removes the row and whatever the delegate made.
 */
export function createVolumeKind({ delegates }: WorkflowDeps): WorkflowKind<CreateVolumeData> {
  return {
    kind: 'CreateVolume',
    recovery: 'rollback',
    resourceOf: (d) => d.volumeId,
    steps: (d) => [
      {
        name: 'volume-delegate.CreateVolume',
        run: async () => {
          await delegates.volumeDelegate(d.delegate).call('CreateVolume', { volumeId: d.volumeId, sizeGiB: d.sizeGiB, snapshotId: d.snapshotId ?? undefined });
        },
        undo: async () => {
          await delegates.volumeDelegate(d.delegate).call('DeleteObject', { id: d.volumeId });
        },
      },
    ],
    commit: () => {},
    abort: (m, d2) => {
      m.deleteVolume(d2.volumeId);
      if (d2.clientToken) m.deleteClientToken(d2.owner, d2.clientToken);
    },
  };
}
