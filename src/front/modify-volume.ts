import { VbsError } from '../core/errors.js';
import * as v from '../core/validate.js';
import { Modifications, type ModificationRow, type ModificationState } from '../db/modifications.js';
import type { Metadata } from '../db/metadata.js';
import type { CallContext } from '../soap/server.js';
import type { Record as XmlRecord } from '../soap/xml.js';
import { StepStalled } from '../workflows/engine.js';
import type { ModifyVolumeData } from '../workflows/modify-volume.js';
import type { Access } from './access.js';
import { decodeToken, encodeToken, filtersHash, parseFilters, parseMaxResults, type Filters } from './query.js';
import type { QuotaPolicy } from './quotas.js';
import type { FrontWorkflows } from './workflows.js';

/** A modification as the WSDL's VolumeModification record (EC2's fields, VBS's names). */
export function modificationRecord(m: ModificationRow): XmlRecord {
  return {
    volumeId: m.volume_id,
    modificationState: m.state,
    statusMessage: m.status_message ?? undefined,
    originalSize: m.original_size,
    targetSize: m.target_size,
    progress: m.progress,
    startTime: new Date(m.start_time),
    endTime: m.end_time ? new Date(m.end_time) : undefined,
  };
}

/** DescribeVolumesModifications' request: ids, or filters and pages (the shapes of DescribeVolumes). */
export interface ModificationsRequest {
  readonly volumeId?: readonly unknown[];
  readonly filter?: unknown;
  readonly maxResults?: unknown;
  readonly nextToken?: unknown;
  /** Every request's record, not only each volume's most recent one (EC2 shows the most recent). */
  readonly allRequests?: unknown;
}

/**
 * ModifyVolume and DescribeVolumesModifications, the store feature behind
 * both the SOAP operations and the EC2 Query API's handlers (which call
 * modify() and describe() with their caller's context).
 *
 * A volume grows, never shrinks, while available or in-use, counted against
 * its owner's GiB quota at the new size from the moment it is asked. One
 * modification per volume is in flight at a time; while it is, the volume is
 * not attached anew, snapshotted or deleted (each is refused IncorrectState:
 * retry once the modification is completed or failed).
 */
export class VolumeModifier {
  private readonly records: Modifications;

  constructor(
    private readonly meta: Metadata,
    private readonly wf: FrontWorkflows,
    private readonly access: Access,
    private readonly quotas: QuotaPolicy,
  ) {
    this.records = new Modifications(meta.db);
  }

  /**
   * Grows volumeId to targetSizeGib and answers its modification record:
   * completed once the back end and every attached VM's hypervisor were
   * dealt with; modifying when the back end's answer is not known yet (VBS
   * finishes it and DescribeVolumesModifications shows it). A growth the back
   * end refused is a fault (the record says failed; the size is unchanged).
   */
  async modify(ctx: CallContext, volumeId: unknown, targetSizeGib: unknown): Promise<XmlRecord> {
    const id = v.volumeId(volumeId);
    const target = v.sizeGiB(targetSizeGib, 'size');
    let seq: number | undefined;
    try {
      const d = await this.wf.run(
        this.wf.modifyVolume,
        (): ModifyVolumeData => {
          const vol = this.access.volume(id, ctx);
          if (vol.status !== 'available' && vol.status !== 'in-use') {
            throw new VbsError('IncorrectState', `The volume '${id}' is ${vol.status}; only available or in-use volumes can be modified.`);
          }
          const running = this.records.inFlight(id);
          if (running) {
            throw new VbsError('IncorrectModificationState', `The volume '${id}' is being modified (${running.state}, to ${running.target_size} GiB); wait until it is completed.`);
          }
          if (target < vol.size_gib) throw new VbsError('InvalidParameterValue', `Value for parameter size is invalid: volumes grow, never shrink; '${id}' is ${vol.size_gib} GiB.`);
          if (target === vol.size_gib) throw new VbsError('InvalidParameterValue', `Value for parameter size is invalid: the volume '${id}' is already ${target} GiB.`);
          const busy = this.meta.attachmentsOf([id]).find((a) => a.status !== 'attached');
          if (busy) throw new VbsError('IncorrectState', `The attachment of '${id}' to ${busy.vm_id} is ${busy.status}; modify the volume once it is done.`);
          if (this.meta.pendingSnapshotsOf(id)) throw new VbsError('IncorrectState', `A snapshot of '${id}' is still being taken; modify the volume once it is completed.`);
          this.quotas.admitGrowth(vol.owner, target - vol.size_gib); // in this transaction: concurrent requests cannot overshoot
          seq = this.records.insert({ volumeId: id, owner: vol.owner, originalSize: vol.size_gib, targetSize: target });
          return { volumeId: id, modification: seq, delegate: vol.delegate, originalSize: vol.size_gib, targetSize: target };
        },
        id,
      );
      return this.recordOf(d.modification);
    } catch (err) {
      // Accepted, not finished: the record says modifying, and VBS finishes it.
      if (err instanceof StepStalled && seq !== undefined) return this.recordOf(seq);
      throw err;
    }
  }

  /** Refuses work on a volume whose modification is in flight (attach, snapshot, delete). Call inside that work's transaction. */
  refuseWhileModifying(volumeId: string, what: string): void {
    const m = this.records.inFlight(volumeId);
    if (m) throw new VbsError('IncorrectState', `The volume '${volumeId}' is being modified (${m.state}, to ${m.target_size} GiB); ${what} once it is completed.`);
  }

  /**
   * The caller's modifications (an administrator: everyone's): of the named
   * volumes, or one page of all, filtered; each volume's most recent one
   * unless allRequests. A named volume the caller may not see is
   * InvalidVolume.NotFound; one never modified has no record (as EC2).
   */
  describe(ctx: CallContext, req: ModificationsRequest): { modification: XmlRecord[]; nextToken?: string } {
    const scope = this.access.describeScope(ctx);
    const ids = (req.volumeId ?? []).map((x) => v.volumeId(x));
    for (const id of ids) this.access.volume(id, ctx);
    const maxResults = parseMaxResults(req.maxResults);
    if (ids.length && (maxResults !== undefined || req.nextToken !== undefined)) {
      throw new VbsError('InvalidParameterCombination', 'Name volume ids, or page with maxResults and nextToken, not both.');
    }
    const filters = parseFilters('modification', req.filter, scope);
    const allRequests = req.allRequests === true;
    const hash = filtersHash('modification', new Map([...filters, ['allRequests', [String(allRequests)]]]));
    const after = req.nextToken === undefined ? undefined : decodeToken(req.nextToken, 'modification', hash).seq;
    const idFilter = valueOf<string>(filters, 'volumeId');
    const volumeIds = ids.length ? ids.filter((id) => !idFilter || idFilter.includes(id)) : idFilter;
    if (ids.length && !volumeIds?.length) return { modification: [] };
    const rows = this.records.list({
      owner: scope.kind === 'all' ? undefined : scope.owner,
      owners: valueOf<string>(filters, 'owner'),
      volumeIds,
      states: valueOf<ModificationState>(filters, 'modificationState'),
      originalSizes: valueOf<number>(filters, 'originalSize'),
      targetSizes: valueOf<number>(filters, 'targetSize'),
      allRequests,
      after,
      limit: maxResults === undefined ? undefined : maxResults + 1,
    });
    if (maxResults === undefined || rows.length <= maxResults) return { modification: rows.map(modificationRecord) };
    const page = rows.slice(0, maxResults);
    return { modification: page.map(modificationRecord), nextToken: encodeToken('modification', hash, { seq: page[page.length - 1]!.seq }) };
  }

  private recordOf(seq: number): XmlRecord {
    const m = this.records.get(seq);
    if (!m) throw new VbsError('InternalError', 'modification record vanished');
    return modificationRecord(m);
  }
}

/** A filter's values (undefined: no such filter, everything matches). */
function valueOf<T>(filters: Filters, name: string): T[] | undefined {
  return filters.get(name) as T[] | undefined;
}
