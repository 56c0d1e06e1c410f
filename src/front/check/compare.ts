import { bareDevice } from '../../core/validate.js';
import type { AttachmentRow, SnapshotRow, VolumeRow } from '../../db/metadata.js';
import { stepLocation } from '../../workflows/engine.js';
import { attachmentName, type AdoptableRecord, type Suspect } from './findings.js';
import { SNAPSHOT_ID, VOLUME_ID } from '../../core/ids.js';
import { USER_NAME_PATTERN } from '../../core/validate.js';
import type { LeftoverRow, MetaSnapshot, Reports, StoredObject, VmDisk, VolumeDelegateReport } from './observe.js';

/**
 * Compares one metadata snapshot with what the delegates reported and lists
 * every difference, each with the repair that would be safe. Pure: the caller
 * decides which differences are real (seen twice) and what to repair.
 * Resources some workflow is working on are skipped: they are meant to differ.
 */
export function compare(m: MetaSnapshot, r: Reports): Suspect[] {
  const out: Suspect[] = [];
  unreachable(m, r, out);
  for (const v of m.volumes.values()) if (!m.busy.has(v.volume_id)) volumeData(m, v, r.volumeDelegates.get(v.delegate), out);
  for (const s of m.snapshots.values()) if (!m.busy.has(s.snapshot_id)) snapshotData(m, s, r.volumeDelegates.get(s.delegate), out);
  for (const d of r.volumeDelegates.values()) {
    if (d.objects) orphanObjects(m, d.name, d.objects, out);
    if (d.exports?.tracked) exportsOf(m, r, d, out);
  }
  for (const h of r.vmmHosts.values()) if (h.disks) disksOf(m, r, h.name, h.disks, out);
  stuckAttachments(m, r, out);
  volumeStatusVsAttachments(m, r, out);
  leftovers(m, out);
  return out;
}

function unreachable(m: MetaSnapshot, r: Reports, out: Suspect[]): void {
  for (const [role, reports] of [['volume delegate', r.volumeDelegates], ['VMM host', r.vmmHosts]] as const) {
    for (const rep of reports.values()) {
      if (!rep.errors.length) continue;
      out.push({ kind: 'unreachable', resource: rep.name, location: rep.name, identity: `unreachable|${role}|${rep.name}`, detail: `${role} '${rep.name}' did not answer: ${rep.errors.join('; ')}` });
    }
  }
  const unknown = (role: string, names: Iterable<string>, known: ReadonlyMap<string, unknown>) => {
    for (const name of new Set(names)) {
      if (known.has(name)) continue;
      out.push({ kind: 'unreachable', resource: name, location: name, identity: `unreachable|${role}|${name}`, detail: `the metadata names ${role} '${name}', which is not configured` });
    }
  };
  unknown('volume delegate', [...[...m.volumes.values()].map((v) => v.delegate), ...[...m.snapshots.values()].map((s) => s.delegate)], r.volumeDelegates);
  unknown('VMM host', m.attachments.map((a) => a.vmm_host), r.vmmHosts);
}

const stateOf = (objects: ReadonlyMap<string, StoredObject>, id: string) => objects.get(id) ?? { id, state: 'absent' };
const reported = (o: StoredObject) => (o.state === 'error' && o.message ? `error (${o.message})` : o.state);

function volumeData(m: MetaSnapshot, v: VolumeRow, rep: VolumeDelegateReport | undefined, out: Suspect[]): void {
  const id = v.volume_id;
  const at = v.delegate;
  if (!rep?.objects) {
    if (v.status === 'deleting') out.push({ kind: 'stuck-state', resource: id, location: at, detail: `${id} is deleting but no delete is in flight; its volume delegate did not answer, so it stays` });
    return;
  }
  const o = stateOf(rep.objects, id);
  const says = `metadata says ${v.status}; volume delegate '${at}' reports ${reported(o)}`;
  switch (v.status) {
    case 'creating':
      if (o.state === 'creating') return;
      out.push({
        kind: 'state-mismatch',
        resource: id,
        location: at,
        detail: says,
        fix:
          o.state === 'ready'
            ? { type: 'volume-status', id, from: 'creating', to: 'available' }
            : { type: 'volume-status', id, from: 'creating', to: 'error', message: o.state === 'error' ? o.message ?? 'the volume delegate could not create the data' : `its data never appeared on volume delegate '${at}'` },
      });
      return;
    case 'available':
    case 'in-use':
      if (o.state === 'ready') return;
      if (o.state === 'absent') {
        out.push({
          kind: 'missing-data',
          resource: id,
          location: at,
          detail: `${id} is ${v.status} but volume delegate '${at}' has no data for it${v.status === 'in-use' ? ' (attached: not marked error while a VM holds it)' : ''}`,
          fix: v.status === 'available' ? { type: 'volume-status', id, from: 'available', to: 'error', message: `its data is missing on volume delegate '${at}'`, needsNoAttachments: true } : undefined,
        });
        return;
      }
      out.push({
        kind: 'state-mismatch',
        resource: id,
        location: at,
        detail: says,
        fix: v.status === 'available' && o.state === 'error' ? { type: 'volume-status', id, from: 'available', to: 'error', message: o.message ?? `its data is in error on volume delegate '${at}'`, needsNoAttachments: true } : undefined,
      });
      return;
    case 'deleting':
      out.push({
        kind: 'stuck-state',
        resource: id,
        location: at,
        detail: `${id} is deleting but no delete is in flight; volume delegate '${at}' reports ${reported(o)}`,
        fix: o.state === 'absent' ? { type: 'finish-delete', target: 'volume', id } : { type: 'volume-status', id, from: 'deleting', ...restoredVolumeStatus(m, v, o) },
      });
      return;
    case 'error':
      return;
  }
}

/** A delete that never ran, with the data still there: back to what it was before. */
function restoredVolumeStatus(m: MetaSnapshot, v: VolumeRow, o: StoredObject): { to: VolumeRow['status']; message?: string } {
  if (o.state === 'error') return { to: 'error', message: o.message ?? 'the data is in error on its volume delegate' };
  if (m.attachments.some((a) => a.volume_id === v.volume_id)) return { to: 'in-use' };
  const previous = m.statusBeforeDelete.get(v.volume_id);
  return previous === 'error' ? { to: 'error', message: v.status_message ?? 'the delete did not finish' } : { to: 'available' };
}

function snapshotData(m: MetaSnapshot, s: SnapshotRow, rep: VolumeDelegateReport | undefined, out: Suspect[]): void {
  const id = s.snapshot_id;
  const at = s.delegate;
  if (!rep?.objects) {
    if (s.status === 'deleting') out.push({ kind: 'stuck-state', resource: id, location: at, detail: `${id} is deleting but no delete is in flight; its volume delegate did not answer, so it stays` });
    return;
  }
  const o = stateOf(rep.objects, id);
  const says = `metadata says ${s.status}; volume delegate '${at}' reports ${reported(o)}`;
  switch (s.status) {
    case 'pending':
      if (o.state === 'creating') return;
      out.push({
        kind: 'state-mismatch',
        resource: id,
        location: at,
        detail: says,
        fix:
          o.state === 'ready'
            ? { type: 'snapshot-status', id, from: 'pending', to: 'completed' }
            : { type: 'snapshot-status', id, from: 'pending', to: 'error', message: o.state === 'error' ? o.message ?? 'the volume delegate could not copy the data' : `its data never appeared on volume delegate '${at}'` },
      });
      return;
    case 'completed':
      if (o.state === 'ready') return;
      out.push({
        kind: o.state === 'absent' ? 'missing-data' : 'state-mismatch',
        resource: id,
        location: at,
        detail: o.state === 'absent' ? `${id} is completed but volume delegate '${at}' has no data for it` : says,
        fix:
          o.state === 'absent' || o.state === 'error'
            ? { type: 'snapshot-status', id, from: 'completed', to: 'error', message: o.state === 'error' && o.message ? o.message : `its data is missing on volume delegate '${at}'` }
            : undefined,
      });
      return;
    case 'deleting': {
      const previous = m.statusBeforeDelete.get(id);
      out.push({
        kind: 'stuck-state',
        resource: id,
        location: at,
        detail: `${id} is deleting but no delete is in flight; volume delegate '${at}' reports ${reported(o)}`,
        fix:
          o.state === 'absent'
            ? { type: 'finish-delete', target: 'snapshot', id }
            : o.state === 'ready' && previous !== 'error'
              ? { type: 'snapshot-status', id, from: 'deleting', to: 'completed' }
              : { type: 'snapshot-status', id, from: 'deleting', to: 'error', message: o.message ?? s.status_message ?? 'the delete did not finish' },
      });
      return;
    }
    case 'error':
      return;
  }
}

function orphanObjects(m: MetaSnapshot, at: string, objects: ReadonlyMap<string, StoredObject>, out: Suspect[]): void {
  for (const o of objects.values()) {
    if (m.busy.has(o.id)) continue;
    const row = m.volumes.get(o.id) ?? m.snapshots.get(o.id);
    if (row?.delegate === at) continue;
    const record = !row && !m.issued(o.id) ? adoptable(o) : undefined;
    const where = row ? `the metadata places it on '${row.delegate}'` : 'no volume or snapshot owns it';
    const recorded = record ? `; its record names owner '${record.owner}', ${record.sizeGiB} GiB${lineage(o.id, record)}, made ${record.createdAt}: --repair adopts it` : '';
    const why = !row && m.issued(o.id) ? ' (the metadata issued its id and deleted it since: not adopted)' : '';
    out.push({
      kind: 'orphan-object',
      resource: o.id,
      location: at,
      detail: `volume delegate '${at}' holds ${o.id} (${reported(o)}) but ${where}${why}${recorded}; ${record ? '' : 'reported only, '}never deleted`,
      fix: record ? { type: 'adopt-object', delegate: at, id: o.id, record } : undefined,
    });
  }
}

const lineage = (id: string, r: AdoptableRecord) =>
  id.startsWith('snap-') ? (r.volumeId ? `, copied from ${r.volumeId}` : ', with no source volume') : r.snapshotId ? `, created from ${r.snapshotId}` : '';

/**
 * The record of whole data, checked again here (it becomes a row): an owner
 * and a size, ids of the right kinds. Anything less is reported, not adopted.
 */
function adoptable(o: StoredObject): AdoptableRecord | undefined {
  const r = o.record;
  if (o.state !== 'ready' || !r || typeof r.owner !== 'string' || !USER_NAME_PATTERN.test(r.owner) || typeof r.createdAt !== 'string') return undefined;
  const sizeGiB = r.sizeGiB ?? (o.sizeBytes ? Math.ceil(o.sizeBytes / 1024 ** 3) : undefined);
  if (!sizeGiB || !Number.isInteger(sizeGiB) || sizeGiB <= 0) return undefined;
  const isVolume = VOLUME_ID.test(o.id);
  if (r.snapshotId !== undefined && (!isVolume || !SNAPSHOT_ID.test(r.snapshotId))) return undefined;
  if (r.volumeId !== undefined && (isVolume || !VOLUME_ID.test(r.volumeId))) return undefined;
  return {
    owner: r.owner,
    sizeGiB,
    createdAt: r.createdAt,
    ...(r.snapshotId ? { snapshotId: r.snapshotId } : {}),
    ...(r.volumeId ? { volumeId: r.volumeId } : {}),
    ...(r.zone ? { zone: r.zone } : {}),
  };
}

/** A volume the check will adopt (an orphan of some delegate with a record), for the disks that hold it. */
function adoptableVolume(m: MetaSnapshot, r: Reports, volumeId: string): boolean {
  if (m.issued(volumeId)) return false;
  return [...r.volumeDelegates.values()].some((d) => {
    const o = d.objects?.get(volumeId);
    return o !== undefined && adoptable(o) !== undefined;
  });
}

function exportsOf(m: MetaSnapshot, r: Reports, d: VolumeDelegateReport, out: Suspect[]): void {
  const entries = d.exports!.entries;
  const sameHost = (entryHost: string | undefined, host: string) => entryHost === undefined || entryHost.toLowerCase() === host;
  for (const e of entries) {
    if (m.busy.has(e.volumeId)) continue;
    const owned = m.volumes.get(e.volumeId)?.delegate === d.name;
    if (owned && m.attachments.some((a) => a.volume_id === e.volumeId && sameHost(e.vmmHost, a.vmm_host))) continue;
    const host = e.vmmHost?.toLowerCase();
    const what =
      e.kind === 'rbd'
        ? `${e.volumeId} is open on the Ceph cluster of volume delegate '${d.name}' (rbd status: ${e.watchers ?? 'some'} watcher${e.watchers === 1 ? '' : 's'})`
        : `volume delegate '${d.name}' exports ${e.volumeId}${host ? ` to '${host}'` : ''}${e.iqn ? ` as ${e.iqn}` : ''}`;
    const why = owned ? 'no attachment needs it' : m.volumes.has(e.volumeId) ? 'the volume lives on another delegate' : 'VBS has no such volume';
    const users = host ? r.vmmHosts.get(host)?.disks?.filter((x) => x.volumeId === e.volumeId) : undefined;
    let note = '';
    if (!host) note = e.kind === 'rbd' ? '; not closed: a watcher names an address, not a host (a client that crashed goes after 30 s; else `ceph osd blocklist` it)' : '; not withdrawn: the export names no host';
    else if (!users) note = `; not withdrawn: cannot tell whether a VM on '${host}' uses it`;
    else if (users.length) note = `; not withdrawn: ${users.map((u) => u.vmId).join(', ')} on '${host}' uses it`;
    out.push({
      kind: 'orphan-export',
      resource: e.volumeId,
      location: d.name,
      identity: `orphan-export|${e.volumeId}|${d.name}|${host ?? ''}|${e.iqn ?? ''}`,
      detail: `${what} but ${why}${note}`,
      fix: host && users && !users.length ? { type: 'unexport', delegate: d.name, volumeId: e.volumeId, vmmHost: host } : undefined,
    });
  }
  for (const a of m.attachments) {
    if (a.status !== 'attached' || m.busy.has(a.volume_id) || m.volumes.get(a.volume_id)?.delegate !== d.name) continue;
    if (entries.some((e) => e.volumeId === a.volume_id && sameHost(e.vmmHost, a.vmm_host))) continue;
    out.push({
      kind: 'missing-export',
      resource: attachmentName(a.volume_id, a.vm_id),
      location: d.name,
      detail: `${a.volume_id} is attached to ${a.vm_id} on '${a.vmm_host}' but volume delegate '${d.name}' does not export it there`,
      fix: { type: 'reexport', delegate: d.name, volumeId: a.volume_id, vmmHost: a.vmm_host, vmId: a.vm_id },
    });
  }
}

function disksOf(m: MetaSnapshot, r: Reports, host: string, disks: readonly VmDisk[], out: Suspect[]): void {
  for (const a of m.attachments) {
    if (a.vmm_host !== host || a.status !== 'attached' || m.busy.has(a.volume_id)) continue;
    const disk = disks.find((d) => d.vmId === a.vm_id && d.volumeId === a.volume_id);
    const name = attachmentName(a.volume_id, a.vm_id);
    if (!disk) {
      const occupant = disks.find((d) => d.vmId === a.vm_id && bareDevice(d.device) === bareDevice(a.device));
      // A VM its host does not list holds nothing: the attachment can only be detached.
      const vmGone = r.vmmHosts.get(host)?.vms?.includes(a.vm_id) === false;
      out.push({
        kind: 'missing-disk',
        resource: name,
        location: host,
        detail: `${a.volume_id} is attached to ${a.vm_id} as ${a.device} (mode ${a.mode}) but ${vmGone ? `'${host}' has no VM ${a.vm_id}` : `the VM has no such disk${occupant ? `; ${occupant.device} holds ${occupant.volumeId ?? occupant.target}` : ''}`}`,
        fix: vmGone ? { type: 'detach-gone-vm', volumeId: a.volume_id, vmmHost: host, vmId: a.vm_id } : undefined,
      });
      continue;
    }
    if (disk.mode !== a.mode) {
      out.push({ kind: 'mode-mismatch', resource: name, location: host, detail: `${a.volume_id} is attached to ${a.vm_id} in mode ${a.mode} but the VM has it in mode ${disk.mode}` });
    }
    if (bareDevice(disk.device) !== bareDevice(a.device)) {
      out.push({ kind: 'device-mismatch', resource: name, location: host, detail: `${a.volume_id} is attached to ${a.vm_id} as ${a.device} but the VM has it as ${disk.device}` });
    }
  }
  for (const d of disks) {
    if (!d.volumeId || m.busy.has(d.volumeId)) continue;
    if (m.attachments.some((a) => a.volume_id === d.volumeId && a.vmm_host === host && a.vm_id === d.vmId)) continue;
    // A disk of a volume whose record and data are both gone has nothing left
    // to lose: detaching it stops a VM from writing where a new volume may
    // live. Any other stray disk may hold a user's work: reported only.
    const dataGone = !m.volumes.has(d.volumeId) && [...r.volumeDelegates.values()].every((v) => v.objects && !v.objects.has(d.volumeId!));
    const adopt = adoptDisk(m, r, d);
    if (adopt) {
      out.push({
        kind: 'orphan-disk',
        resource: attachmentName(d.volumeId, d.vmId),
        location: host,
        identity: `orphan-disk|${d.volumeId}|${d.vmId}|${host}|${bareDevice(d.device)}`,
        detail: `${d.vmId} on '${host}' has ${d.volumeId} as ${d.device} (mode ${d.mode}) but VBS has no attachment for it; --repair records the attachment the VM holds`,
        fix: { type: 'adopt-attachment', volumeId: d.volumeId, vmmHost: host, vmId: d.vmId, device: d.device, mode: adopt },
      });
      continue;
    }
    out.push({
      kind: 'orphan-disk',
      resource: attachmentName(d.volumeId, d.vmId),
      location: host,
      identity: `orphan-disk|${d.volumeId}|${d.vmId}|${host}|${bareDevice(d.device)}`,
      detail: `${d.vmId} on '${host}' has ${d.volumeId} as ${d.device} (mode ${d.mode}) but VBS has no attachment for it${
        m.volumes.has(d.volumeId) ? '; reported only, never detached' : dataGone ? ' and the volume and its data are gone' : ' (nor such a volume, but its data is still there); reported only, never detached'
      }`,
      fix: dataGone ? { type: 'detach-stray', vmmHost: host, vmId: d.vmId, device: d.device, volumeId: d.volumeId } : undefined,
    });
  }
}

/**
 * Whether the disk a VM holds can be recorded as an attachment, and in which
 * mode. Only for a volume the metadata never knew and adopts in the same
 * repair (made after the backup it was restored from, or a rebuild): what
 * the metadata never knew is taken from the hosts. A disk of a volume it
 * knows is not: that may be a stray writer, reported for an operator (see
 * docs/operators/check-repair.md). The attachment must break no rule among
 * the disks adopted with it: checked again when applied.
 */
function adoptDisk(m: MetaSnapshot, r: Reports, d: VmDisk): 'r' | 'w' | undefined {
  const mode = d.mode === 'r' || d.mode === 'w' ? d.mode : undefined;
  if (!mode || !d.volumeId || m.volumes.has(d.volumeId) || !adoptableVolume(m, r, d.volumeId)) return undefined;
  return mode;
}

function stuckAttachments(m: MetaSnapshot, r: Reports, out: Suspect[]): void {
  for (const a of m.attachments) {
    if (a.status === 'attached' || m.busy.has(a.volume_id)) continue;
    const disks = r.vmmHosts.get(a.vmm_host)?.disks;
    const onVm = disks?.some((d) => d.vmId === a.vm_id && d.volumeId === a.volume_id);
    const delegate = m.volumes.get(a.volume_id)?.delegate;
    out.push({
      kind: 'stuck-state',
      resource: attachmentName(a.volume_id, a.vm_id),
      location: a.vmm_host,
      detail: `the attachment of ${a.volume_id} to ${a.vm_id} is ${a.status} but no workflow is in flight; ${
        disks ? `the VM ${onVm ? 'has' : 'does not have'} the disk` : `VMM host '${a.vmm_host}' did not answer, so it stays`
      }`,
      fix:
        disks && delegate
          ? {
              type: 'settle-attachment',
              volumeId: a.volume_id,
              vmmHost: a.vmm_host,
              vmId: a.vm_id,
              from: a.status,
              onVm: Boolean(onVm),
              hostHoldsVolume: disks.some((d) => d.volumeId === a.volume_id && d.vmId !== a.vm_id),
              delegate,
            }
          : undefined,
    });
  }
}

function volumeStatusVsAttachments(m: MetaSnapshot, r: Reports, out: Suspect[]): void {
  for (const v of m.volumes.values()) {
    if (m.busy.has(v.volume_id) || v.status === 'deleting') continue;
    const n = m.attachments.filter((a: AttachmentRow) => a.volume_id === v.volume_id).length;
    if (v.status === 'in-use' && n === 0) {
      // Available would let another VM attach it read-write: only when no VM anywhere holds it.
      const hosts = [...r.vmmHosts.values()];
      const provenFree = hosts.every((h) => h.disks && !h.disks.some((d) => d.volumeId === v.volume_id));
      out.push({
        kind: 'state-mismatch',
        resource: v.volume_id,
        location: 'metadata',
        detail: `${v.volume_id} is in-use but has no attachment${provenFree ? '' : '; left in-use: not every VMM host could show that no VM holds it'}`,
        fix: provenFree ? { type: 'volume-status', id: v.volume_id, from: 'in-use', to: 'available', needsNoAttachments: true } : undefined,
      });
    } else if (v.status !== 'in-use' && n > 0) {
      out.push({
        kind: 'state-mismatch',
        resource: v.volume_id,
        location: 'metadata',
        detail: `${v.volume_id} is ${v.status} but has ${n} attachment${n > 1 ? 's' : ''}`,
        fix: v.status === 'available' ? { type: 'volume-status', id: v.volume_id, from: 'available', to: 'in-use' } : undefined,
      });
    }
  }
}

/** Unfinished work is reported whatever else is going on: it is what keeps its resource from moving on. */
function leftovers(m: MetaSnapshot, out: Suspect[]): void {
  for (const l of m.leftovers) {
    const what = l.key.startsWith('workflow:') ? `${l.kind} could not finish ${l.step}` : `the undo of ${l.step} (${l.kind}) is still pending`;
    out.push({
      kind: 'leftover',
      resource: l.resourceId,
      location: leftoverLocation(l),
      identity: `leftover|${l.key}`,
      detail: `${what} after ${l.attempts} retr${l.attempts === 1 ? 'y' : 'ies'} (${l.error}); ${l.parked ? 'VBS gave up retrying it: --repair resumes it' : 'VBS keeps retrying it'}`,
    });
  }
}

/** The delegate or VMM host a piece of pending work talks to. */
export function leftoverLocation(l: Pick<LeftoverRow, 'step' | 'data'>): string {
  return stepLocation(l.step, l.data);
}
