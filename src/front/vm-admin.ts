import * as v from '../core/validate.js';
import type { Db } from '../db/database.js';
import { VmAssignments, type VmAssignment } from '../db/vm-assignments.js';
import type { Record as XmlRecord } from '../soap/xml.js';

/**
 * AssignVm, UnassignVm and DescribeVmAssignments (administrators only; the
 * front checks that): which user's volumes may go into a VM named by VMM host
 * and VM id (issue 17 item 7). A VM nobody was given is the administrators'.
 * Assigning never touches attachments already made: taking a VM back stops
 * new attaches into it, and the administrator detaches what must go.
 */
export class VmAdmin {
  private readonly vms: VmAssignments;

  constructor(
    db: Db,
    /** Throws InvalidHost.NotFound for a host the front does not know. */
    private readonly knownHost: (host: string) => void,
  ) {
    this.vms = new VmAssignments(db);
  }

  assign(input: XmlRecord): XmlRecord {
    const { vmmHost, vmId } = this.vm(input);
    const user = v.userName(input.user);
    this.knownHost(vmmHost);
    this.vms.assign(vmmHost, vmId, user);
    return { assignment: record(this.vms.list(user).find((a) => a.vmmHost === vmmHost && a.vmId === vmId)!) };
  }

  /** Taking back a VM that was not assigned changes nothing (as UnshareSnapshot), so it may be repeated. */
  unassign(input: XmlRecord): XmlRecord {
    const { vmmHost, vmId } = this.vm(input);
    this.vms.unassign(vmmHost, vmId);
    return { return: true };
  }

  describe(input: XmlRecord): XmlRecord {
    const user = input.user === undefined ? undefined : v.userName(input.user);
    return { assignment: this.vms.list(user).map(record) };
  }

  private vm(input: XmlRecord): { vmmHost: string; vmId: string } {
    return { vmmHost: v.hostName(input.vmmHost), vmId: v.vmId(input.vmId) };
  }
}

function record(a: VmAssignment): XmlRecord {
  return { vmmHost: a.vmmHost, vmId: a.vmId, user: a.owner, assignTime: new Date(a.assignedAt) };
}
