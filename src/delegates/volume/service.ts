import * as v from '../../core/validate.js';
import type { Handlers } from '../../soap/server.js';
import type { Record as XmlRecord } from '../../soap/xml.js';
import type { VolumeBackend } from './backend.js';

function objectId(x: unknown): string {
  const s = v.requireString('id', x);
  return s.startsWith('snap-') ? v.snapshotId(s, 'id') : v.volumeId(s, 'id');
}

/** The Volume Delegate's operations over its back end; every input is checked before the back end sees it. */
export function volumeDelegateHandlers(backend: VolumeBackend): Handlers {
  return {
    GetCapacity: async () => ({ backend: backend.type, ...(await backend.capacity()) }),
    CreateVolume: async (i) => {
      const snapshotId = i.snapshotId === undefined ? undefined : v.snapshotId(i.snapshotId);
      await backend.createVolume(v.volumeId(i.volumeId), v.sizeGiB(i.sizeGiB, 'sizeGiB'), snapshotId);
      return { accepted: true };
    },
    CreateSnapshot: async (i) => {
      await backend.createSnapshot(v.snapshotId(i.snapshotId), v.volumeId(i.volumeId));
      return { accepted: true };
    },
    DescribeObjects: async (i) => {
      const ids = ((i.id as unknown[]) ?? []).map(objectId);
      const objects = ids.length ? await Promise.all(ids.map((id) => backend.describe(id))) : await backend.list();
      return { object: objects as unknown as XmlRecord[] };
    },
    DeleteObject: async (i) => ({ deleted: await backend.delete(objectId(i.id)) }),
    ExportVolume: async (i) => {
      const volumeId = v.volumeId(i.volumeId);
      const vmmHost = v.hostName(i.vmmHost);
      return { export: (await backend.exportVolume(volumeId, vmmHost)) as unknown as XmlRecord };
    },
    ListExports: async () => {
      const r = await backend.listExports();
      return { tracked: r.tracked, export: r.exports as unknown as XmlRecord[] };
    },
    UnexportVolume: async (i) => {
      const volumeId = v.volumeId(i.volumeId);
      const vmmHost = v.hostName(i.vmmHost);
      await backend.unexportVolume(volumeId, vmmHost);
      return { return: true };
    },
  };
}
