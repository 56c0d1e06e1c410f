import { VbsError, errorMessage } from '../core/errors.js';
import type { AttachmentState } from '../core/states.js';
import type { Logger } from '../core/log.js';
import { cancelHostWork, hostWork, volumesWithHostWork } from '../db/host-work.js';
import type { AttachmentRow, Metadata } from '../db/metadata.js';
import type { CallContext } from '../soap/server.js';
import type { Record as XmlRecord } from '../soap/xml.js';
import type { ForceDetachData } from '../workflows/force-detach.js';
import type { Access } from './access.js';
import type { FrontWorkflows } from './workflows.js';
import { attachmentRecord } from './records.js';

/** Which attachment a forced detach names (DetachVolume's vmmHost, vmId, instanceId). */
export interface AttachmentMatch {
  readonly vmmHost?: string;
  readonly vmId?: string;
  readonly instanceId?: string;
}

/**
 * Forced detach and host retirement: releasing attachments whose VMM host
 * does not answer, after keeping that host out of the volume's target
 * (src/workflows/force-detach.ts). Work stuck on the host for that volume (a
 * stalled detach, an undo that keeps failing there) is cancelled in the same
 * transaction that accepts the request: it could only ever finish by the host
 * answering, and the fence makes what it was for true.
 */
export class Fencing {
  constructor(
    private readonly meta: Metadata,
    private readonly wf: FrontWorkflows,
    private readonly access: Access,
  ) {}

  /** DetachVolume with force: the owner or an administrator; storage that cannot fence, administrators only. */
  async forceDetach(volumeId: string, match: AttachmentMatch, ctx: CallContext): Promise<XmlRecord> {
    let released: AttachmentRow | undefined;
    await this.wf.run(this.wf.forceDetach, () => {
      this.access.volume(volumeId, ctx);
      const all = this.meta.attachmentsOf([volumeId]);
      const matching = all.filter(
        (a) => (!match.vmmHost || a.vmm_host === match.vmmHost) && (!match.vmId || a.vm_id === match.vmId) && (!match.instanceId || a.instance_id === match.instanceId),
      );
      if (!all.length) throw new VbsError('IncorrectState', `The volume '${volumeId}' is not attached.`);
      if (!matching.length) throw new VbsError('InvalidAttachment.NotFound', `The volume '${volumeId}' has no such attachment.`);
      if (matching.length > 1) {
        throw new VbsError('MissingParameter', `The volume '${volumeId}' has ${matching.length} attachments; name the one to detach with vmmHost and vmId.`);
      }
      const a = matching[0]!;
      released = { ...a, status: 'detaching' };
      return this.prepare(volumeId, a.vmm_host, [a.vm_id], this.access.isAdmin(ctx), `Cancelled by a forced detach of '${volumeId}' from '${a.vmm_host}'.`);
    });
    return attachmentRecord(released!);
  }

  /**
   * `vbs admin host retire NAME`: every volume the host has an attachment or
   * journaled work on is fenced from it and its attachments there released;
   * the host's stuck work is cancelled. A volume whose fence fails is
   * reported (its release is retried, as any stalled workflow); the others
   * are done.
   */
  async retireHost(host: string, ctx: CallContext, log: Logger): Promise<XmlRecord> {
    if (!this.access.isAdmin(ctx)) throw new VbsError('UnauthorizedOperation', 'Only VBS administrators may retire a host.');
    const attached = this.meta.allAttachments().filter((a) => a.vmm_host === host).map((a) => a.volume_id);
    const volumes = [...new Set([...attached, ...volumesWithHostWork(this.meta.db, host)])].sort();
    const out: XmlRecord[] = [];
    for (const volumeId of volumes) {
      try {
        const d = await this.wf.run(this.wf.forceDetach, () => {
          const onHost = this.meta.attachmentsOf([volumeId]).filter((a) => a.vmm_host === host).map((a) => a.vm_id);
          return this.prepare(volumeId, host, onHost, true, `Cancelled: the VMM host '${host}' was retired.`);
        });
        out.push({ volumeId, released: d.release.length, fenced: d.fence });
      } catch (err) {
        log.warn('retiring a host: a volume is not released yet', { host, volumeId, message: errorMessage(err) });
        out.push({ volumeId, released: 0, fenced: false, message: errorMessage(err) });
      }
    }
    const left = hostWork(this.meta.db, host);
    return { host, volume: out, pending: left.idle.length + left.leftovers.length + left.inFlight };
  }

  /**
   * Inside the workflow's opening transaction: cancels the host's idle work
   * on the volume, marks the attachments to release `detaching`, and decides
   * whether the storage can fence the host (an iSCSI export that named the
   * initiator its target admits).
   */
  private prepare(volumeId: string, host: string, vmIds: readonly string[], admin: boolean, reason: string): ForceDetachData {
    const vol = this.meta.volume(volumeId);
    if (!vol) throw new VbsError('InvalidVolume.NotFound', `The volume '${volumeId}' does not exist.`);
    const work = hostWork(this.meta.db, host, volumeId);
    if (work.inFlight > 0) throw new VbsError('IncorrectState', `An operation on '${volumeId}' is running on '${host}' right now; retry when it ends.`);
    const rows = this.meta.attachmentsOf([volumeId]).filter((a) => a.vmm_host === host);
    const cancelled = [...work.idle.map((w) => w.vmId), ...work.leftovers.map((l) => l.vmId)];
    const release = rows.filter((a) => vmIds.includes(a.vm_id) || cancelled.includes(a.vm_id));
    const sources = [...rows.map((a) => (a.source ? (JSON.parse(a.source) as unknown) : undefined)), ...work.idle.map((w) => w.source), ...work.leftovers.map((l) => l.source)];
    const fence = sources.some(fenceable);
    if (!fence && !admin) {
      throw new VbsError(
        'UnauthorizedOperation',
        `The storage of '${volumeId}' cannot keep one host out (files on a shared file system, or a target without an ACL): a forced detach would leave '${host}' able to write. Only an administrator may force it.`,
      );
    }
    cancelHostWork(this.meta.db, work, reason);
    // Work that was parked had put the volume in error; with it cancelled, the volume is what it was.
    for (const p of [...work.idle, ...work.leftovers]) if (p.parkedStatus) this.meta.clearError(volumeId, p.parkedStatus);
    const previous: Record<string, AttachmentState> = {};
    for (const a of release) {
      previous[a.vm_id] = a.status;
      this.meta.setAttachmentStatus(volumeId, host, a.vm_id, a.status, 'detaching');
    }
    const first = release[0];
    return {
      volumeId,
      vmmHost: host,
      vmId: first?.vm_id ?? '-',
      device: first?.device ?? '-',
      mode: first?.mode ?? 'r',
      delegate: vol.delegate,
      fence,
      release: release.map((a) => a.vm_id),
      previous,
    };
  }
}

/** An export the target fences: iSCSI, naming the initiator its ACL admits for the host. */
function fenceable(source: unknown): boolean {
  const s = source as { kind?: unknown; initiator?: unknown } | undefined;
  return s?.kind === 'iscsi' && typeof s.initiator === 'string';
}
