import { newChapSecret } from '../../core/chap.js';
import { writeTx } from '../../db/database.js';
import { adoptSnapshot, adoptVolume, neverIssued } from '../../db/adopt.js';
import { currentGeneration } from '../../db/generations.js';
import { workflowRunningOn } from '../../db/journal.js';
import type { Record as XmlRecord } from '../../soap/xml.js';
import { hostLockKey } from '../../workflows/deps.js';
import type { Fix } from './findings.js';
import type { Outcome, RepairDeps } from './repair.js';

type AdoptObject = Extract<Fix, { type: 'adopt-object' }>;
type AdoptAttachment = Extract<Fix, { type: 'adopt-attachment' }>;

/** Imported snapshots have no source volume; the snapshots table still wants one (NAME=images may make it NULL). */
const NO_SOURCE_VOLUME = '';

/**
 * Puts back the row of data the metadata never heard of, from the record its
 * volume delegate kept: only while the id is still unissued (a create racing
 * the check cannot have it: ids are random and new) and nothing holds it.
 * Adopted volumes are `available`; the disks VMs hold are adopted next.
 */
export function adoptObject(f: AdoptObject, deps: RepairDeps): Outcome {
  const { meta } = deps;
  const r = f.record;
  return writeTx(meta.db, () => {
    if (!neverIssued(meta.db, f.id) || workflowRunningOn(meta.db, f.id)) return { done: false, why: 'the metadata has this id now; check again' };
    if (f.id.startsWith('snap-')) {
      adoptSnapshot(meta.db, { snapshotId: f.id, owner: r.owner, volumeId: r.volumeId ?? NO_SOURCE_VOLUME, sizeGiB: r.sizeGiB, delegate: f.delegate, createdAt: r.createdAt });
    } else {
      const zone = r.zone ?? deps.zoneOf?.(f.delegate);
      if (!zone) return { done: false, why: 'no availability zone is known for its volume delegate' };
      adoptVolume(meta.db, { volumeId: f.id, owner: r.owner, sizeGiB: r.sizeGiB, snapshotId: r.snapshotId ?? null, delegate: f.delegate, zone, createdAt: r.createdAt });
    }
    return { done: true };
  });
}

/**
 * Records the attachment of a disk a VM holds. The export is ensured first
 * (idempotent: for a disk in use it is in place) because a later detach needs
 * what it answers. Under the volume's host lock, and in the transaction that
 * inserts it, the rules are checked again: a volume that can take the
 * attachment, no workflow on it, a read-write attachment alone.
 */
export async function adoptAttachment(f: AdoptAttachment, deps: RepairDeps): Promise<Outcome> {
  const { meta } = deps;
  return deps.hostLocks.run(hostLockKey(f.volumeId, f.vmmHost), async () => {
    const volume = meta.volume(f.volumeId);
    if (!volume) return { done: false, why: `VBS has no volume ${f.volumeId} (its data was not adopted)` };
    const allowed = (): string | undefined => {
      const v = meta.volume(f.volumeId);
      if (!v || (v.status !== 'available' && v.status !== 'in-use')) return `the volume is ${v?.status ?? 'gone'}`;
      if (workflowRunningOn(meta.db, f.volumeId)) return 'a request is working on the volume';
      const others = meta.attachmentsOf([f.volumeId]);
      if (others.some((a) => a.vmm_host === f.vmmHost && a.vm_id === f.vmId)) return 'it is recorded now';
      if (f.mode === 'w' ? others.length > 0 : others.some((a) => a.mode === 'w')) return 'the volume has another attachment a read-write one cannot share';
      if (meta.attachmentOnDevice(f.vmmHost, f.vmId, f.device)) return `another attachment holds ${f.device} on ${f.vmId}`;
      return undefined;
    };
    const before = allowed();
    if (before) return { done: false, why: before };
    const exported = await deps.delegates
      .volumeDelegate(volume.delegate)
      .call('ExportVolume', { volumeId: f.volumeId, vmmHost: f.vmmHost, chapSecret: newChapSecret(), generation: currentGeneration(meta.db, f.volumeId) });
    return writeTx(meta.db, () => {
      const now = allowed();
      if (now) return { done: false, why: now };
      meta.insertAttachment({ volume_id: f.volumeId, vmm_host: f.vmmHost, vm_id: f.vmId, device: f.device, mode: f.mode, status: 'attached' });
      meta.setAttachmentSource(f.volumeId, f.vmmHost, f.vmId, exported.export as XmlRecord);
      meta.recordVolumeHost(f.volumeId, f.vmmHost);
      meta.setVolumeStatus(f.volumeId, ['available'], 'in-use');
      return { done: true };
    });
  });
}
