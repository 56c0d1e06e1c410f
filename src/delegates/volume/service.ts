import { VbsError } from '../../core/errors.js';
import { CHAP_SECRET } from '../../core/chap.js';
import * as v from '../../core/validate.js';
import type { Handlers } from '../../soap/server.js';
import type { Record as XmlRecord } from '../../soap/xml.js';
import type { StoredObject, VolumeBackend } from './backend.js';
import { MAX_WAIT_MS } from './changes.js';

/**
 * How long a create waits for its own work before answering: a blank volume
 * (fallocate, one lvcreate) or a reflink copy is done by then, and the front
 * marks it available at once; anything longer goes on in the background.
 */
export const QUICK_ANSWER_MS = 1_000;

/** A proposed CHAP secret; the fault never repeats it. */
function secret(x: unknown): string {
  if (typeof x !== 'string' || !CHAP_SECRET.test(x)) throw new VbsError('InvalidParameterValue', 'Value for parameter chapSecret is invalid: expected 16 to 128 of A-Z a-z 0-9 _ -.');
  return x;
}

function objectId(x: unknown): string {
  const s = v.requireString('id', x);
  return s.startsWith('snap-') ? v.snapshotId(s, 'id') : v.volumeId(s, 'id');
}

/** The Volume Delegate's operations over its back end; every input is checked before the back end sees it. */
export function volumeDelegateHandlers(backend: VolumeBackend): Handlers {
  return {
    GetCapacity: async () => ({ backend: backend.type, ...(await backend.capacity()) }),
    CreateVolume: async (i) => {
      const volumeId = v.volumeId(i.volumeId);
      const sizeGiB = v.sizeGiB(i.sizeGiB, 'sizeGiB');
      const snapshotId = i.snapshotId === undefined ? undefined : v.snapshotId(i.snapshotId);
      return quickAnswer(backend, volumeId, () => backend.createVolume(volumeId, sizeGiB, snapshotId));
    },
    CreateSnapshot: async (i) => {
      const snapshotId = v.snapshotId(i.snapshotId);
      const volumeId = v.volumeId(i.volumeId);
      return quickAnswer(backend, snapshotId, () => backend.createSnapshot(snapshotId, volumeId));
    },
    WaitObjects: async (i) => {
      const since = i.since === undefined ? undefined : v.requireString('since', i.since);
      if (since !== undefined && since.length > 64) throw new VbsError('InvalidParameterValue', 'Value for parameter since is invalid.');
      const waitMs = i.maxWaitMs === undefined ? MAX_WAIT_MS : Number(i.maxWaitMs);
      if (!Number.isInteger(waitMs) || waitMs < 0 || waitMs > MAX_WAIT_MS) {
        throw new VbsError('InvalidParameterValue', `Value for parameter maxWaitMs is invalid: 0 to ${MAX_WAIT_MS}.`);
      }
      const changes = await backend.changes.wait(since, waitMs);
      const objects = await Promise.all(changes.ids.map((id) => backend.describe(id)));
      return { cursor: changes.cursor, reset: changes.reset, object: objects as unknown as XmlRecord[] };
    },
    DescribeObjects: async (i) => {
      const ids = ((i.id as unknown[]) ?? []).map(objectId);
      const objects = ids.length ? await Promise.all(ids.map((id) => backend.describe(id))) : await backend.list();
      return { object: objects as unknown as XmlRecord[] };
    },
    GrowVolume: async (i) => {
      const volumeId = v.volumeId(i.volumeId);
      const sizeGiB = v.sizeGiB(i.sizeGiB, 'sizeGiB');
      return { sizeBytes: await backend.growVolume(volumeId, sizeGiB) };
    },
    DeleteObject: async (i) => ({ deleted: await backend.delete(objectId(i.id)) }),
    ExportVolume: async (i) => {
      const volumeId = v.volumeId(i.volumeId);
      const vmmHost = v.hostName(i.vmmHost);
      const chapSecret = i.chapSecret === undefined ? undefined : secret(i.chapSecret);
      return { export: (await backend.exportVolume(volumeId, vmmHost, chapSecret)) as unknown as XmlRecord };
    },
    ListExports: async () => {
      const r = await backend.listExports();
      return { tracked: r.tracked, export: r.exports as unknown as XmlRecord[] };
    },
    UnexportVolume: async (i) => {
      const volumeId = v.volumeId(i.volumeId);
      const vmmHost = v.hostName(i.vmmHost);
      const fenced = await backend.unexportVolume(volumeId, vmmHost);
      return { return: true, fenced };
    },
  };
}

/** Starts a create, then answers with the object's state once its work is done or QUICK_ANSWER_MS passed. */
async function quickAnswer(backend: VolumeBackend, id: string, start: () => Promise<void>): Promise<XmlRecord> {
  const before = backend.changes.cursor();
  await start();
  // From here the create is under way: a look that fails (lvs killed, say) must
  // not answer a fault, which the front takes for "nothing was made" and drops
  // the record while the data is still made. It is "creating": the long-poll
  // and the fallback poll tell the front how it ends.
  let o: StoredObject;
  try {
    o = await backend.describe(id);
    if (o.state === 'creating') {
      await backend.changes.wait(before, QUICK_ANSWER_MS, new Set([id]));
      o = await backend.describe(id);
    }
  } catch {
    return { accepted: true, state: 'creating' };
  }
  return { accepted: true, state: o.state, ...(o.message === undefined ? {} : { message: o.message }) };
}
