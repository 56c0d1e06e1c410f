import type { Readable } from 'node:stream';
import { VbsError } from '../core/errors.js';
import * as v from '../core/validate.js';
import type { Metadata } from '../db/metadata.js';
import { rec } from '../soap/schema.js';
import { openStream, readAnswer, type StreamTarget } from '../soap/stream-client.js';
import type { StreamRoute } from '../soap/stream-route.js';
import type { CallContext } from '../soap/server.js';
import type { Record as XmlRecord } from '../soap/xml.js';
import { VOLUME_DELEGATE_SERVICE } from '../services/volume-delegate.js';
import { DELEGATE_IMPORT_OUTPUT } from '../delegates/volume/image-routes.js';
import { IMPORTED_VOLUME_ID } from '../workflows/import-image.js';
import { StepFailed } from '../workflows/engine.js';
import type { Access } from './access.js';
import type { QuotaPolicy } from './quotas.js';
import type { FrontWorkflows } from './workflows.js';
import type { Zones } from './zones.js';
import { snapshotRecord } from './records.js';

const GiB = 1024 ** 3;

/** The limits of image transfers (the front configuration's `images`). */
export interface ImageLimits {
  /** The largest image an import takes, uploaded and once converted. */
  readonly maxBytes: number;
  /** An upload or download that moves no byte for this long is cut. */
  readonly idleMs: number;
}

/**
 * What the delegate found wrong with the bytes (a checksum that differs, an
 * image too large or unreadable, an upload cut, no free import slot) is about
 * the user's own request: its code reaches them as it is, not as a failed step.
 */
const UPLOAD_FAULTS: ReadonlySet<string> = new Set(['InvalidParameterValue', 'RequestTooLarge', 'RequestTimeout', 'RequestLimitExceeded', 'QuotaExceeded']);

function aboutTheUpload(err: unknown): never {
  if (err instanceof StepFailed && err.cause instanceof VbsError && UPLOAD_FAULTS.has(err.cause.code)) throw new VbsError(err.cause.code, err.cause.message);
  throw err;
}

/** The answer of ImportImage: the new snapshot, as CreateSnapshot's. */
export const IMPORT_IMAGE_OUTPUT = [rec('snapshot', 'Snapshot')];

/**
 * Images in and out through the front (docs/images.md): PUT `<path>/images`
 * imports an upload as a new snapshot with no source volume (EC2's
 * ImportSnapshot); GET `<path>/images/<id>` reads a volume or snapshot back
 * out. The front checks who asks and what they may touch, admits the quota,
 * journals the import, and streams the bytes straight through to the volume
 * delegate, which checks, converts and keeps them; nothing is buffered here.
 */
export class FrontImages {
  constructor(
    private readonly meta: Metadata,
    private readonly wf: FrontWorkflows,
    private readonly access: Access,
    private readonly quotas: QuotaPolicy,
    private readonly zones: Zones,
    /** How to reach each volume delegate's image routes, by name. */
    private readonly channels: ReadonlyMap<string, StreamTarget>,
    private readonly limits: ImageLimits,
  ) {}

  routes(): StreamRoute[] {
    return [
      { operation: 'ImportImage', method: 'PUT', prefix: 'images', output: IMPORT_IMAGE_OUTPUT, handle: ({ req, rest, query, ctx, noteInput }) => this.importImage(req, rest, query, ctx, noteInput) },
      {
        operation: 'ExportImage',
        method: 'GET',
        prefix: 'images',
        output: [],
        handle: async ({ req, rest, query, ctx, noteInput }) => {
          req.resume();
          return this.exportImage(rest, query, ctx, noteInput);
        },
      },
    ];
  }

  private channel(delegate: string): StreamTarget {
    const c = this.channels.get(delegate);
    if (!c) throw new VbsError('InternalError', `volume delegate ${delegate} has no image channel`);
    return c;
  }

  private async importImage(req: Readable & { headers: Record<string, string | string[] | undefined> }, rest: string, query: URLSearchParams, ctx: CallContext, noteInput: (i: XmlRecord) => void) {
    if (rest !== '') throw new VbsError('InvalidParameterValue', 'ImportImage takes no id in its path: PUT <service>/images?format=...');
    const format = v.imageFormat(query.get('format'));
    const comment = v.comment(query.get('comment') ?? undefined);
    const sha256 = v.sha256(query.get('sha256'));
    const length = v.byteCount(req.headers['content-length'], 'Content-Length');
    const askedZone = query.get('availabilityZone') ? this.zones.known(v.zoneName(query.get('availabilityZone'))) : undefined;
    noteInput({ format, comment, ...(sha256 ? { sha256 } : {}), ...(length !== undefined ? { length } : {}) });
    if (length !== undefined && length > this.limits.maxBytes) throw new VbsError('RequestTooLarge', `The image is larger than ${this.limits.maxBytes} bytes, the limit of an import.`);
    if (length === 0) throw new VbsError('InvalidParameterValue', 'The image is empty.');
    const placed = await this.zones.pickChecked(askedZone);
    const d = await this.wf.run(this.wf.importImage, () => {
      // Admitted by what arrives (a stream of unknown length: 1 GiB); a converted image may
      // hold more, up to what the user's snapshot quota still allows (checked by the delegate).
      const sizeGib = Math.max(1, Math.ceil((length ?? 1) / GiB));
      this.quotas.admitSnapshot(ctx.caller, sizeGib);
      const { limits, usage } = this.quotas.describe(ctx.caller);
      const room = (limits.snapshotGib - usage.snapshotGib) * GiB;
      const maxBytes = Math.min(this.limits.maxBytes, room);
      const snapshotId = this.meta.reserveId('snap');
      this.meta.insertSnapshot({ snapshot_id: snapshotId, owner: ctx.caller, volume_id: IMPORTED_VOLUME_ID, size_gib: sizeGib, comment, status: 'pending', delegate: placed.delegate });
      this.wf.uploads.put(snapshotId, async () => {
        const res = await openStream(this.channel(placed.delegate), {
          method: 'PUT',
          path: `images/${snapshotId}`,
          query: { format, sha256, maxBytes: String(maxBytes), idleMs: String(this.limits.idleMs) },
          body: req,
          length,
          idleMs: this.limits.idleMs,
        });
        const answer = await readAnswer(res, VOLUME_DELEGATE_SERVICE, 'ImportImage', DELEGATE_IMPORT_OUTPUT);
        return Number(answer.sizeBytes);
      });
      return { snapshotId, delegate: placed.delegate, owner: ctx.caller, format };
    }).catch(aboutTheUpload);
    ctx.log.info('image imported', { snapshotId: d.snapshotId, format, bytes: d.sizeBytes });
    return { output: { snapshot: snapshotRecord(this.meta.snapshot(d.snapshotId)!) } };
  }

  /**
   * A snapshot the caller may use (theirs or shared with them), completed; or
   * a volume of theirs nobody writes to (available, or attached read-only),
   * so what is read is one point in time.
   */
  private async exportImage(rest: string, query: URLSearchParams, ctx: CallContext, noteInput: (i: XmlRecord) => void) {
    const id = rest.startsWith('snap-') ? v.snapshotId(rest, 'id') : v.volumeId(rest, 'id');
    const format = v.exportFormat(query.get('format'));
    noteInput({ id, format });
    let delegate: string;
    if (id.startsWith('snap-')) {
      const snap = this.access.snapshotToUse(id, ctx);
      if (snap.status !== 'completed') throw new VbsError('IncorrectState', `The snapshot '${id}' is ${snap.status}, not completed.`);
      delegate = snap.delegate;
    } else {
      const vol = this.access.volume(id, ctx);
      const writers = this.meta.attachmentsOf([id]).filter((a) => a.mode !== 'r');
      if ((vol.status !== 'available' && vol.status !== 'in-use') || writers.length) {
        throw new VbsError('IncorrectState', `The volume '${id}' is ${writers.length ? 'attached read-write' : vol.status}; export a snapshot of it, or detach it first.`);
      }
      delegate = vol.delegate;
    }
    const res = await openStream(this.channel(delegate), { method: 'GET', path: `images/${id}`, query: { format }, idleMs: this.limits.idleMs });
    const length = v.byteCount(res.headers['content-length'], 'Content-Length');
    if (length === undefined) {
      res.destroy();
      throw new VbsError('ServiceUnavailable', 'The volume delegate sent an image without its length.');
    }
    return { output: { id, format, length }, body: res, length };
  }
}
