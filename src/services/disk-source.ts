import { int, str, type Field } from '../soap/schema.js';

/**
 * How a VMM host reaches a volume: what the Volume Delegate's ExportVolume
 * returns is exactly what the VMM Delegate's AttachDisk takes.
 */
export const DISK_SOURCE_FIELDS: readonly Field[] = [
  str('kind', { doc: 'file, iscsi or rbd' }),
  str('path', { optional: true }),
  str('portal', { optional: true }),
  str('iqn', { optional: true }),
  int('lun', { optional: true }),
  str('initiator', { optional: true, doc: "the initiator name the target admits for this VMM host (tgt's ACL); the host logs in as it" }),
  str('chapUser', { optional: true, doc: "the export's CHAP account, when the target requires CHAP (src/core/chap.ts)" }),
  str('chapSecret', { optional: true, doc: "that account's secret: only the front and the VMM host that logs in see it; never logged" }),
  str('pool', { optional: true, doc: 'rbd: the Ceph pool of the image' }),
  str('image', { optional: true, doc: 'rbd: the image (the volume id)' }),
  str('monitors', { optional: true, doc: "rbd: the monitors' host:port (msgr1) addresses, comma-separated, from the cluster's configuration" }),
  str('cephUser', { optional: true, doc: "rbd: the export's own cephx client id (client.<cephUser>), whose caps admit this image only (src/core/rbd-export.ts)" }),
  str('cephKey', { optional: true, doc: "rbd: that client's key: only the front and the VMM host that attaches see it; never logged" }),
];
