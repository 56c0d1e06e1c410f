import { VbsError } from '../core/errors.js';
import type { AttachmentState } from '../core/states.js';
import type { Metadata } from '../db/metadata.js';
import type { AttachmentData } from './attach.js';
import { hostLockKey, type WorkflowDeps } from './deps.js';
import type { WorkflowKind } from './engine.js';
import { generationOf } from './generation.js';

/**
 * A forced detach (EC2's DetachVolume --force) and the release of a retired
 * host's attachments: for a VMM host that does not answer, or is gone.
 *
 * One step, on the volume delegate only: fence the host (the target stops
 * admitting its initiator and drops its connections), verified by the
 * delegate against the target's own listing. Only then are the attachments
 * released: a stale writer on that host can no longer reach the volume. The
 * VMM host is never asked (it may never answer); a disk it still shows is
 * left to the consistency check.
 *
 * `fence: false` is for storage that cannot keep one host out (a shared file
 * system, IET): the front allows it to administrators only.
 */
export interface ForceDetachData extends AttachmentData {
  /** Whether the storage can fence this host (decided when the request is accepted). */
  fence: boolean;
  /** The VMs on this host whose attachments of the volume are released (the one asked for, and those whose stuck work was cancelled). */
  release: string[];
  /** Each released attachment's status before, put back if the fence fails without acting. */
  previous: Record<string, AttachmentState>;
}

export function forceDetachKind({ meta, delegates, hostLocks }: WorkflowDeps): WorkflowKind<ForceDetachData> {
  const fenceHost = (d: ForceDetachData) =>
    hostLocks.run(hostLockKey(d.volumeId, d.vmmHost), async () => {
      // Other attachments of the volume on this host that stay need the export.
      if (!d.fence || remainingOnHost(meta, d) > 0) return;
      const r = await delegates.volumeDelegate(d.delegate).call('UnexportVolume', { volumeId: d.volumeId, vmmHost: d.vmmHost, ...generationOf(d) });
      if (r.fenced !== true) {
        throw new VbsError('OperationFailed', `The volume delegate '${d.delegate}' could not confirm that the target of '${d.volumeId}' no longer admits '${d.vmmHost}'.`);
      }
    });
  return {
    kind: 'ForceDetachVolume',
    recovery: 'rollforward',
    perHost: true,
    resourceOf: (d) => d.volumeId,
    steps: () => [{ name: 'volume-delegate.FenceHost', run: fenceHost }],
    commit: (m, d) => {
      for (const vmId of d.release) m.deleteAttachment(d.volumeId, d.vmmHost, vmId);
      settle(m, d.volumeId);
    },
    abort: (m, d) => {
      for (const vmId of d.release) {
        const before = d.previous[vmId];
        if (before && before !== 'detaching') m.setAttachmentStatus(d.volumeId, d.vmmHost, vmId, 'detaching', before);
      }
    },
  };
}

function remainingOnHost(meta: Metadata, d: ForceDetachData): number {
  return meta.attachmentsOf([d.volumeId]).filter((a) => a.vmm_host === d.vmmHost && !d.release.includes(a.vm_id)).length;
}

function settle(meta: Metadata, volumeId: string): void {
  meta.setVolumeStatus(volumeId, ['in-use', 'available'], meta.attachmentCount(volumeId) > 0 ? 'in-use' : 'available');
}
