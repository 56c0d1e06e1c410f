import { VbsError } from '../../core/errors.js';
import type { AttachMode } from '../../core/states.js';
import type { IscsiLun } from './iscsi-target.js';

const DEV = /^(?:sd|vd|hd|xvd)[a-z]{1,2}$/;

function attr(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&apos;').replace(/"/g, '&quot;');
}

/**
 * The libvirt <disk> of an iSCSI LUN that QEMU opens itself (its libiscsi
 * driver): no kernel initiator, no host device. `virsh attach-device <vm>
 * <file> --live` reads it from a file, so it is built here from checked
 * values (the LUN by iscsiLun, the device name here) and every attribute is
 * escaped all the same. A read-only disk carries <readonly/>, which QEMU
 * enforces in its block layer. A LUN with a CHAP account names the libvirt
 * secret that holds its password (`secretUsage`); the password is never in
 * the XML.
 */
export function iscsiDiskXml(lun: IscsiLun, vmDev: string, mode: AttachMode, secretUsage?: string): string {
  if (lun.chap && secretUsage === undefined) throw new Error('iscsiDiskXml: a CHAP LUN needs its libvirt secret');
  if (!DEV.test(vmDev)) throw new VbsError('InvalidParameterValue', 'Value for parameter device is invalid: this host attaches iSCSI volumes as disks named like sdb.');
  const [host, port] = splitPortal(lun.portal);
  return [
    `<disk type='network' device='disk'>`,
    `  <driver name='qemu' type='raw'/>`,
    `  <source protocol='iscsi' name='${attr(`${lun.iqn}/${lun.lun}`)}'>`,
    `    <host name='${attr(host)}' port='${port}'/>`,
    // The initiator name the target's ACL admits for this host (fencing).
    ...(lun.initiator ? [`    <initiator><iqn name='${attr(lun.initiator)}'/></initiator>`] : []),
    // The export's CHAP account: the name here, the secret in a libvirt secret object (libvirt-secret.ts).
    ...(lun.chap && secretUsage !== undefined
      ? [`    <auth username='${attr(lun.chap.user)}'>`, `      <secret type='iscsi' usage='${attr(secretUsage)}'/>`, `    </auth>`]
      : []),
    `  </source>`,
    `  <target dev='${attr(vmDev)}' bus='scsi'/>`,
    ...(mode === 'r' ? [`  <readonly/>`] : []),
    `</disk>`,
    '',
  ].join('\n');
}

/** `a.b.c.d:port` (iscsiLun always gives the port) → host and port. */
export function splitPortal(portal: string): [string, number] {
  const i = portal.lastIndexOf(':');
  return [portal.slice(0, i), Number(portal.slice(i + 1))];
}

/** How listings name an iSCSI disk QEMU opens itself (volumeIdOf knows it). */
export function iscsiUrl(lun: IscsiLun): string {
  return `iscsi://${lun.portal}/${lun.iqn}/${lun.lun}`;
}
