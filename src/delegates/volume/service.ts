import { VbsError } from '../../core/errors.js';
import { CHAP_SECRET } from '../../core/chap.js';
import * as v from '../../core/validate.js';
import type { Handlers } from '../../soap/server.js';
import type { Record as XmlRecord } from '../../soap/xml.js';
import type { StoredObject, VolumeBackend } from './backend.js';
import { MAX_WAIT_MS } from './changes.js';
import { GiB } from './backend.js';
import type { ObjectRecord, ObjectRecords } from './object-records.js';

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

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;
const ZONE = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** The record a create asks for: only when the front named the owner (an older front does not). */
function recordOf(i: XmlRecord, id: string, fields: Omit<ObjectRecord, 'id' | 'owner' | 'createdAt'>): ObjectRecord | undefined {
  if (i.owner === undefined) return undefined;
  const owner = v.userName(i.owner, 'owner');
  const createdAt = i.createdAt === undefined ? new Date().toISOString() : v.requireString('createdAt', i.createdAt);
  if (!ISO_TIME.test(createdAt)) throw new VbsError('InvalidParameterValue', 'Value for parameter createdAt is invalid: expected an ISO 8601 UTC time.');
  if (fields.zone !== undefined && !ZONE.test(fields.zone)) throw new VbsError('InvalidParameterValue', 'Value for parameter zone is invalid.');
  return { id, owner, createdAt, ...Object.fromEntries(Object.entries(fields).filter(([, x]) => x !== undefined)) };
}

/**
 * A create with its record: the record is written first (data never exists
 * without one) and taken back if the create refused and left nothing. A
 * record already there (a retried create) is kept as it was.
 */
async function createRecorded(backend: VolumeBackend, records: ObjectRecords | undefined, record: ObjectRecord | undefined, create: () => Promise<void>): Promise<void> {
  const wrote = Boolean(records && record && !records.read(record.id));
  if (wrote) records!.write(record!);
  try {
    await create();
  } catch (err) {
    if (wrote && (await backend.describe(record!.id).catch(() => undefined))?.state === 'absent') records!.remove(record!.id);
    throw err;
  }
}

/** Adds each object's record (if any) to what the back end says of it. */
function withRecord(records: ObjectRecords | undefined, o: StoredObject): XmlRecord {
  const r = o.state === 'absent' ? undefined : records?.read(o.id);
  if (!r) return o as unknown as XmlRecord;
  const { id: _id, ...record } = r;
  return { ...o, record } as unknown as XmlRecord;
}

/**
 * The Volume Delegate's operations over its back end; every input is checked
 * before the back end sees it. `records` (src/delegates/volume/object-records.ts)
 * keeps each object's owner, size and lineage beside its data.
 */
export function volumeDelegateHandlers(backend: VolumeBackend, records?: ObjectRecords): Handlers {
  return {
    GetCapacity: async () => ({ backend: backend.type, ...(await backend.capacity()) }),
    CreateVolume: async (i) => {
      const volumeId = v.volumeId(i.volumeId);
      const sizeGiB = v.sizeGiB(i.sizeGiB, 'sizeGiB');
      const snapshotId = i.snapshotId === undefined ? undefined : v.snapshotId(i.snapshotId);
      const record = recordOf(i, volumeId, { sizeGiB, snapshotId, zone: i.zone === undefined ? undefined : v.requireString('zone', i.zone) });
      return quickAnswer(backend, volumeId, () => createRecorded(backend, records, record, () => backend.createVolume(volumeId, sizeGiB, snapshotId)));
    },
    CreateSnapshot: async (i) => {
      const snapshotId = v.snapshotId(i.snapshotId);
      const volumeId = v.volumeId(i.volumeId);
      const record = recordOf(i, snapshotId, { volumeId, sizeGiB: i.sizeGiB === undefined ? await sourceSizeGiB(backend, volumeId) : v.sizeGiB(i.sizeGiB, 'sizeGiB') });
      return quickAnswer(backend, snapshotId, () => createRecorded(backend, records, record, () => backend.createSnapshot(snapshotId, volumeId)));
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
      return { object: objects.map((o) => withRecord(records, o)) };
    },
    GrowVolume: async (i) => {
      const volumeId = v.volumeId(i.volumeId);
      const sizeGiB = v.sizeGiB(i.sizeGiB, 'sizeGiB');
      const sizeBytes = await backend.growVolume(volumeId, sizeGiB);
      records?.resize(volumeId, Math.max(sizeGiB, Math.floor(sizeBytes / GiB)));
      return { sizeBytes };
    },
    DeleteObject: async (i) => {
      const id = objectId(i.id);
      const deleted = await backend.delete(id);
      // After the data: a failed delete leaves its record, and the front retries.
      records?.remove(id);
      return { deleted };
    },
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

/** A snapshot's size when the front did not say: its volume's, rounded up to whole GiB. */
async function sourceSizeGiB(backend: VolumeBackend, volumeId: string): Promise<number | undefined> {
  const o = await backend.describe(volumeId).catch(() => undefined);
  return o?.sizeBytes ? Math.ceil(o.sizeBytes / GiB) : undefined;
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
