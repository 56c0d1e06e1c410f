import { VbsError } from '../core/errors.js';
import type { Metadata, OwnerScope, SnapshotRow, VolumeRow } from '../db/metadata.js';
import type { SnapshotShares } from '../db/shares.js';
import { VmAssignments } from '../db/vm-assignments.js';
import type { CallContext } from '../soap/server.js';

/** The one definition of an administrator: a certificate with the administrator purpose, or a name in the front's `admins`. */
export type AdminTest = (caller: string, certificateAdmin: boolean) => boolean;

export function administrators(admins: readonly string[]): AdminTest {
  const names = new Set(admins);
  return (caller, certificateAdmin) => certificateAdmin || names.has(caller);
}

/**
 * Who may see and do what on the front (issue 8).
 *
 * - A user sees and acts on their own volumes and snapshots only. Someone
 *   else's id is reported exactly as an unknown one (`…NotFound`), so ids
 *   cannot be probed.
 * - A snapshot shared with a user (ShareSnapshot) is visible to them and may
 *   be the source of their volumes; deleting or sharing it is refused with
 *   UnauthorizedOperation (they know it exists, so "not found" would be a lie).
 * - An administrator (a certificate with the VBS administrator purpose, or a
 *   name in the front's `admins`) sees everything and acts on anyone's
 *   resources; what they act on keeps its owner, and the audit log names the
 *   owner they acted for. What an administrator creates is their own: there
 *   is no creating on another user's behalf.
 * - A user attaches only into their own instances: those a cloud resolver
 *   says are theirs, and VMs an administrator assigned to them. The host + VM
 *   form and the scan resolver reach anything only for administrators.
 */
export class Access {
  private readonly vms: VmAssignments;

  constructor(
    private readonly meta: Metadata,
    private readonly shares: SnapshotShares,
    private readonly isAdministrator: AdminTest,
    /** Told when an administrator acts on another user's resource (the audit log's onBehalfOf). */
    private readonly actingFor: (ctx: CallContext, owner: string) => void = () => {},
  ) {
    this.vms = new VmAssignments(meta.db);
  }

  isAdmin(ctx: CallContext): boolean {
    return this.isAdministrator(ctx.caller, ctx.admin);
  }

  /** Whose records a describe returns: an administrator's scope is everyone, a user's is theirs (and what is shared with them). */
  describeScope(ctx: CallContext): OwnerScope {
    return this.isAdmin(ctx) ? { kind: 'all' } : { kind: 'owner', owner: ctx.caller };
  }

  /** A volume the caller may act on: theirs, or anyone's for an administrator. */
  volume(id: string, ctx: CallContext): VolumeRow {
    const vol = this.meta.volume(id);
    if (!vol || !this.mayActOn(vol.owner, ctx)) throw new VbsError('InvalidVolume.NotFound', `The volume '${id}' does not exist.`);
    return vol;
  }

  /** A snapshot the caller may create volumes from: theirs, one shared with them, or anyone's for an administrator. */
  snapshotToUse(id: string, ctx: CallContext): SnapshotRow {
    const snap = this.meta.snapshot(id);
    if (snap && snap.owner !== ctx.caller && !this.isAdmin(ctx) && this.shares.isSharedWith(id, ctx.caller)) return snap;
    if (!snap || !this.mayActOn(snap.owner, ctx)) throw notFound(id);
    return snap;
  }

  /** A snapshot the caller may delete or share: theirs, or anyone's for an administrator. */
  snapshotToManage(id: string, ctx: CallContext): SnapshotRow {
    const snap = this.meta.snapshot(id);
    if (snap && this.mayActOn(snap.owner, ctx)) return snap;
    if (snap && this.shares.isSharedWith(id, ctx.caller)) {
      throw new VbsError('UnauthorizedOperation', `The snapshot '${id}' is shared with you; only its owner may delete or share it.`);
    }
    throw notFound(id);
  }

  /**
   * A VM named by host + VM id that the caller may attach into (issue 17 item
   * 7): an administrator, any; a user, only one an administrator assigned to
   * them (`vbs admin vm assign`). Anything else, whether it is another
   * tenant's, unassigned, not there or on an unknown host, gets the one
   * answer an unknown instance gets, so nothing about other tenants' VMs
   * leaks.
   */
  vm(vmmHost: string, vmId: string, ctx: CallContext): void {
    if (this.isAdmin(ctx) || this.vms.ownerOf(vmmHost, vmId) === ctx.caller) return;
    throw new VbsError('InvalidInstanceID.NotFound', `The VM '${vmId}' on '${vmmHost}' does not exist.`);
  }

  private mayActOn(owner: string, ctx: CallContext): boolean {
    if (owner === ctx.caller) return true;
    if (!this.isAdmin(ctx)) return false;
    this.actingFor(ctx, owner);
    return true;
  }
}

function notFound(id: string): VbsError {
  return new VbsError('InvalidSnapshot.NotFound', `The snapshot '${id}' does not exist.`);
}
