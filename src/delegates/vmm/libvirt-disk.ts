import { VbsError } from '../../core/errors.js';
import type { AttachMode } from '../../core/states.js';
import type { IscsiLun } from './iscsi-target.js';
import type { RbdSource } from '../../core/rbd-export.js';

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

/**
 * The libvirt <disk> of an rbd image QEMU opens itself (its rbd driver): the
 * monitors as <host>s, the export's cephx client as <auth username>, and its
 * key by reference to the libvirt secret LoginTarget defined (secretUuid):
 * the key itself is never in the XML. `conf`: a ceph.conf for QEMU's client
 * (short mount timeouts: without one, an attach while the monitors are down
 * hangs the domain for 300 s). Read-only carries <readonly/>.
 */
export function rbdDiskXml(img: RbdSource, vmDev: string, mode: AttachMode, secretUuid: string, conf?: string): string {
  if (!DEV.test(vmDev)) throw new VbsError('InvalidParameterValue', 'Value for parameter device is invalid: this host attaches rbd volumes as disks named like sdb.');
  const hosts = img.monitors.split(',').map((m) => {
    const [host, port] = splitPortal(m);
    return `    <host name='${attr(host)}' port='${port}'/>`;
  });
  return [
    `<disk type='network' device='disk'>`,
    `  <driver name='qemu' type='raw'/>`,
    `  <source protocol='rbd' name='${attr(`${img.pool}/${img.image}`)}'>`,
    ...hosts,
    ...(conf ? [`    <config file='${attr(conf)}'/>`] : []),
    `  </source>`,
    `  <auth username='${attr(img.cephUser)}'>`,
    `    <secret type='ceph' uuid='${attr(secretUuid)}'/>`,
    `  </auth>`,
    `  <target dev='${attr(vmDev)}' bus='scsi'/>`,
    ...(mode === 'r' ? [`  <readonly/>`] : []),
    `</disk>`,
    '',
  ].join('\n');
}

/**
 * The libvirt secret that holds an export's cephx key on this host
 * (`virsh secret-define`; the value follows with `secret-set-value` from
 * standard input). Ephemeral: libvirtd keeps it in memory only, never in
 * /etc/libvirt/secrets; private: `virsh secret-get-value` refuses to show it.
 */
export function rbdSecretXml(cephUser: string, secretUuid: string): string {
  return [
    `<secret ephemeral='yes' private='yes'>`,
    `  <uuid>${attr(secretUuid)}</uuid>`,
    `  <usage type='ceph'><name>${attr(`vbs client.${cephUser}`)}</name></usage>`,
    `</secret>`,
    '',
  ].join('\n');
}
