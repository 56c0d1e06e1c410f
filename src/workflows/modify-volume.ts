import { errorMessage, VbsError } from '../core/errors.js';
import { GiB } from '../delegates/volume/backend.js';
import { Modifications } from '../db/modifications.js';
import type { Record as XmlRecord } from '../soap/xml.js';
import type { WorkflowDeps } from './deps.js';
import type { Step, WorkflowKind } from './engine.js';
import { generationOf, type Numbered } from './generation.js';

export interface ModifyVolumeData extends Numbered {
  volumeId: string;
  /** The volume_modifications row this request made. */
  modification: number;
  delegate: string;
  originalSize: number;
  targetSize: number;
  /** What each attachment's hypervisor said, filled in by the last step; kept for the record's message. */
  told?: TellResult[];
}

/** One attachment's answer to "the disk grew": resized, automatic, absent, or why it was not told. */
export interface TellResult {
  vmmHost: string;
  vmId: string;
  outcome: string;
  error?: string;
}

/**
 * ModifyVolume: a volume grows. It rolls forward, as EC2's does: once asked,
 * the growth is finished, never turned back (shrinking a volume a VM may
 * already have seen bigger could lose what it wrote there).
 *
 * 1. volume-delegate.GrowVolume: the back end ensures the new size (file:
 *    fallocate; lvm-iscsi: lvextend, then the target serves the new size).
 *    Refused without acting (no space, say): the workflow aborts, the volume
 *    keeps its size and the modification is `failed`. An unknown outcome
 *    (a timeout) stalls it, still `modifying`, and the engine retries the
 *    ensure until it is done. Done: the volume's record holds the new size
 *    and the modification is `optimizing` (the growth is what users see).
 * 2. vmm-delegate.ResizeDisk, for each attachment of the volume at that
 *    moment: its hypervisor is told (virsh blockresize, QMP block_resize,
 *    nothing on Xen). A host that fails or does not answer does not hold the
 *    growth back: as on EC2, the volume is at its new size and the guest sees
 *    it after a rescan (or a detach and attach); the record says which VMs
 *    were not told. The modification is then `completed`.
 */
export function modifyVolumeKind({ delegates, meta, log }: WorkflowDeps): WorkflowKind<ModifyVolumeData> {
  const modifications = new Modifications(meta.db);

  const grow: Step<ModifyVolumeData> = {
    name: 'volume-delegate.GrowVolume',
    run: async (d) => {
      await delegates.volumeDelegate(d.delegate).call('GrowVolume', { volumeId: d.volumeId, sizeGiB: d.targetSize, ...generationOf(d) });
      // The growth is in place: recorded now, in its own transaction, so a
      // crash before the hypervisors are told still shows the new size.
      meta.db.transaction(() => modifications.grown(d.modification)).immediate();
    },
  };

  const tell: Step<ModifyVolumeData> = {
    name: 'vmm-delegate.ResizeDisk',
    run: async (d) => {
      const told: TellResult[] = [];
      for (const a of meta.attachmentsOf([d.volumeId]).filter((x) => x.status === 'attached')) {
        const at = { vmmHost: a.vmm_host, vmId: a.vm_id };
        try {
          const source = a.source ? (JSON.parse(a.source) as XmlRecord) : undefined;
          const r = await delegates.vmmDelegate(a.vmm_host).call('ResizeDisk', {
            volumeId: d.volumeId,
            vmId: a.vm_id,
            device: a.device,
            sizeBytes: d.targetSize * GiB,
            ...(source ? { source } : {}),
            ...generationOf(d),
          });
          told.push({ ...at, outcome: String(r.outcome ?? 'resized') });
        } catch (err) {
          // A newer workflow (a detach) acted on that disk since: it is not there to be told.
          if (err instanceof VbsError && err.code === 'StaleGeneration') {
            told.push({ ...at, outcome: 'absent' });
            continue;
          }
          log.warn('a VM was not told that its disk grew', { volumeId: d.volumeId, ...at, message: errorMessage(err) });
          told.push({ ...at, outcome: 'failed', error: errorMessage(err) });
        }
      }
      return { told };
    },
  };

  return {
    kind: 'ModifyVolume',
    recovery: 'rollforward',
    resourceOf: (d) => d.volumeId,
    steps: () => [grow, tell],
    commit: (m, d) => {
      // A recovered workflow whose grow step was journaled done but whose record was not written yet.
      const mods = new Modifications(m.db);
      mods.grown(d.modification);
      mods.complete(d.modification, untoldMessage(d.told ?? []));
    },
    abort: (m, d, error) => {
      new Modifications(m.db).fail(d.modification, error.message);
    },
  };
}

/** The record's message when some VM was not told (null: every attachment was). */
export function untoldMessage(told: readonly TellResult[]): string | null {
  const failed = told.filter((t) => t.outcome === 'failed');
  if (!failed.length) return null;
  const which = failed.map((t) => `${t.vmId} on ${t.vmmHost} (${t.error ?? 'no answer'})`).join('; ');
  return `The volume has its new size, but these VMs were not told and see it after a rescan or a detach and attach: ${which}`;
}
