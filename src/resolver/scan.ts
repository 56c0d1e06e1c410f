import { VbsError, errorMessage } from '../core/errors.js';
import type { Record as XmlRecord } from '../soap/xml.js';
import { unavailable, type InstanceResolver, type Placement } from './types.js';

/** Which hosts gave a user a VM of this name (src/db/vm-assignments.ts). */
export interface AssignedVms {
  hostsOf(vmId: string, owner: string): string[];
}

/** What scan needs of the front's delegates: the VMM hosts, and a call to each. */
export interface VmmHosts {
  vmmHostNames(): string[];
  vmmDelegate(host: string): { call(operation: string, input: XmlRecord): Promise<XmlRecord> };
}

/**
 * No cloud at all: asks every VMM delegate for the VMs it runs (ListVms, the
 * adapter's list-vms pattern) and finds the one whose id is the instance id:
 * an xm/xl domain name, a libvirt domain name, a Proxmox VMID. It runs in the
 * front, the only caller the VMM delegates accept.
 *
 * It never guesses: two hosts listing the name is a fault, and so is a host
 * that does not answer (the VM might be there too). A VM is listed whatever
 * its state (xm lists running and paused domains; `virsh list --all` shut-off
 * ones too), so scan reports it as running and the attach itself finds out.
 * Scan knows no owners, so it is the administrators' (as the vmmHost + vmId
 * form is): a user finds only the VMs an administrator assigned to them, and
 * only the hosts that assigned them one are asked, so a user learns nothing
 * of other tenants' VMs (not even that a name is taken on two hosts).
 */
export class ScanResolver implements InstanceResolver {
  readonly name = 'scan';

  constructor(
    private readonly hosts: VmmHosts,
    private readonly assigned: AssignedVms = { hostsOf: () => [] },
  ) {}

  async resolve(instanceId: string, owner: string, admin = false): Promise<Placement | undefined> {
    const configured = this.hosts.vmmHostNames();
    const names = admin ? configured : this.assigned.hostsOf(instanceId, owner).filter((h) => configured.includes(h));
    if (!names.length) return undefined;
    const answers = await Promise.allSettled(names.map(async (host) => ({ host, vms: await this.vmsOf(host) })));
    const claimed = answers.flatMap((a) => (a.status === 'fulfilled' && a.value.vms.includes(instanceId) ? [a.value.host] : []));
    if (claimed.length > 1) {
      throw new VbsError(
        'InvalidParameterValue',
        `Value for parameter instanceId is invalid: the VMM hosts ${claimed.join(' and ')} both run a VM named '${instanceId}'; name the host and VM instead.`,
      );
    }
    const silent = answers.flatMap((a, i) => (a.status === 'rejected' ? [`${names[i]} (${errorMessage(a.reason)})`] : []));
    if (silent.length) throw unavailable(this.name, `the VMM host ${silent.join(', ')} did not list its VMs`);
    if (!claimed.length) return undefined;
    return { vmmHost: claimed[0]!, vmId: instanceId, state: 'listed', running: true, resolver: this.name };
  }

  private async vmsOf(host: string): Promise<string[]> {
    const r = await this.hosts.vmmDelegate(host).call('ListVms', {});
    return ((r.vmId ?? []) as unknown[]).map(String);
  }
}
