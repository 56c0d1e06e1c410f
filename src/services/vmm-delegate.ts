import { DISK_SOURCE_FIELDS } from './disk-source.js';
import { bool, int, rec, str, type ServiceDefinition } from '../soap/schema.js';

/** The VMM Delegate: runs on a hypervisor node and attaches exported volumes to its VMs. */
export const VMM_DELEGATE_SERVICE: ServiceDefinition = {
  name: 'VmmDelegate',
  namespace: 'urn:vbs:2026:vmm-delegate',
  path: '/vmm-delegate',
  doc: 'VBS VMM Delegate: connects exported volumes and attaches them to the VMs of one hypervisor host.',
  types: {
    Source: DISK_SOURCE_FIELDS,
  },
  operations: {
    DescribeHost: {
      doc: 'The host name and adapter of this delegate.',
      input: [],
      output: [str('hostName'), str('adapter')],
    },
    AttachDisk: {
      doc: 'Connects the source and attaches it to the VM as device in mode r or w.',
      input: [str('volumeId'), str('vmId'), str('device'), str('mode'), rec('source', 'Source')],
      output: [bool('return')],
    },
    DetachDisk: {
      doc: 'Detaches device from the VM and disconnects the source.',
      input: [str('volumeId'), str('vmId'), str('device'), rec('source', 'Source')],
      output: [bool('return')],
    },
  },
};
