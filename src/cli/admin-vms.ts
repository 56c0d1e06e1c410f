import type { Command } from '@commander-js/extra-typings';
import * as validate from '../core/validate.js';
import { VBS_SERVICE } from '../services/vbs.js';
import { invoke, type Invocation } from './context.js';
import { checkLocally } from './errors.js';
import { formatTable } from './format.js';
import type { CliRuntime } from './runtime.js';

/** A VM an administrator gave a user (AssignVm, DescribeVmAssignments), field names as in the WSDL. */
export interface VmAssignment {
  readonly vmmHost: string;
  readonly vmId: string;
  readonly user: string;
  readonly assignTime: Date;
}

export const VM_HEADERS = ['HOST', 'VM', 'USER', 'ASSIGNED'] as const;

/**
 * `vbs admin vm assign|unassign|list`: which user may attach volumes into a
 * VM named by host and VM id (administrators' SOAP operations on the front,
 * as `vbs admin quota`). A VM nobody was given is the administrators' own.
 */
export function registerVmCommands(admin: Command, runtime: CliRuntime): void {
  const vm = admin.command('vm').description("which user's volumes may be attached into a VM (host + VM id); unassigned VMs are the administrators'");
  vm.command('assign')
    .description('let a user attach volumes into the VM (assigning it again moves it)')
    .argument('<host>', 'the VMM host, as the front names it')
    .argument('<vm>', 'the VM id on that host')
    .argument('<user>', "the user's certificate name")
    .action((host, vmId, user, _opts, cmd) => invoke(runtime, cmd, (inv) => assign(inv, host, vmId, user)));
  vm.command('unassign')
    .description('take the VM back (attachments already made stay)')
    .argument('<host>', 'the VMM host')
    .argument('<vm>', 'the VM id on that host')
    .action((host, vmId, _opts, cmd) => invoke(runtime, cmd, (inv) => unassign(inv, host, vmId)));
  vm.command('list')
    .description('every assigned VM, or one user\'s')
    .argument('[user]', "only this user's")
    .action((user, _opts, cmd) => invoke(runtime, cmd, (inv) => list(inv, user)));
}

async function assign(inv: Invocation, rawHost: string, rawVm: string, rawUser: string): Promise<void> {
  const input = {
    vmmHost: checkLocally(() => validate.hostName(rawHost)),
    vmId: checkLocally(() => validate.vmId(rawVm)),
    user: checkLocally(() => validate.userName(rawUser)),
  };
  const out = await inv.connect(VBS_SERVICE).call('AssignVm', input);
  inv.print([out.assignment as unknown as VmAssignment], vmTable);
}

async function unassign(inv: Invocation, rawHost: string, rawVm: string): Promise<void> {
  const input = { vmmHost: checkLocally(() => validate.hostName(rawHost)), vmId: checkLocally(() => validate.vmId(rawVm)) };
  await inv.connect(VBS_SERVICE).call('UnassignVm', input);
  inv.print({ unassigned: input }, () => `${input.vmId} on ${input.vmmHost} is the administrators' again.\n`);
}

async function list(inv: Invocation, rawUser: string | undefined): Promise<void> {
  const user = rawUser === undefined ? undefined : checkLocally(() => validate.userName(rawUser));
  const out = await inv.connect(VBS_SERVICE).call('DescribeVmAssignments', user === undefined ? {} : { user });
  inv.print((out.assignment ?? []) as unknown as VmAssignment[], vmTable);
}

export function vmTable(rows: readonly VmAssignment[]): string {
  if (!rows.length) return 'No VM is assigned: every VM is the administrators\'.\n';
  return formatTable(
    VM_HEADERS,
    rows.map((a) => [a.vmmHost, a.vmId, a.user, new Date(a.assignTime).toISOString()]),
  );
}
