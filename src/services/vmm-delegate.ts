import { DISK_SOURCE_FIELDS } from './disk-source.js';
import { bool, long, rec, str, type ServiceDefinition } from '../soap/schema.js';
import { GENERATION } from './generation.js';

/** The VMM Delegate: runs on a hypervisor node and attaches exported volumes to its VMs. */
export const VMM_DELEGATE_SERVICE: ServiceDefinition = {
  name: 'VmmDelegate',
  namespace: 'urn:vbs:2026:vmm-delegate',
  path: '/vmm-delegate',
  doc: 'VBS VMM Delegate: connects exported volumes and attaches them to the VMs of one hypervisor host.',
  types: {
    Source: DISK_SOURCE_FIELDS,
    VmDisk: [
      str('vmId'),
      str('device', { doc: 'the device name in the VM, as AttachDisk takes it' }),
      str('target', { doc: 'the file or host device behind the disk' }),
      str('mode', { doc: 'r or w' }),
      str('volumeId', { optional: true, doc: 'the VBS volume behind target, when it is one' }),
    ],
  },
  operations: {
    DescribeHost: {
      doc: 'The host name and adapter of this delegate.',
      input: [],
      output: [str('hostName'), str('adapter'), str('sourceKinds', { many: true, doc: 'the kinds of source this host can attach: file, iscsi, rbd' })],
    },
    AttachDisk: {
      doc: 'Connects the source and attaches it to the VM as device in mode r or w.',
      input: [str('volumeId'), str('vmId'), str('device'), str('mode'), rec('source', 'Source'), GENERATION],
      output: [bool('return')],
    },
    DiscoverTarget: {
      doc: 'iSCSI sources: discovers the target at its portal (records the node). Idempotent; file sources need nothing.',
      input: [str('volumeId'), rec('source', 'Source'), GENERATION],
      output: [bool('return')],
    },
    LoginTarget: {
      doc: 'iSCSI sources: logs in to the target and returns the local device of its LUN. Idempotent.',
      input: [str('volumeId'), rec('source', 'Source'), GENERATION],
      output: [str('device')],
    },
    LogoutTarget: {
      doc: 'iSCSI sources: logs out of the target and forgets its node record. Idempotent.',
      input: [str('volumeId'), rec('source', 'Source'), GENERATION],
      output: [bool('return')],
    },
    ListVms: {
      doc: 'The VMs of this host, by the ids AttachDisk takes (the instance resolver\'s scan).',
      input: [],
      output: [str('vmId', { many: true })],
    },
    ListDisks: {
      doc: 'The disks attached to the given VMs, or to every VM of this host when none is given.',
      input: [str('vmId', { many: true })],
      output: [rec('disk', 'VmDisk', { many: true })],
    },
    ResizeDisk: {
      doc: "Tells the hypervisor that the volume behind the VM's device grew to sizeBytes (ModifyVolume): libvirt's blockresize, QMP block_resize, or nothing where the hypervisor notices by itself (Xen's blkback). outcome: resized; automatic (the hypervisor picks the size up itself); absent (the VM does not hold the volume's disk there: nothing to tell). Idempotent.",
      input: [str('volumeId'), str('vmId'), str('device'), long('sizeBytes'), rec('source', 'Source'), GENERATION],
      output: [str('outcome')],
    },
    DetachDisk: {
      doc: 'Detaches device from the VM and disconnects the source.',
      input: [str('volumeId'), str('vmId'), str('device'), rec('source', 'Source'), GENERATION],
      output: [bool('return')],
    },
  },
};
