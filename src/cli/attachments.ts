import type { Command } from '@commander-js/extra-typings';
import * as validate from '../core/validate.js';
import { instanceId as checkInstanceId } from '../resolver/instance-id.js';
import { invoke, type Invocation } from './context.js';
import { checkLocally, CliFailure } from './errors.js';
import { attachmentTable } from './format.js';
import type { Attachment } from './records.js';
import type { CliRuntime } from './runtime.js';
import { waitForAttached, waitForDetached, type AttachmentState } from './wait.js';

export function registerAttachmentCommands(program: Command, runtime: CliRuntime): void {
  program
    .command('attach-volume')
    .summary('attach a volume to a cloud instance, or to a VM on a VMM host, as <device>')
    .description(
      'attach a volume as <device>: to a cloud instance (<volume-id> <instance-id> <device>, the EBS form) ' +
        'or to a VM on a VMM host (<volume-id> <vmm-host> <vm-id> <device>)',
    )
    .argument('<volume-id>')
    .argument('<instance-id|vmm-host>', 'the instance id (i-0a1b2c3d, a UUID, a VM name), or the host name of the VMM running the VM')
    .argument('<device|vm-id>', 'with an instance id, the device; else the VM')
    .argument('[device]', 'with a host and a VM: e.g. xvdb, sdf, /dev/vdc')
    .option('--mode <mode>', 'w (read-write, exclusive) or r (read-only, shareable)', 'w')
    .action((volumeId, second, third, fourth, opts, cmd) =>
      invoke(runtime, cmd, (inv) =>
        attachVolume(
          inv,
          fourth === undefined
            ? { volumeId, instanceId: second, device: third, mode: opts.mode }
            : { volumeId, vmmHost: second, vmId: third, device: fourth, mode: opts.mode },
        ),
      ),
    );

  program
    .command('detach-volume')
    .description('detach a volume; with several attachments, --vmm-host and --vm-id, or --instance-id, name the one')
    .argument('<volume-id>')
    .option('--vmm-host <host>', 'VMM host of the attachment to detach')
    .option('--vm-id <vm>', 'VM of the attachment to detach')
    .option('--instance-id <id>', 'instance of the attachment to detach (not with --vmm-host/--vm-id)')
    .option('--force', "for a VMM host that does not answer: keep the host out of the volume's target first, then release the attachment without asking the host (files: administrators only)")
    .action((volumeId, opts, cmd) =>
      invoke(runtime, cmd, (inv) => detachVolume(inv, { volumeId, vmmHost: opts.vmmHost, vmId: opts.vmId, instanceId: opts.instanceId, force: opts.force === true })),
    );
}

/** The EBS form names an instance; the VBS form a host and a VM. */
type AttachArgs = {
  readonly volumeId: string;
  readonly device: string;
  readonly mode: string;
} & ({ readonly instanceId: string } | { readonly vmmHost: string; readonly vmId: string });

export async function attachVolume(inv: Invocation, args: AttachArgs): Promise<void> {
  const where =
    'instanceId' in args
      ? { instanceId: checkLocally(() => checkInstanceId(args.instanceId)) }
      : { vmmHost: checkLocally(() => validate.hostName(args.vmmHost)), vmId: checkLocally(() => validate.vmId(args.vmId)) };
  const input = {
    volumeId: checkLocally(() => validate.volumeId(args.volumeId)),
    ...where,
    device: checkLocally(() => validate.device(args.device)),
    mode: checkLocally(() => validate.attachMode(args.mode)),
  };
  const api = inv.vbs();
  let attachment = await api.attachVolume(input);
  if (inv.options.wait) attachment = settledAttachment(await waitForAttached(api, inv.waitOptions(), attachment), attachment);
  inv.print(attachment, attachmentTable);
}

interface DetachArgs {
  readonly volumeId: string;
  readonly vmmHost?: string;
  readonly vmId?: string;
  readonly instanceId?: string;
  readonly force?: boolean;
}

export async function detachVolume(inv: Invocation, args: DetachArgs): Promise<void> {
  const input = {
    volumeId: checkLocally(() => validate.volumeId(args.volumeId)),
    vmmHost: args.vmmHost === undefined ? undefined : checkLocally(() => validate.hostName(args.vmmHost, 'vmmHost')),
    vmId: args.vmId === undefined ? undefined : checkLocally(() => validate.vmId(args.vmId, 'vmId')),
    instanceId: args.instanceId === undefined ? undefined : checkLocally(() => checkInstanceId(args.instanceId)),
    ...(args.force ? { force: true } : {}),
  };
  const api = inv.vbs();
  const attachment = await api.detachVolume(input);
  if (inv.options.wait) {
    const state = await waitForDetached(api, inv.waitOptions(), attachment);
    if (state.attachment) throw volumeFailed(state);
  }
  inv.print(attachment, attachmentTable);
}

/** The attached attachment; one that vanished or a volume in error means the attach failed (exit 1). */
function settledAttachment(state: AttachmentState, requested: Attachment): Attachment {
  if (state.volume.status === 'error') throw volumeFailed(state);
  if (!state.attachment) {
    throw new CliFailure(
      `${requested.volumeId} was not attached to ${requested.vmId}@${requested.vmmHost}; the volume is ${state.volume.status}` +
        (state.volume.statusMessage ? `: ${state.volume.statusMessage}` : '.'),
      'OperationFailed',
    );
  }
  return state.attachment;
}

function volumeFailed(state: AttachmentState): CliFailure {
  return new CliFailure(`${state.volume.volumeId} is in error: ${state.volume.statusMessage ?? 'no reason given'}`, 'OperationFailed');
}
