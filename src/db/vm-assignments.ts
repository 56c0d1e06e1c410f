import { nowIso } from '../core/clock.js';
import type { Db } from './database.js';

/** One VM an administrator gave a user: they may attach their volumes into it. */
export interface VmAssignment {
  readonly vmmHost: string;
  readonly vmId: string;
  readonly owner: string;
  readonly assignedAt: string;
}

/**
 * Which user a VM named by host + VM id belongs to (the vm_assignments
 * table). A VM nobody was given is the administrators' own. Host names are
 * stored lowercased, as the front names hosts.
 */
export class VmAssignments {
  constructor(private readonly db: Db) {}

  /** Gives the VM to owner (a VM has one owner: assigning it again moves it). */
  assign(vmmHost: string, vmId: string, owner: string): void {
    this.db
      .prepare(
        `INSERT INTO vm_assignments (vmm_host, vm_id, owner, assigned_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (vmm_host, vm_id) DO UPDATE SET owner = excluded.owner, assigned_at = excluded.assigned_at`,
      )
      .run(vmmHost.toLowerCase(), vmId, owner, nowIso());
  }

  /** Takes the VM back; false when it was not assigned. */
  unassign(vmmHost: string, vmId: string): boolean {
    return this.db.prepare('DELETE FROM vm_assignments WHERE vmm_host = ? AND vm_id = ?').run(vmmHost.toLowerCase(), vmId).changes === 1;
  }

  ownerOf(vmmHost: string, vmId: string): string | undefined {
    const row = this.db.prepare('SELECT owner FROM vm_assignments WHERE vmm_host = ? AND vm_id = ?').get(vmmHost.toLowerCase(), vmId) as { owner: string } | undefined;
    return row?.owner;
  }

  /** The hosts where owner was given a VM named vmId (the scan resolver's candidates for a user). */
  hostsOf(vmId: string, owner: string): string[] {
    const rows = this.db.prepare('SELECT vmm_host FROM vm_assignments WHERE owner = ? AND vm_id = ? ORDER BY vmm_host').all(owner, vmId) as { vmm_host: string }[];
    return rows.map((r) => r.vmm_host);
  }

  /** Every assignment, or one user's, by host and VM. */
  list(owner?: string): VmAssignment[] {
    const rows = (
      owner === undefined
        ? this.db.prepare('SELECT * FROM vm_assignments ORDER BY vmm_host, vm_id').all()
        : this.db.prepare('SELECT * FROM vm_assignments WHERE owner = ? ORDER BY vmm_host, vm_id').all(owner)
    ) as { vmm_host: string; vm_id: string; owner: string; assigned_at: string }[];
    return rows.map((r) => ({ vmmHost: r.vmm_host, vmId: r.vm_id, owner: r.owner, assignedAt: r.assigned_at }));
  }
}
