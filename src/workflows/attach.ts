import type { AttachMode } from '../core/states.js';
import type { Metadata } from '../db/metadata.js';
import type { Record as XmlRecord } from '../soap/xml.js';
import type { WorkflowDeps } from './deps.js';
import type { WorkflowKind } from './engine.js';

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

/** Export and unexport are per volume and VMM host: shared by read-only attachments there. */
function othersOnHost(meta: Metadata, d: AttachmentData): boolean {
  const row = meta.db
    .prepare('SELECT count(*) AS n FROM attachments WHERE volume_id = ? AND vmm_host = ? AND vm_id <> ?')
    .get(d.volumeId, d.vmmHost, d.vmId) as { n: number };
  return row.n > 0;
}

function exportStep({ meta, delegates }: WorkflowDeps, d: AttachmentData) {
  return {
    name: 'volume-delegate.ExportVolume',
    run: async () => {
      const r = await delegates.volumeDelegate(d.delegate).call('ExportVolume', { volumeId: d.volumeId, vmmHost: d.vmmHost });
      return { source: r.export as XmlRecord };
    },
    undo: async () => {
      if (othersOnHost(meta, d)) return;
      await delegates.volumeDelegate(d.delegate).call('UnexportVolume', { volumeId: d.volumeId, vmmHost: d.vmmHost });
    },
  };
}

function vmmAttach({ delegates }: WorkflowDeps, d: AttachmentData) {
  return () =>
    delegates
      .vmmDelegate(d.vmmHost)
      .call('AttachDisk', { volumeId: d.volumeId, vmId: d.vmId, device: d.device, mode: d.mode, source: d.source })
      .then(() => undefined);
}

function vmmDetach({ delegates }: WorkflowDeps, d: AttachmentData) {
  return () =>
    delegates
      .vmmDelegate(d.vmmHost)
      .call('DetachDisk', { volumeId: d.volumeId, vmId: d.vmId, device: d.device, source: d.source })
      .then(() => undefined);
}

function settleVolumeStatus(meta: Metadata, volumeId: string): void {
  const n = (meta.db.prepare('SELECT count(*) AS n FROM attachments WHERE volume_id = ?').get(volumeId) as { n: number }).n;
  meta.setVolumeStatus(volumeId, ['in-use', 'available'], n > 0 ? 'in-use' : 'available');
}

/**
 * Attach volume, the paper's steps: export the volume to the VMM host, then
 * have that host's delegate connect it and attach it to the VM. A failure
 * undoes the export; a crash mid-way is rolled back on restart.
 */
export function attachKind(deps: WorkflowDeps): WorkflowKind<AttachmentData> {
  return {
    kind: 'AttachVolume',
    recovery: 'rollback',
    resourceOf: (d) => d.volumeId,
    steps: (d) => [exportStep(deps, d), { name: 'vmm-delegate.AttachDisk', run: vmmAttach(deps, d), undo: vmmDetach(deps, d) }],
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

/** Detach volume: the reverse, each step undone by its opposite on failure. */
export function detachKind(deps: WorkflowDeps): WorkflowKind<AttachmentData> {
  const exp = (d: AttachmentData) => exportStep(deps, d);
  return {
    kind: 'DetachVolume',
    recovery: 'rollback',
    resourceOf: (d) => d.volumeId,
    steps: (d) => [
      { name: 'vmm-delegate.DetachDisk', run: vmmDetach(deps, d), undo: vmmAttach(deps, d) },
      {
        name: 'volume-delegate.UnexportVolume',
        run: async () => {
          if (!othersOnHost(deps.meta, d)) await exp(d).undo();
        },
        undo: async () => {
          await exp(d).run();
        },
      },
    ],
    commit: (m, d) => {
      m.deleteAttachment(d.volumeId, d.vmmHost, d.vmId);
      settleVolumeStatus(m, d.volumeId);
    },
    abort: (m, d) => {
      m.setAttachmentStatus(d.volumeId, d.vmmHost, d.vmId, 'detaching', 'attached');
    },
  };
}
