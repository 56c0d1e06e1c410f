import * as v from '../../core/validate.js';
import type { Handlers } from '../../soap/server.js';
import type { Record as XmlRecord } from '../../soap/xml.js';
import type { FileBackend } from './file-backend.js';

function objectId(x: unknown): string {
  const s = v.requireString('id', x);
  return s.startsWith('snap-') ? v.snapshotId(s, 'id') : v.volumeId(s, 'id');
}

/** The Volume Delegate's operations over its back end. */
export function volumeDelegateHandlers(backend: FileBackend): Handlers {
  return {
    GetCapacity: () => ({ backend: 'file', ...backend.capacity() }),
    CreateVolume: (i) => {
      const snapshotId = i.snapshotId === undefined ? undefined : v.snapshotId(i.snapshotId);
      backend.createVolume(v.volumeId(i.volumeId), v.sizeGiB(i.sizeGiB, 'sizeGiB'), snapshotId);
      return { accepted: true };
    },
    CreateSnapshot: (i) => {
      backend.createSnapshot(v.snapshotId(i.snapshotId), v.volumeId(i.volumeId));
      return { accepted: true };
    },
    DescribeObjects: (i) => {
      const ids = ((i.id as unknown[]) ?? []).map(objectId);
      return { object: (ids.length ? ids.map((id) => backend.describe(id)) : backend.list()) as unknown as XmlRecord[] };
    },
    DeleteObject: async (i) => ({ deleted: await backend.delete(objectId(i.id)) }),
    ExportVolume: (i) => {
      v.hostName(i.vmmHost);
      return { export: backend.exportVolume(v.volumeId(i.volumeId)) };
    },
    ListExports: () => ({ tracked: false, export: [] }),
    UnexportVolume: (i) => {
      v.volumeId(i.volumeId);
      v.hostName(i.vmmHost);
      return { return: true };
    },
  };
}
