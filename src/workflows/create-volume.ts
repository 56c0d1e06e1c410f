import type { WorkflowDeps } from './deps.js';
import type { WorkflowKind } from './engine.js';
import { stillCreating } from './create-guard.js';
import { generationOf, unlessSuperseded, type Numbered } from './generation.js';
import { madeState, type MadeState } from './made-state.js';
import { volumeRecordFields } from './record-fields.js';

export interface CreateVolumeData extends Numbered {
  volumeId: string;
  sizeGiB: number;
  snapshotId: string | null;
  delegate: string;
  owner: string;
  clientToken: string | null;
  /** What the delegate said of the data when it answered (absent from journals older than the quick answer). */
  made?: MadeState;
}

/**
 * Create volume: the row is inserted `creating` with the journal entry; the
 * delegate checks capacity and makes the data, answering once it is made
 * (a blank volume, a reflink clone) or after a second with the copy going on
 * in the background. Made: the commit turns the volume available (or error)
 * in the same step's result. Still copying: the front's long-poll of the
 * delegate, or its fallback poll, does it when the copy ends
 * (src/front/copy-watch.ts, src/front/monitor.ts). Any failure removes the
 * row and whatever the delegate made.
 */
export function createVolumeKind({ delegates, meta, log }: WorkflowDeps): WorkflowKind<CreateVolumeData> {
  return {
    kind: 'CreateVolume',
    recovery: 'rollback',
    resourceOf: (d) => d.volumeId,
    steps: (d) => [
      {
        name: 'volume-delegate.CreateVolume',
        run: async () => {
          const r = await delegates.volumeDelegate(d.delegate).call('CreateVolume', {
            volumeId: d.volumeId,
            sizeGiB: d.sizeGiB,
            snapshotId: d.snapshotId ?? undefined,
            ...generationOf(d),
            ...volumeRecordFields(meta.volume(d.volumeId)),
          });
          return { made: madeState(r) };
        },
        undo: async () => {
          // Absent (the abort ran, this is a leftover) or still creating: the data goes. Moved on: it stays.
          if (!stillCreating(meta, d.volumeId)) return;
          await unlessSuperseded(log, 'DeleteObject', d, () => delegates.volumeDelegate(d.delegate).call('DeleteObject', { id: d.volumeId, ...generationOf(d) }));
        },
      },
    ],
    commit: (m, d) => {
      if (d.made?.state === 'ready') m.setVolumeStatus(d.volumeId, ['creating'], 'available');
      else if (d.made?.state === 'error') m.setVolumeStatus(d.volumeId, ['creating'], 'error', d.made.message);
    },
    abort: (m, d2) => {
      if (!stillCreating(m, d2.volumeId)) return; // seen by a user: it stays, and so does its token
      m.deleteVolume(d2.volumeId);
      if (d2.clientToken) m.deleteClientToken(d2.owner, d2.clientToken);
    },
  };
}
