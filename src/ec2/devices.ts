import { VbsError } from '../core/errors.js';
import { parseFilterValue, Wildcard } from '../core/wildcard.js';

/**
 * EC2 device names and the hypervisor's (issue 18). EC2 users name a
 * device /dev/sdf or /dev/xvdf (Linux on Xen showed sdf as xvdf); the
 * hypervisor needs its own name, by the front's `ec2.devicePrefix`: xvd for
 * Xen (xvdf), vd for virtio disks of libvirt and QEMU (vdf), sd for SCSI
 * (sdf). The letters are kept: /dev/sdf and /dev/xvdf are both the sixth
 * disk. What VBS stores and shows is the hypervisor's name, with /dev/.
 */
export type DevicePrefix = 'xvd' | 'vd' | 'sd';

/** EC2's accepted forms: sd, xvd, hd or vd, then one or two letters (sdf, xvdba), with or without /dev/. */
const EC2_DEVICE = /^(?:\/dev\/)?(?:sd|xvd|hd|vd)([a-z]{1,2})$/;

export function toHypervisorDevice(ec2Name: string, prefix: DevicePrefix, param = 'Device'): string {
  const m = EC2_DEVICE.exec(ec2Name);
  if (!m) throw new VbsError('InvalidParameterValue', `Value (${ec2Name.slice(0, 32)}) for parameter ${param} is invalid. Expected a device name such as /dev/sdf or /dev/xvdf.`);
  return `${prefix}${m[1]}`;
}

/** How an attachment's device is shown through EC2: the hypervisor's name under /dev/. */
export function shownDevice(stored: string): string {
  return stored.startsWith('/dev/') ? stored : `/dev/${stored}`;
}

/**
 * An `attachment.device` filter value: a device name as toHypervisorDevice
 * maps it, or a pattern with EC2's wildcards (`/dev/sd*`), whose leading EC2
 * spelling is mapped the same way (`/dev/sd*` → `xvd*`, `/dev/*` → `*`), so it
 * matches what DescribeVolumes shows either way.
 */
export function toHypervisorDeviceFilter(value: string, prefix: DevicePrefix): string {
  if (!(parseFilterValue(value, 'attachment.device') instanceof Wildcard)) return toHypervisorDevice(value, prefix, 'attachment.device');
  return value.replace(/^\/dev\//, '').replace(/^(?:sd|xvd|hd|vd)(?=[a-z*?]|$)/, prefix);
}
