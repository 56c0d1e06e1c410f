import * as v from '../core/validate.js';
import type { GuardRules } from './generations.js';

/**
 * What each delegate operation that changes a host acts on, for the
 * generation guard (src/delegates/generations.ts). Keys name the thing a
 * stale call could wrongly put back or take away: an add and a remove of the
 * same thing share a key. Values are validated here, so a hostile one is a
 * client fault before anything is recorded or run.
 */

/** On a VMM host: a volume's disk in one VM; the host's iSCSI session to the volume's target. */
export const VMM_GENERATION_RULES: GuardRules = {
  AttachDisk: (i) => ({ key: `disk/${v.volumeId(i.volumeId)}/${v.vmId(i.vmId)}`, direction: 'add' }),
  DetachDisk: (i) => ({ key: `disk/${v.volumeId(i.volumeId)}/${v.vmId(i.vmId)}`, direction: 'remove' }),
  // Telling a VM its disk grew acts on the disk in place: refused after a newer detach of it.
  ResizeDisk: (i) => ({ key: `disk/${v.volumeId(i.volumeId)}/${v.vmId(i.vmId)}`, direction: 'add' }),
  DiscoverTarget: (i) => ({ key: `session/${v.volumeId(i.volumeId)}`, direction: 'add' }),
  LoginTarget: (i) => ({ key: `session/${v.volumeId(i.volumeId)}`, direction: 'add' }),
  LogoutTarget: (i) => ({ key: `session/${v.volumeId(i.volumeId)}`, direction: 'remove' }),
};

const objectId = (x: unknown): string => {
  const s = v.requireString('id', x);
  return s.startsWith('snap-') ? v.snapshotId(s, 'id') : v.volumeId(s, 'id');
};

/** On a volume delegate: a volume's export to one VMM host; a stored volume or snapshot. */
export const VOLUME_GENERATION_RULES: GuardRules = {
  ExportVolume: (i) => ({ key: `export/${v.volumeId(i.volumeId)}/${v.hostName(i.vmmHost).toLowerCase()}`, direction: 'add' }),
  UnexportVolume: (i) => ({ key: `export/${v.volumeId(i.volumeId)}/${v.hostName(i.vmmHost).toLowerCase()}`, direction: 'remove' }),
  CreateVolume: (i) => ({ key: `object/${v.volumeId(i.volumeId)}`, direction: 'add' }),
  CreateSnapshot: (i) => ({ key: `object/${v.snapshotId(i.snapshotId)}`, direction: 'add' }),
  // Growing puts the volume's data (bigger) in place: a stale grow after a newer delete is refused.
  GrowVolume: (i) => ({ key: `object/${v.volumeId(i.volumeId)}`, direction: 'add' }),
  DeleteObject: (i) => ({ key: `object/${objectId(i.id)}`, direction: 'remove' }),
};
