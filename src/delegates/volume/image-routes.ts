import { VbsError } from '../../core/errors.js';
import * as v from '../../core/validate.js';
import { int } from '../../soap/schema.js';
import type { StreamRoute } from '../../soap/stream-route.js';
import type { VolumeBackend } from './backend.js';
import { DEFAULT_IMPORT_IDLE_MS } from './image-intake.js';

/** The answer of a delegate's ImportImage: the snapshot's bytes once raw. */
export const DELEGATE_IMPORT_OUTPUT = [int('sizeBytes')];

/**
 * A volume delegate's image transfers, for the front only (the delegate's
 * listener admits VBS services alone): PUT `images/<snapshot-id>` streams an
 * upload into a new snapshot, GET `images/<id>` streams a volume or snapshot
 * out. Parameters are checked before a byte is read.
 */
export function imageRoutes(backend: VolumeBackend): StreamRoute[] {
  const unsupported = () => new VbsError('OperationFailed', `The ${backend.type} back end of this volume delegate does not take or give images yet.`);
  return [
    {
      operation: 'ImportImage',
      method: 'PUT',
      prefix: 'images',
      output: DELEGATE_IMPORT_OUTPUT,
      handle: async ({ req, rest, query, noteInput }) => {
        const snapshotId = v.snapshotId(rest, 'id');
        const format = v.imageFormat(query.get('format'));
        const sha256 = v.sha256(query.get('sha256'));
        const maxBytes = v.byteCount(query.get('maxBytes'), 'maxBytes');
        if (maxBytes === undefined || maxBytes < 1) throw new VbsError('MissingParameter', 'The request must contain the parameter maxBytes.');
        const length = v.byteCount(req.headers['content-length'], 'Content-Length');
        const idleMs = v.byteCount(query.get('idleMs'), 'idleMs') ?? DEFAULT_IMPORT_IDLE_MS;
        noteInput({ snapshotId, format, ...(sha256 ? { sha256 } : {}), maxBytes, ...(length !== undefined ? { length } : {}) });
        if (!backend.importImage) throw unsupported();
        const sizeBytes = await backend.importImage(snapshotId, req, { format, sha256, length, maxBytes, idleMs: Math.max(1_000, idleMs) });
        return { output: { sizeBytes } };
      },
    },
    {
      operation: 'ExportImage',
      method: 'GET',
      prefix: 'images',
      output: [],
      handle: async ({ req, rest, query, noteInput }) => {
        req.resume();
        const id = rest.startsWith('snap-') ? v.snapshotId(rest, 'id') : v.volumeId(rest, 'id');
        const format = v.exportFormat(query.get('format'));
        noteInput({ id, format });
        if (!backend.openImage) throw unsupported();
        const { body, length } = await backend.openImage(id, format);
        return { output: { id, format, length }, body, length };
      },
    },
  ];
}
