import { VbsError } from '../core/errors.js';
import * as v from '../core/validate.js';
import { listSnapshots, listVolumes, type ListRequest } from '../db/listing.js';
import type { Metadata, SnapshotRow, VolumeRow } from '../db/metadata.js';
import type { Record as XmlRecord } from '../soap/xml.js';
import { decodeToken, encodeToken, filtersHash, parseFilters, parseMaxResults, type ListKind, type Scope } from './query.js';
import { snapshotRecord, volumeRecord, type TagsOf } from './records.js';

/**
 * DescribeVolumes and DescribeSnapshots: the named ids, or one page of the
 * records in scope, filtered. Without ids and without maxResults every
 * matching record is returned, as EC2 does (the CLI pages anyway); with
 * maxResults, pages of that size and a nextToken while more remain.
 */

interface Listing<Row> {
  readonly rows: Row[];
  readonly nextToken?: string;
}

function list<Row extends { page_seq: number }>(
  kind: ListKind,
  scope: Scope,
  input: XmlRecord,
  ids: readonly string[],
  idOf: (r: Row) => string,
  run: (req: ListRequest) => Row[],
  notFound: (id: string) => VbsError,
): Listing<Row> {
  const maxResults = parseMaxResults(input.maxResults);
  const token = input.nextToken;
  if (ids.length && (maxResults !== undefined || token !== undefined)) {
    throw new VbsError('InvalidParameterCombination', `Name ${kind} ids, or page with maxResults and nextToken, not both.`);
  }
  const filters = parseFilters(kind, input.filter, scope);
  const hash = filtersHash(kind, filters);
  const after = token === undefined ? undefined : decodeToken(token, kind, hash);
  const owner = scope.kind === 'all' ? undefined : scope.owner;
  // One row more than the page: whether another page follows, without a count.
  const rows = run({ owner, ids: ids.length ? ids : undefined, filters, after, limit: maxResults === undefined ? undefined : maxResults + 1 });
  if (ids.length) {
    // A named id that the filters leave out is not missing; one that does not exist (in scope) is.
    const found = new Set((filters.size ? run({ owner, ids, filters: new Map() }) : rows).map(idOf));
    const missing = ids.find((id) => !found.has(id));
    if (missing) throw notFound(missing);
  }
  if (maxResults === undefined || rows.length <= maxResults) return { rows };
  const page = rows.slice(0, maxResults);
  const last = page[page.length - 1]!;
  return { rows: page, nextToken: encodeToken(kind, hash, { seq: last.page_seq }) };
}

export function describeVolumes(meta: Metadata, scope: Scope, input: XmlRecord, tagsOf: (ids: string[]) => TagsOf = () => new Map()): XmlRecord {
  const ids = ((input.volumeId as unknown[]) ?? []).map((x) => v.volumeId(x));
  const { rows, nextToken } = list<VolumeRow>(
    'volume',
    scope,
    input,
    ids,
    (r) => r.volume_id,
    (req) => listVolumes(meta.db, req),
    (id) => new VbsError('InvalidVolume.NotFound', `The volume '${id}' does not exist.`),
  );
  const attachments = meta.attachmentsOf(rows.map((r) => r.volume_id));
  const tags = tagsOf(rows.map((r) => r.volume_id));
  return { volume: rows.map((r) => volumeRecord(r, attachments, tags)), nextToken };
}

export function describeSnapshots(meta: Metadata, scope: Scope, input: XmlRecord, tagsOf: (ids: string[]) => TagsOf = () => new Map()): XmlRecord {
  const ids = ((input.snapshotId as unknown[]) ?? []).map((x) => v.snapshotId(x));
  const { rows, nextToken } = list<SnapshotRow>(
    'snapshot',
    scope,
    input,
    ids,
    (r) => r.snapshot_id,
    (req) => listSnapshots(meta.db, req),
    (id) => new VbsError('InvalidSnapshot.NotFound', `The snapshot '${id}' does not exist.`),
  );
  const tags = tagsOf(rows.map((r) => r.snapshot_id));
  return { snapshot: rows.map((r) => snapshotRecord(r, tags)), nextToken };
}
