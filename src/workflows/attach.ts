import { newChapSecret } from '../core/chap.js';
import type { AttachMode } from '../core/states.js';
import type { Metadata } from '../db/metadata.js';
import type { Record as XmlRecord } from '../soap/xml.js';
import { hostLockKey, type WorkflowDeps } from './deps.js';
import type { Step, WorkflowKind } from './engine.js';
import { generationOf, unlessSuperseded, type Numbered } from './generation.js';

export interface AttachmentData extends Numbered {
  volumeId: string;
  vmmHost: string;
  vmId: string;
  device: string;
  mode: AttachMode;
  delegate: string;
  /** What the volume delegate exported; filled in by the export step. */
  source?: XmlRecord;
  /** Set while an attach's DetachDisk undo has not succeeded: the VM may still have the disk. */
  diskMayRemain?: boolean;
  /** Set once this workflow logged the host out of the volume's session (or found it out). */
  loggedOut?: boolean;
}

/**
 * Exports and iSCSI sessions are per volume and VMM host: read-only
 * attachments of one volume to several VMs of a host share them, so only the
 * last one there withdraws them.
 */
const othersOnHost = (meta: Metadata, d: AttachmentData): boolean => meta.othersOnHost(d.volumeId, d.vmmHost, d.vmId) > 0;

/**
 * File sources on a shared file system need no connection; iSCSI ones do
 * (discover, log in), and so do rbd ones: the host checks it can open the
 * image, and keeps the export's key where its hypervisor reads it.
 */
const needsConnection = (source: XmlRecord | undefined): boolean => source?.kind === 'iscsi' || source?.kind === 'rbd';

type AttachStep = Step<AttachmentData>;

/**
 * The four steps of the paper's attach and the three of detach. Each is an
 * ensure (exported, logged in, attached; detached, logged out, unexported):
 * the delegates look at the host first and do only what is missing, so any of
 * them can be run again, and an attach's undo is the matching detach step.
 */
function stepsOf({ meta, delegates, hostLocks, log }: WorkflowDeps) {
  // An attachment's row exists before its first step runs, so a detach that
  // decides "nobody else here" under this lock can never withdraw an export
  // or session from under an attach that is already using it.
  const locked = <T>(d: AttachmentData, section: () => Promise<T>) => hostLocks.run(hostLockKey(d.volumeId, d.vmmHost), section);
  const volume = (d: AttachmentData) => delegates.volumeDelegate(d.delegate);
  const vmm = (d: AttachmentData) => delegates.vmmDelegate(d.vmmHost);
  const target = (d: AttachmentData) => ({ volumeId: d.volumeId, source: d.source, ...generationOf(d) });
  // The host has no session once a logout succeeded; one refused as stale leaves the flag to the newer workflow.
  const loggedOutOf = async (d: AttachmentData, logoutCall: () => Promise<unknown>) => {
    await logoutCall();
    meta.forgetSession(d.volumeId, d.vmmHost);
  };
  // A withdrawal a delegate refuses as stale (a newer workflow set it up again) is done, not retried.
  const withdraw = (what: string, d: AttachmentData, call: () => Promise<unknown>) => unlessSuperseded(log, what, d, call);

  const exportVolume = (d: AttachmentData) =>
    locked(d, async () => {
      // A fresh CHAP secret is proposed; an export already in place for this host keeps its own,
      // and the answer names the one in use, which only this host's VMM delegate is given.
      const r = await volume(d).call('ExportVolume', { volumeId: d.volumeId, vmmHost: d.vmmHost, chapSecret: newChapSecret(), ...generationOf(d) });
      const source = r.export as XmlRecord;
      meta.recordHostExport(d.volumeId, d.vmmHost, source);
      return { source };
    });
  // The last attachment to leave the host withdraws everything there. An
  // earlier leaver may have kept the session for an attach on its way, which
  // then failed before it logged in (and may not even know the export, its
  // ExportVolume's outcome unknown): the session is logged out here first,
  // with the export as recorded, or the target could never be removed.
  const unexportVolume = (d: AttachmentData) =>
    locked(d, async () => {
      if (othersOnHost(meta, d)) return;
      const source = d.source ?? (meta.hostExport(d.volumeId, d.vmmHost) as XmlRecord | undefined);
      if (needsConnection(source) && !d.loggedOut && meta.sessionMayExist(d.volumeId, d.vmmHost)) {
        await withdraw('LogoutTarget', d, () => loggedOutOf(d, () => vmm(d).call('LogoutTarget', { volumeId: d.volumeId, source, ...generationOf(d) })));
      }
      await withdraw('UnexportVolume', d, () => volume(d).call('UnexportVolume', { volumeId: d.volumeId, vmmHost: d.vmmHost, ...generationOf(d) }));
      meta.forgetHostExport(d.volumeId, d.vmmHost);
    });
  const discover = (d: AttachmentData) =>
    locked(d, async () => {
      if (needsConnection(d.source)) await vmm(d).call('DiscoverTarget', target(d));
    });
  const login = (d: AttachmentData) =>
    locked(d, async () => {
      if (!needsConnection(d.source)) return;
      meta.markSessionMayExist(d.volumeId, d.vmmHost);
      await vmm(d).call('LoginTarget', target(d));
    });
  // Logging out also forgets the discovered node, so it undoes both.
  const logout = (d: AttachmentData) =>
    locked(d, async () => {
      if (needsConnection(d.source) && !othersOnHost(meta, d)) {
        await withdraw('LogoutTarget', d, () => loggedOutOf(d, () => vmm(d).call('LogoutTarget', target(d))));
        d.loggedOut = true;
      }
    });
  const attachDisk = async (d: AttachmentData) => {
    await vmm(d).call('AttachDisk', { volumeId: d.volumeId, vmId: d.vmId, device: d.device, mode: d.mode, source: d.source, ...generationOf(d) });
  };
  const detachDisk = async (d: AttachmentData) => {
    await vmm(d).call('DetachDisk', { volumeId: d.volumeId, vmId: d.vmId, device: d.device, source: d.source, ...generationOf(d) });
    meta.markDiskGone(d.volumeId, d.vmmHost, d.vmId);
  };

  // Compensation order: the session and the export an attach set up are
  // withdrawn only once its disk is gone (logging out from under a disk the VM
  // still has leaves the guest a dead disk). When the DetachDisk undo fails,
  // the data (kept with every leftover) says so, and the later undos first
  // ensure the disk is detached: they fail too, and wait as leftovers.
  // An attach's undo refused as stale: a newer workflow has the disk now (its own attach, or already detached it).
  const undoAttachDisk = async (d: AttachmentData) => {
    d.diskMayRemain = true;
    await withdraw('DetachDisk', d, () => detachDisk(d));
    // Refused as stale counts too: a newer workflow holds the disk now, under its own row.
    meta.markDiskGone(d.volumeId, d.vmmHost, d.vmId);
    d.diskMayRemain = false;
  };
  // Past this point the disk is off the VM: detached by the undo, or never attached (the step failed without acting).
  const afterDiskGone = (undo: (d: AttachmentData) => Promise<void>) => async (d: AttachmentData) => {
    if (d.diskMayRemain) await undoAttachDisk(d);
    else meta.markDiskGone(d.volumeId, d.vmmHost, d.vmId);
    await undo(d);
  };

  return {
    attach: [
      { name: 'volume-delegate.ExportVolume', run: exportVolume, undo: afterDiskGone(unexportVolume) },
      { name: 'vmm-delegate.DiscoverTarget', run: discover, undo: afterDiskGone(logout) },
      { name: 'vmm-delegate.LoginTarget', run: login, undo: afterDiskGone(logout) },
      { name: 'vmm-delegate.AttachDisk', run: attachDisk, undo: undoAttachDisk },
    ] satisfies AttachStep[],
    // No undos: a detach that got part-way is finished, never turned back into
    // an attachment the VM may no longer have.
    detach: [
      { name: 'vmm-delegate.DetachDisk', run: detachDisk },
      { name: 'vmm-delegate.LogoutTarget', run: logout },
      { name: 'volume-delegate.UnexportVolume', run: unexportVolume },
    ] satisfies AttachStep[],
  };
}

function settleVolumeStatus(meta: Metadata, volumeId: string): void {
  meta.setVolumeStatus(volumeId, ['in-use', 'available'], meta.attachmentCount(volumeId) > 0 ? 'in-use' : 'available');
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
    perHost: true,
    resourceOf: (d) => d.volumeId,
    steps: () => steps,
    commit: (m, d) => {
      m.setAttachmentStatus(d.volumeId, d.vmmHost, d.vmId, 'attaching', 'attached');
      m.setAttachmentSource(d.volumeId, d.vmmHost, d.vmId, d.source ?? null);
    },
    abort: (m, d) => {
      // The disk may still be on the VM (its DetachDisk undo failed and waits
      // as a leftover): the attachment stays, `detaching`, so the volume is
      // never shown available, nor attached elsewhere, while a VM may hold it.
      if (d.diskMayRemain) m.setAttachmentStatus(d.volumeId, d.vmmHost, d.vmId, 'attaching', 'detaching');
      else m.deleteAttachment(d.volumeId, d.vmmHost, d.vmId);
      settleVolumeStatus(m, d.volumeId);
    },
    // A leftover undo that saw the disk gone (or never there) releases what abort kept.
    leftoverDone: (m, d) => {
      if (d.diskMayRemain) return;
      if (m.deleteAttachmentIn(d.volumeId, d.vmmHost, d.vmId, 'detaching')) settleVolumeStatus(m, d.volumeId);
    },
  };
}

/**
 * Detach volume: the reverse (detach the disk, log out, unexport). It rolls
 * forward, as EBS's does: only a first step that failed without touching the
 * VM leaves the attachment as it was; past that, a failure leaves it
 * `detaching` and VBS finishes it when the host answers.
 */
export function detachKind(deps: WorkflowDeps): WorkflowKind<AttachmentData> {
  const steps = stepsOf(deps).detach;
  return {
    kind: 'DetachVolume',
    recovery: 'rollforward',
    perHost: true,
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
