import { Wildcard, type FilterValue } from '../core/wildcard.js';
import type { Db } from './database.js';
import type { SnapshotRow, VolumeRow } from './metadata.js';

/**
 * Where a page starts: after the record with this insertion number
 * (page_seq, see the page-sequence migration). Insertion order is a total
 * order no clock can disturb: a record made later always comes after the key,
 * whatever its creation time says.
 */
export interface PageKey {
  readonly seq: number;
}

/** One listing request, already validated (src/front/query.ts). */
export interface ListRequest {
  /** Only this owner's records; undefined: everyone's (administrators). */
  readonly owner?: string;
  /** Only these ids (DescribeVolumes with ids). */
  readonly ids?: readonly string[];
  /** Filter name → values: ORed within a filter, filters ANDed. */
  readonly filters: ReadonlyMap<string, readonly FilterValue[]>;
  readonly after?: PageKey;
  /** At most this many rows; undefined: all. */
  readonly limit?: number;
}

/** A piece of a WHERE clause with its parameters. */
interface Condition {
  readonly sql: string;
  readonly params: readonly (string | number)[];
}

const placeholders = (n: number) => Array.from({ length: n }, () => '?').join(', ');
const inList = (column: string, values: readonly (string | number)[]): Condition => ({ sql: `${column} IN (${placeholders(values.length)})`, params: values });

/**
 * The column is one of the values: the exact ones by IN (an index serves it),
 * EC2 wildcard patterns (src/core/wildcard.ts) each by GLOB, with the pattern
 * as a parameter.
 */
export function matchesAny(column: string, values: readonly FilterValue[]): Condition {
  const exact = values.filter((x): x is string | number => !(x instanceof Wildcard));
  const patterns = values.filter((x): x is Wildcard => x instanceof Wildcard);
  const parts: Condition[] = [
    ...(exact.length ? [inList(column, exact)] : []),
    ...patterns.map((p): Condition => ({ sql: `${column} GLOB ?`, params: [p.glob] })),
  ];
  if (parts.length === 1) return parts[0]!;
  return { sql: `(${parts.map((p) => p.sql).join(' OR ')})`, params: parts.flatMap((p) => p.params) };
}
/** instr(...) = 1: a plain prefix test, no LIKE wildcards to escape, and the same in characters as JavaScript's. */
const anyPrefix = (column: string, prefixes: readonly FilterValue[]): Condition => ({
  sql: `(${prefixes.map(() => `instr(${column}, ?) = 1`).join(' OR ')})`,
  params: prefixes.map(String),
});

/** The attachment filters match one attachment together: "attached to vm1 on host A", not vm1 anywhere and anything on A. */
function attachmentCondition(filters: ListRequest['filters']): Condition | undefined {
  const parts: Condition[] = [];
  const host = filters.get('attachment.vmmHost');
  const vm = filters.get('attachment.vmId');
  const status = filters.get('attachment.status');
  if (host) parts.push(matchesAny('a.vmm_host', host));
  if (vm) parts.push(matchesAny('a.vm_id', vm));
  if (status) parts.push(matchesAny('a.status', status));
  const instance = filters.get('attachment.instanceId');
  const device = filters.get('attachment.device');
  if (instance) parts.push(matchesAny('a.instance_id', instance));
  if (device) parts.push(matchesAny('a.device', device));
  if (!parts.length) return undefined;
  return {
    sql: `EXISTS (SELECT 1 FROM attachments a WHERE a.volume_id = volumes.volume_id AND ${parts.map((p) => p.sql).join(' AND ')})`,
    params: parts.flatMap((p) => p.params),
  };
}

/** The filter name → column of a table, for the filters that are a plain IN list. */
const VOLUME_COLUMNS: Readonly<Record<string, string>> = {
  status: 'status',
  size: 'size_gib',
  snapshotId: 'snapshot_id',
  owner: 'owner',
  volumeId: 'volume_id',
  availabilityZone: 'availability_zone',
};
const SNAPSHOT_COLUMNS: Readonly<Record<string, string>> = { status: 'status', volumeId: 'volume_id', owner: 'owner', snapshotId: 'snapshot_id', size: 'size_gib', comment: 'comment' };

/** Tag filters (issue 18): `tag:KEY` (the tag has one of the values) and `tagKey` (any value), each one EXISTS on the tags' primary key. */
function tagConditions(idColumn: string, filters: ListRequest['filters']): Condition[] {
  const out: Condition[] = [];
  for (const [name, values] of filters) {
    if (name === 'tagKey') {
      const key = matchesAny('t.key', values);
      out.push({ sql: `EXISTS (SELECT 1 FROM tags t WHERE t.resource_id = ${idColumn} AND ${key.sql})`, params: key.params });
    } else if (name.startsWith('tag:')) {
      const value = matchesAny('t.value', values);
      out.push({
        sql: `EXISTS (SELECT 1 FROM tags t WHERE t.resource_id = ${idColumn} AND t.key = ? AND ${value.sql})`,
        params: [name.slice('tag:'.length), ...value.params],
      });
    }
  }
  return out;
}

/** A query and its parameters: what listVolumes and listSnapshots run (the tests EXPLAIN it). */
export interface PageQuery {
  readonly sql: string;
  readonly params: readonly (string | number)[];
}

/**
 * One page in insertion (page_seq) order, keyset-paginated: the indexes on
 * (owner, page_seq), (page_seq) and (status, page_seq) (the page-sequence
 * migration) find the first row and read on in order, so a page costs the
 * same with a thousand records or a million.
 */
function pageQuery(
  table: 'volumes' | 'snapshots',
  idColumn: string,
  columns: Readonly<Record<string, string>>,
  req: ListRequest,
  extra: Condition[],
  ownedBy: (owner: string) => readonly Condition[] = (owner) => [{ sql: 'owner = ?', params: [owner] }],
): PageQuery {
  const where: Condition[] = [];
  if (req.ids) where.push(inList(idColumn, req.ids));
  for (const [name, values] of req.filters) {
    const column = columns[name];
    if (column) where.push(matchesAny(column, values));
  }
  const prefixes = req.filters.get('commentPrefix');
  if (prefixes) where.push(anyPrefix('comment', prefixes));
  where.push(...extra);
  if (req.after) where.push({ sql: 'page_seq > ?', params: [req.after.seq] });
  const order = ' ORDER BY page_seq';
  const limit: Condition = req.limit !== undefined ? { sql: ' LIMIT ?', params: [req.limit] } : { sql: '', params: [] };
  const select = (conditions: readonly Condition[]): PageQuery => ({
    sql: `SELECT * FROM ${table}` + (conditions.length ? ` WHERE ${conditions.map((c) => c.sql).join(' AND ')}` : '') + order + limit.sql,
    params: [...conditions.flatMap((c) => c.params), ...limit.params],
  });
  const alternatives = req.owner === undefined ? [] : ownedBy(req.owner);
  if (alternatives.length <= 1) return select([...alternatives, ...where]);
  // Records reached in more than one way (a user's own, and those shared
  // with them): one page of each, each read in order from its own index,
  // then merged. An OR in one WHERE would sort every match before the LIMIT.
  const parts = alternatives.map((alt) => select([alt, ...where]));
  return {
    sql: parts.map((q) => `SELECT * FROM (${q.sql}) AS part`).join(' UNION ') + order + limit.sql,
    params: [...parts.flatMap((q) => q.params), ...limit.params],
  };
}

export function volumePageQuery(req: ListRequest): PageQuery {
  const attached = attachmentCondition(req.filters);
  return pageQuery('volumes', 'volume_id', VOLUME_COLUMNS, req, [...(attached ? [attached] : []), ...tagConditions('volumes.volume_id', req.filters)]);
}

/** A user's snapshots are theirs and those shared with them (snapshot_shares). */
const ownedOrSharedWith = (user: string): readonly Condition[] => [
  { sql: 'owner = ?', params: [user] },
  { sql: 'snapshot_id IN (SELECT snapshot_id FROM snapshot_shares WHERE user = ?)', params: [user] },
];

export function snapshotPageQuery(req: ListRequest): PageQuery {
  return pageQuery('snapshots', 'snapshot_id', SNAPSHOT_COLUMNS, req, tagConditions('snapshots.snapshot_id', req.filters), ownedOrSharedWith);
}

export function listVolumes(db: Db, req: ListRequest): VolumeRow[] {
  const q = volumePageQuery(req);
  return db.prepare(q.sql).all(...q.params) as VolumeRow[];
}

export function listSnapshots(db: Db, req: ListRequest): SnapshotRow[] {
  const q = snapshotPageQuery(req);
  return db.prepare(q.sql).all(...q.params) as SnapshotRow[];
}
