import { VbsError } from '../core/errors.js';
import type { SnapshotState, VolumeState } from '../core/states.js';
import type { WorkflowDeps } from './deps.js';
import type { Step, WorkflowKind } from './engine.js';
import { generationOf, type Numbered } from './generation.js';

export interface DeleteData extends Numbered {
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
export function deleteVolumeKind(deps: WorkflowDeps): WorkflowKind<DeleteData> {
  return {
    kind: 'DeleteVolume',
    recovery: 'rollforward',
    resourceOf: (d) => d.id,
    steps: (d) => [noVmHoldsStep(deps, d), deleteObjectStep(deps.delegates, d)],
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
      await delegates.volumeDelegate(d.delegate).call('DeleteObject', { id: d.id, ...generationOf(d) });
    },
  };
}

/**
 * Before a volume's data goes, the VMM hosts show that no VM holds it: with
 * LVM a new volume can reuse those extents, and a VM still writing to them
 * would write into another tenant's volume. A VM can only have been given the
 * volume on a host VBS attached it on (each is recorded before the attach's
 * first step), so those hosts are asked, and each must answer.
 */
function noVmHoldsStep({ meta, delegates, log }: WorkflowDeps, d: DeleteData): Step<DeleteData> {
  return {
    name: 'vmm-delegate.ListDisks',
    observes: true,
    run: async () => {
      for (const host of meta.volumeHosts(d.id)) {
        if (!delegates.hasVmmHost(host)) {
          log.warn('a VMM host the volume was attached on is no longer configured; it cannot be asked before the delete', { volumeId: d.id, host });
          continue;
        }
        let disks: { vmId?: unknown; device?: unknown; volumeId?: unknown }[];
        try {
          disks = ((await delegates.vmmDelegate(host).call('ListDisks', {})).disk as typeof disks | undefined) ?? [];
        } catch (err) {
          throw new VbsError('ServiceUnavailable', `VMM host '${host}', where the volume was attached before, could not show that no VM still holds it.`, { cause: err });
        }
        const held = disks.find((disk) => disk.volumeId === d.id);
        if (held) {
          log.error('a VM holds a volume VBS has no attachment for; the delete is refused', { volumeId: d.id, host, vmId: held.vmId, device: held.device });
          throw new VbsError('VolumeInUse', `The volume '${d.id}' is still held by ${String(held.vmId)} on '${host}' (as ${String(held.device)}); it was not deleted.`);
        }
      }
    },
  };
}
