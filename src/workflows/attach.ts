import type { AttachMode } from '../core/states.js';
import type { Metadata } from '../db/metadata.js';
import type { Record as XmlRecord } from '../soap/xml.js';
import type { WorkflowDeps } from './deps.js';
import type { Step, WorkflowKind } from './engine.js';

export interface AttachmentData {
  volumeId: string;
  vmmHost: string;
  vmId: string;
  device: string;
  mode: AttachMode;
  delegate: string;
  /** What the volume delegate exported; filled in by the export step. */
  source?: XmlRecord;
}

/**
 * Exports and iSCSI sessions are per volume and VMM host: read-only
 * attachments of one volume to several VMs of a host share them, so only the
 * last one there withdraws them.
 */
function othersOnHost(meta: Metadata, d: AttachmentData): boolean {
  const row = meta.db
    .prepare('SELECT count(*) AS n FROM attachments WHERE volume_id = ? AND vmm_host = ? AND vm_id <> ?')
    .get(d.volumeId, d.vmmHost, d.vmId) as { n: number };
  return row.n > 0;
}

/** File sources on a shared file system need no connection; iSCSI ones do. */
const isIscsi = (d: AttachmentData): boolean => d.source?.kind === 'iscsi';

type AttachStep = Step<AttachmentData>;

/** The four steps of the paper's attach, each with its undo; detach runs their opposites. */
function stepsOf({ meta, delegates, hostLocks }: WorkflowDeps) {
  // An attachment's row exists before its first step runs, so a detach that
  // decides "nobody else here" under this lock can never withdraw an export
  // or session from under an attach that is already using it.
  const locked = <T>(d: AttachmentData, section: () => Promise<T>) => hostLocks.run(`${d.volumeId}@${d.vmmHost}`, section);
  const volume = (d: AttachmentData) => delegates.volumeDelegate(d.delegate);
  const vmm = (d: AttachmentData) => delegates.vmmDelegate(d.vmmHost);
  const target = (d: AttachmentData) => ({ volumeId: d.volumeId, source: d.source });

  const exportVolume = (d: AttachmentData) =>
    locked(d, async () => {
      const r = await volume(d).call('ExportVolume', { volumeId: d.volumeId, vmmHost: d.vmmHost });
      return { source: r.export as XmlRecord };
    });
  const unexportVolume = (d: AttachmentData) =>
    locked(d, async () => {
      if (othersOnHost(meta, d)) return;
      await volume(d).call('UnexportVolume', { volumeId: d.volumeId, vmmHost: d.vmmHost });
    });
  const discover = (d: AttachmentData) =>
    locked(d, async () => {
      if (isIscsi(d)) await vmm(d).call('DiscoverTarget', target(d));
    });
  const login = (d: AttachmentData) =>
    locked(d, async () => {
      if (isIscsi(d)) await vmm(d).call('LoginTarget', target(d));
    });
  // Logging out also forgets the discovered node, so it undoes both.
  const logout = (d: AttachmentData) =>
    locked(d, async () => {
      if (isIscsi(d) && !othersOnHost(meta, d)) await vmm(d).call('LogoutTarget', target(d));
    });
  const attachDisk = async (d: AttachmentData) => {
    await vmm(d).call('AttachDisk', { volumeId: d.volumeId, vmId: d.vmId, device: d.device, mode: d.mode, source: d.source });
  };
  const detachDisk = async (d: AttachmentData) => {
    await vmm(d).call('DetachDisk', { volumeId: d.volumeId, vmId: d.vmId, device: d.device, source: d.source });
  };

  return {
    attach: [
      { name: 'volume-delegate.ExportVolume', run: exportVolume, undo: unexportVolume },
      { name: 'vmm-delegate.DiscoverTarget', run: discover, undo: logout },
      { name: 'vmm-delegate.LoginTarget', run: login, undo: logout },
      { name: 'vmm-delegate.AttachDisk', run: attachDisk, undo: detachDisk },
    ] satisfies AttachStep[],
    detach: [
      { name: 'vmm-delegate.DetachDisk', run: detachDisk, undo: attachDisk },
      { name: 'vmm-delegate.LogoutTarget', run: logout, undo: async (d) => (await discover(d), await login(d)) },
      { name: 'volume-delegate.UnexportVolume', run: unexportVolume, undo: async (d) => void (await exportVolume(d)) },
    ] satisfies AttachStep[],
  };
}

function settleVolumeStatus(meta: Metadata, volumeId: string): void {
  const n = (meta.db.prepare('SELECT count(*) AS n FROM attachments WHERE volume_id = ?').get(volumeId) as { n: number }).n;
  meta.setVolumeStatus(volumeId, ['in-use', 'available'], n > 0 ? 'in-use' : 'available');
}

/**
 * Attach volume, the paper's four steps: export the volume to the VMM host;
 * have that host discover the target and log in to it (iSCSI only); attach
 * the device to the VM. A failure undoes the completed steps in reverse; a
 * crash mid-way is rolled back on restart.
 */
export function attachKind(deps: WorkflowDeps): WorkflowKind<AttachmentData> {
  const steps = stepsOf(deps).attach;
  return {
    kind: 'AttachVolume',
    recovery: 'rollback',
    resourceOf: (d) => d.volumeId,
    steps: () => steps,
    commit: (m, d) => {
      m.setAttachmentStatus(d.volumeId, d.vmmHost, d.vmId, 'attaching', 'attached');
      m.setAttachmentSource(d.volumeId, d.vmmHost, d.vmId, d.source ?? null);
    },
    abort: (m, d) => {
      m.deleteAttachment(d.volumeId, d.vmmHost, d.vmId);
      settleVolumeStatus(m, d.volumeId);
    },
  };
}

/** Detach volume: the reverse (detach the disk, log out, unexport), each step undone by its opposite. */
export function detachKind(deps: WorkflowDeps): WorkflowKind<AttachmentData> {
  const steps = stepsOf(deps).detach;
  return {
    kind: 'DetachVolume',
    recovery: 'rollback',
    resourceOf: (d) => d.volumeId,
    steps: () => steps,
    commit: (m, d) => {
      m.deleteAttachment(d.volumeId, d.vmmHost, d.vmId);
      settleVolumeStatus(m, d.volumeId);
    },
    abort: (m, d) => {
      m.setAttachmentStatus(d.volumeId, d.vmmHost, d.vmId, 'detaching', 'attached');
    },
  };
}
