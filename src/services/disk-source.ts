import { int, str, type Field } from '../soap/schema.js';

/**
 * How a VMM host reaches a volume: what the Volume Delegate's ExportVolume
 * returns is exactly what the VMM Delegate's AttachDisk takes.
 */
export const DISK_SOURCE_FIELDS: readonly Field[] = [
  str('kind', { doc: 'file or iscsi' }),
  str('path', { optional: true }),
  str('portal', { optional: true }),
  str('iqn', { optional: true }),
  int('lun', { optional: true }),
  str('initiator', { optional: true, doc: "the initiator name the target admits for this VMM host (tgt's ACL); the host logs in as it" }),
  str('chapUser', { optional: true, doc: "the export's CHAP account, when the target requires CHAP (src/core/chap.ts)" }),
  str('chapSecret', { optional: true, doc: "that account's secret: only the front and the VMM host that logs in see it; never logged" }),
];
