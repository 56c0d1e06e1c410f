import type { WorkflowDeps } from './deps.js';
import type { WorkflowKind } from './engine.js';
import { stillCreating } from './create-guard.js';
import { generationOf, unlessSuperseded, type Numbered } from './generation.js';
import { madeState, type MadeState } from './made-state.js';
import { snapshotRecordFields } from './record-fields.js';

export interface CreateSnapshotData extends Numbered {
  snapshotId: string;
  volumeId: string;
  delegate: string;
  owner: string;
  clientToken: string | null;
  /** What the delegate said of the copy when it answered (absent from journals older than the quick answer). */
  made?: MadeState;
}

/** Create snapshot: as create volume, with the copy made from the volume (a reflink copy is completed in the same step). */
export function createSnapshotKind({ delegates, meta, log }: WorkflowDeps): WorkflowKind<CreateSnapshotData> {
  return {
    kind: 'CreateSnapshot',
    recovery: 'rollback',
    resourceOf: (d) => d.snapshotId,
    steps: (d) => [
      {
        name: 'volume-delegate.CreateSnapshot',
        run: async () => {
          const r = await delegates.volumeDelegate(d.delegate).call('CreateSnapshot', {
            snapshotId: d.snapshotId,
            volumeId: d.volumeId,
            ...generationOf(d),
            ...snapshotRecordFields(meta.snapshot(d.snapshotId)),
          });
          return { made: madeState(r) };
        },
        undo: async () => {
          // Absent (the abort ran, this is a leftover) or still creating: the data goes. Moved on: it stays.
          if (!stillCreating(meta, d.snapshotId)) return;
          await unlessSuperseded(log, 'DeleteObject', d, () => delegates.volumeDelegate(d.delegate).call('DeleteObject', { id: d.snapshotId, ...generationOf(d) }));
        },
      },
    ],
    commit: (m, d) => {
      if (d.made?.state === 'ready') m.setSnapshotStatus(d.snapshotId, ['pending'], 'completed', null, 100);
      else if (d.made?.state === 'error') m.setSnapshotStatus(d.snapshotId, ['pending'], 'error', d.made.message);
    },
    abort: (m, d) => {
      if (!stillCreating(m, d.snapshotId)) return; // seen by a user: it stays, and so does its token
      m.deleteSnapshot(d.snapshotId);
      if (d.clientToken) m.deleteClientToken(d.owner, d.clientToken);
    },
  };
}
