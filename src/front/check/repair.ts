import { newChapSecret } from '../../core/chap.js';
import { VbsError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { writeTx } from '../../db/database.js';
import { currentGeneration } from '../../db/generations.js';
import { workflowRunningOn } from '../../db/journal.js';
import type { Metadata } from '../../db/metadata.js';
import type { KeyedMutex } from '../../core/keyed-mutex.js';
import { hostLockKey } from '../../workflows/deps.js';
import type { Record as XmlRecord } from '../../soap/xml.js';
import type { DelegatePool } from '../delegates.js';
import type { Finding, Fix, Suspect } from './findings.js';
import { adoptAttachment, adoptObject } from './adopt.js';

export interface RepairDeps {
  readonly meta: Metadata;
  readonly delegates: DelegatePool;
  readonly log: Logger;
  /** The workflows' per volume and VMM host locks: an export is withdrawn or restored only while no attach or detach decides about it. */
  readonly hostLocks: KeyedMutex;
  /** Runs DetachVolume's workflow for one attachment (absent: such repairs are not offered here). */
  readonly detach?: DetachAttachment;
  /** The zone of a volume delegate, for an adopted volume whose record names none. */
  readonly zoneOf?: (delegate: string) => string;
}

export type DetachAttachment = (volumeId: string, vmmHost: string, vmId: string, log: Logger) => Promise<void>;

/** What a repair did: done, or why not (a message safe to show). */
export type Outcome = { done: true; note?: string } | { done: false; why: string };

/**
 * Applies a finding's fix, if it has one, and says how it went. Every fix
 * checks again, in the transaction that changes anything, that no workflow
 * took the resource meanwhile and that its status is still the observed one;
 * a request that raced the check wins and the finding stays unrepaired.
 * Nothing here deletes data or detaches a disk.
 */
export async function repair(s: Suspect, deps: RepairDeps): Promise<Finding> {
  const base = { kind: s.kind, resource: s.resource, location: s.location };
  if (!s.fix) return { ...base, detail: s.detail, repaired: false };
  let outcome: Outcome;
  try {
    outcome = await apply(s.fix, deps);
  } catch (err) {
    if (!(err instanceof VbsError)) deps.log.error('consistency repair failed', { fix: s.fix, err });
    outcome = { done: false, why: err instanceof VbsError ? `${err.code}: ${err.message}` : 'an internal error occurred; see the service log' };
  }
  if (outcome.done) deps.log.info('consistency repair', { kind: s.kind, resource: s.resource, fix: s.fix.type });
  const detail = outcome.done ? `${s.detail}; repaired: ${describeFix(s.fix)}${outcome.note ? ` (${outcome.note})` : ''}` : `${s.detail}; not repaired: ${outcome.why}`;
  return { ...base, detail, repaired: outcome.done };
}

function describeFix(f: Fix): string {
  switch (f.type) {
    case 'volume-status':
      return `volume set ${f.to}${f.message ? ` (${f.message})` : ''}`;
    case 'snapshot-status':
      return `snapshot set ${f.to}${f.message ? ` (${f.message})` : ''}`;
    case 'finish-delete':
      return `its data is gone, so the delete was finished`;
    case 'settle-attachment':
      return f.onVm ? 'the disk is on the VM, so the attachment is attached' : 'the disk is not on the VM, so the attachment was removed';
    case 'unexport':
      return `export to '${f.vmmHost}' withdrawn`;
    case 'reexport':
      return `exported to '${f.vmmHost}' again`;
    case 'detach-stray':
      return `detached from ${f.vmId}`;
    case 'detach-gone-vm':
      return `detached: the VM is gone, so it held nothing`;
    case 'adopt-object':
      return `adopted from its record (owner '${f.record.owner}', ${f.record.sizeGiB} GiB)`;
    case 'adopt-attachment':
      return `the attachment is recorded (mode ${f.mode})`;
  }
}

/**
 * A repair acts for what the metadata says now, so its calls carry the
 * resource's latest generation (src/db/generations.ts), read at each call: an
 * attach journaled meanwhile is newer, and the delegate refuses the repair's
 * withdrawal instead of pulling what that attach set up.
 */
const latestGeneration = (deps: RepairDeps, volumeId: string) => ({ generation: currentGeneration(deps.meta.db, volumeId) });

const STALE: Outcome = { done: false, why: 'it changed while the check ran (a request took it); check again' };

const busy = (meta: Metadata, id: string): boolean => workflowRunningOn(meta.db, id);

const attachmentCount = (meta: Metadata, volumeId: string, vmmHost?: string): number => meta.attachmentCount(volumeId, vmmHost);

async function apply(f: Fix, deps: RepairDeps): Promise<Outcome> {
  const { meta } = deps;
  switch (f.type) {
    case 'volume-status':
      return writeTx(meta.db, () => {
        if (busy(meta, f.id) || (f.needsNoAttachments && attachmentCount(meta, f.id) > 0)) return STALE;
        return meta.setVolumeStatus(f.id, [f.from], f.to, f.message ?? null) ? { done: true } : STALE;
      });
    case 'snapshot-status':
      return writeTx(meta.db, () => {
        if (busy(meta, f.id)) return STALE;
        return meta.setSnapshotStatus(f.id, [f.from], f.to, f.message ?? null, f.to === 'completed' ? 100 : undefined) ? { done: true } : STALE;
      });
    case 'finish-delete':
      return writeTx(meta.db, () => {
        if (busy(meta, f.id)) return STALE;
        const row = f.target === 'volume' ? meta.volume(f.id) : meta.snapshot(f.id);
        if (row?.status !== 'deleting' || (f.target === 'volume' && attachmentCount(meta, f.id) > 0)) return STALE;
        if (f.target === 'volume') meta.deleteVolume(f.id);
        else meta.deleteSnapshot(f.id);
        return { done: true };
      });
    case 'settle-attachment':
      return settleAttachment(f, deps);
    case 'unexport':
      return withdrawExport(deps, f.delegate, f.volumeId, f.vmmHost);
    case 'reexport':
      return reexport(f, deps);
    case 'detach-stray':
      return detachStray(f, deps);
    case 'detach-gone-vm':
      // The detach workflow itself: it journals, takes the attachment by
      // compare-and-swap, and logs out and unexports what no one else uses.
      if (!deps.detach) return { done: false, why: 'this front cannot run detaches from a check' };
      await deps.detach(f.volumeId, f.vmmHost, f.vmId, deps.log);
      return { done: true };
    case 'adopt-object':
      return adoptObject(f, deps);
    case 'adopt-attachment':
      return adoptAttachment(f, deps);
  }
}

type StrayFix = Extract<Fix, { type: 'detach-stray' }>;

async function detachStray(f: StrayFix, deps: RepairDeps): Promise<Outcome> {
  if (deps.meta.volume(f.volumeId)) return STALE;
  deps.log.error('a VM held a deleted volume; detaching it', { volumeId: f.volumeId, vmmHost: f.vmmHost, vmId: f.vmId, device: f.device });
  await deps.delegates.vmmDelegate(f.vmmHost).call('DetachDisk', { volumeId: f.volumeId, vmId: f.vmId, device: f.device, ...latestGeneration(deps, f.volumeId) });
  return { done: true };
}

type SettleFix = Extract<Fix, { type: 'settle-attachment' }>;

/** Rolls a stuck attachment to what the VMM host shows: attached if the disk is there, else gone. */
async function settleAttachment(f: SettleFix, deps: RepairDeps): Promise<Outcome> {
  const { meta } = deps;
  const row = () => meta.attachmentsOf([f.volumeId]).find((a) => a.vmm_host === f.vmmHost && a.vm_id === f.vmId);
  if (f.onVm) {
    // A detach needs what was exported; an attach cut short may not have recorded it.
    let source: XmlRecord | undefined;
    if (!row()?.source) {
      const r = await deps.delegates.volumeDelegate(f.delegate).call('ExportVolume', { volumeId: f.volumeId, vmmHost: f.vmmHost, chapSecret: newChapSecret(), ...latestGeneration(deps, f.volumeId) });
      source = r.export as XmlRecord;
    }
    return writeTx(meta.db, () => {
      if (busy(meta, f.volumeId) || !meta.setAttachmentStatus(f.volumeId, f.vmmHost, f.vmId, f.from, 'attached')) return STALE;
      if (source) meta.setAttachmentSource(f.volumeId, f.vmmHost, f.vmId, source);
      meta.setVolumeStatus(f.volumeId, ['available'], 'in-use');
      return { done: true };
    });
  }
  const removed = writeTx(meta.db, () => {
    const a = row();
    if (busy(meta, f.volumeId) || a?.status !== f.from) return undefined;
    meta.deleteAttachment(f.volumeId, f.vmmHost, f.vmId);
    meta.setVolumeStatus(f.volumeId, ['in-use', 'available'], attachmentCount(meta, f.volumeId) > 0 ? 'in-use' : 'available');
    return { source: a.source ? (JSON.parse(a.source) as XmlRecord) : undefined };
  });
  if (!removed) return STALE;
  if (f.hostHoldsVolume) return { done: true, note: 'its connection and export stay: another VM on the host holds the volume' };
  const withdrawn = await disconnect(deps, f, removed.source).catch((err: unknown) => ({
    done: false as const,
    why: err instanceof VbsError ? err.message : 'the call failed',
  }));
  return withdrawn.done ? { done: true } : { done: true, note: `its connection or export was not withdrawn: ${withdrawn.why}` };
}

/** After a removed attachment no disk uses: the host's iSCSI session (if any), then the export. */
function disconnect(deps: RepairDeps, f: SettleFix, source: XmlRecord | undefined): Promise<Outcome> {
  return underHostLock(deps, f.volumeId, f.vmmHost, async () => {
    if (source?.kind === 'iscsi' && attachmentCount(deps.meta, f.volumeId, f.vmmHost) === 0) {
      await deps.delegates.vmmDelegate(f.vmmHost).call('LogoutTarget', { volumeId: f.volumeId, source, ...latestGeneration(deps, f.volumeId) });
    }
    return withdrawExportLocked(deps, f.delegate, f.volumeId, f.vmmHost);
  });
}

/**
 * The attach and detach workflows decide about a volume's export (and
 * session) on a host under its host lock, and an attachment's row exists
 * before its first step: so under the same lock, what the metadata says is
 * what those workflows will act on, and no export step runs between our look
 * and our act.
 */
function underHostLock(deps: RepairDeps, volumeId: string, vmmHost: string, section: () => Promise<Outcome>): Promise<Outcome> {
  return deps.hostLocks.run(hostLockKey(volumeId, vmmHost), section);
}

/** Withdraws an export only while no attachment on that host needs it and no workflow is on the volume. */
function withdrawExport(deps: RepairDeps, delegate: string, volumeId: string, vmmHost: string): Promise<Outcome> {
  return underHostLock(deps, volumeId, vmmHost, () => withdrawExportLocked(deps, delegate, volumeId, vmmHost));
}

/**
 * withdrawExport, for a caller that holds the host lock. The lock is this
 * process's: an attach run by another front on the same metadata is not
 * held by it, so the export is put back if one started meanwhile (it
 * exports first, and may have done so just before we withdrew).
 */
async function withdrawExportLocked(deps: RepairDeps, delegate: string, volumeId: string, vmmHost: string): Promise<Outcome> {
  const { meta } = deps;
  const needed = () => busy(meta, volumeId) || attachmentCount(meta, volumeId, vmmHost) > 0;
  if (needed()) return STALE;
  const d = deps.delegates.volumeDelegate(delegate);
  await d.call('UnexportVolume', { volumeId, vmmHost, ...latestGeneration(deps, volumeId) });
  if (needed()) {
    await d.call('ExportVolume', { volumeId, vmmHost, chapSecret: newChapSecret(), ...latestGeneration(deps, volumeId) });
    return STALE;
  }
  return { done: true };
}

type ReexportFix = Extract<Fix, { type: 'reexport' }>;

/** Records what an export answered on the host's attachments of the volume. */
function recordExport(meta: RepairDeps['meta'], volumeId: string, vmmHost: string, exported: XmlRecord | undefined): void {
  if (!exported) return;
  writeTx(meta.db, () => {
    for (const a of meta.attachmentsOf([volumeId])) if (a.vmm_host === vmmHost && a.source) meta.setAttachmentSource(volumeId, vmmHost, a.vm_id, exported);
  });
}

/** Exports an attached volume again, while it is still attached there and no workflow is on it. */
function reexport(f: ReexportFix, deps: RepairDeps): Promise<Outcome> {
  const { meta } = deps;
  return underHostLock(deps, f.volumeId, f.vmmHost, async () => {
    const stillAttached = !busy(meta, f.volumeId) && meta.attachmentsOf([f.volumeId]).some((a) => a.vmm_host === f.vmmHost && a.vm_id === f.vmId && a.status === 'attached');
    if (!stillAttached) return STALE;
    const r = await deps.delegates.volumeDelegate(f.delegate).call('ExportVolume', { volumeId: f.volumeId, vmmHost: f.vmmHost, chapSecret: newChapSecret(), ...latestGeneration(deps, f.volumeId) });
    // The delegate keeps the export's CHAP secret across a restart of its target daemon; if it had lost
    // it, the answer names a new one, which the host's next login (a later attach or a reconnect) needs.
    recordExport(meta, f.volumeId, f.vmmHost, r.export as XmlRecord);
    // A detach run by another front (not held by this process's lock) may have withdrawn it meanwhile: withdraw ours too.
    if (!busy(meta, f.volumeId) && attachmentCount(meta, f.volumeId, f.vmmHost) === 0) {
      await deps.delegates.volumeDelegate(f.delegate).call('UnexportVolume', { volumeId: f.volumeId, vmmHost: f.vmmHost, ...latestGeneration(deps, f.volumeId) });
      return STALE;
    }
    return { done: true };
  });
}
