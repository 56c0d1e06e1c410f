import { createHash } from 'node:crypto';
import { VbsError } from '../core/errors.js';
import { ATTACHMENT_STATES, SNAPSHOT_STATES, VOLUME_STATES } from '../core/states.js';
import * as v from '../core/validate.js';
import type { PageKey } from '../db/listing.js';
import { MODIFICATION_STATES } from '../db/modifications.js';
import type { OwnerScope } from '../db/metadata.js';
import { parseFilterValue, Wildcard, type FilterValue } from '../core/wildcard.js';

/**
 * The paging and filter parameters of DescribeVolumes and DescribeSnapshots,
 * as EC2 has them: `maxResults` (5-1000), an opaque `nextToken`, and repeated
 * `filter` elements, each a name and one or more values (values of one filter
 * ORed, filters ANDed). Everything is validated here, before any query runs.
 */

export const MIN_RESULTS = 5;
export const MAX_RESULTS = 1000;
/** Values one filter may carry: bounds the SQL a request can make. */
export const MAX_FILTER_VALUES = 100;
const MAX_TOKEN_CHARS = 512;

/** Which records a caller may list: its own (and snapshots shared with it), or (administrators) everyone's. */
export type Scope = OwnerScope;

export type ListKind = 'volume' | 'snapshot' | 'tag' | 'modification';

/** Filter name → its values (ORed), validated and normalized: exact values, or EC2 wildcard patterns. */
export type Filters = ReadonlyMap<string, readonly FilterValue[]>;

type ValueCheck = (value: unknown, param: string) => string | number;

const oneOf =
  (allowed: readonly string[]): ValueCheck =>
  (value, param) => {
    if (typeof value !== 'string' || !allowed.includes(value)) {
      throw new VbsError('InvalidParameterValue', `Value for parameter ${param} is invalid: expected one of ${allowed.join(', ')}.`);
    }
    return value;
  };

/** A certificate common name: what VBS stores as a record's owner. */
const ownerName: ValueCheck = (value, param) => {
  const s = v.requireString(param, value);
  // eslint-disable-next-line no-control-regex
  if (s.length > 64 || /[\x00-\x1f\x7f]/.test(s)) throw new VbsError('InvalidParameterValue', `Value for parameter ${param} is invalid: expected an owner name.`);
  return s;
};

/** The filters each listing accepts, and how each value is checked. */
export const FILTERS: Readonly<Record<ListKind, Readonly<Record<string, ValueCheck>>>> = {
  volume: {
    status: oneOf(VOLUME_STATES),
    size: (x, p) => v.sizeGiB(x, p),
    snapshotId: (x, p) => v.snapshotId(x, p),
    'attachment.vmmHost': (x, p) => v.hostName(x, p),
    'attachment.vmId': (x, p) => v.vmId(x, p),
    'attachment.status': oneOf(ATTACHMENT_STATES),
    owner: ownerName,
    commentPrefix: (x, p) => v.comment(x, p),
    // Issue 18: EC2's other volume filters, and tags (tag:KEY, below).
    volumeId: (x, p) => v.volumeId(x, p),
    availabilityZone: (x, p) => v.zoneName(x, p),
    'attachment.instanceId': (x, p) => v.requireString(p, x),
    'attachment.device': (x, p) => v.device(x, p),
    tagKey: (x, p) => v.tagKey(x, p),
  },
  // DescribeVolumesModifications (EC2's modification-state, volume-id, original-size, target-size).
  modification: {
    modificationState: oneOf(MODIFICATION_STATES),
    volumeId: (x, p) => v.volumeId(x, p),
    originalSize: (x, p) => v.sizeGiB(x, p),
    targetSize: (x, p) => v.sizeGiB(x, p),
    owner: ownerName,
  },
  snapshot: {
    status: oneOf(SNAPSHOT_STATES),
    volumeId: (x, p) => v.volumeId(x, p),
    owner: ownerName,
    commentPrefix: (x, p) => v.comment(x, p),
    snapshotId: (x, p) => v.snapshotId(x, p),
    size: (x, p) => v.sizeGiB(x, p),
    tagKey: (x, p) => v.tagKey(x, p),
    // EC2's description filter: the whole comment (commentPrefix: its start), with wildcards.
    comment: (x, p) => v.comment(x, p),
  },
  tag: {
    key: (x, p) => v.tagKey(x, p),
    value: (x, p) => v.tagValue(x, p),
    resourceId: (x, p) => v.resourceId(x, p),
    resourceType: oneOf(['volume', 'snapshot']),
  },
};

/** `tag:KEY` filters a listing by a tag's value (volumes and snapshots). */
export const TAG_FILTER_PREFIX = 'tag:';

/**
 * The filters whose values may hold EC2's wildcards (src/core/wildcard.ts):
 * those whose values are text, as EC2 has them. Sizes are numbers, and
 * commentPrefix and the tags' resourceType are matched otherwise; their
 * values are exact. `tag:KEY` values take wildcards too.
 */
export const WILDCARD_FILTERS: Readonly<Record<ListKind, ReadonlySet<string>>> = {
  volume: new Set(['status', 'snapshotId', 'attachment.vmmHost', 'attachment.vmId', 'attachment.status', 'owner', 'volumeId', 'availabilityZone', 'attachment.instanceId', 'attachment.device', 'tagKey']),
  // DescribeVolumesModifications matches exactly (src/db/modifications.ts binds each list as JSON).
  modification: new Set(),
  snapshot: new Set(['status', 'volumeId', 'owner', 'snapshotId', 'tagKey', 'comment']),
  tag: new Set(['key', 'value', 'resourceId']),
};

/**
 * The `filter` elements of a request. An unknown name, a filter without
 * values, too many values or the same name twice (put its values in one
 * filter) is InvalidParameterValue. `owner` is for administrators (scope
 * 'all'); anyone else naming it gets UnauthorizedOperation rather than a
 * filter that silently means nothing.
 */
export function parseFilters(kind: ListKind, raw: unknown, scope: Scope): Filters {
  const specs = FILTERS[kind];
  const out = new Map<string, FilterValue[]>();
  for (const f of Array.isArray(raw) ? raw : []) {
    const { name, value } = (f ?? {}) as { name?: unknown; value?: unknown };
    const byTag = kind !== 'tag' && typeof name === 'string' && name.startsWith(TAG_FILTER_PREFIX);
    if (byTag) v.tagKey(name.slice(TAG_FILTER_PREFIX.length), `filter ${name.slice(0, 64)}`);
    if (typeof name !== 'string' || (!byTag && !Object.hasOwn(specs, name))) {
      const shown = typeof name === 'string' ? `'${name.slice(0, 64)}'` : 'without a name';
      throw new VbsError('InvalidParameterValue', `The filter ${shown} is not valid for ${kind}s; valid filters: ${Object.keys(specs).join(', ')}.`);
    }
    if (out.has(name)) throw new VbsError('InvalidParameterValue', `The filter '${name}' is given twice; put all its values in one filter.`);
    const values = Array.isArray(value) ? value : [];
    if (values.length === 0) throw new VbsError('InvalidParameterValue', `The filter '${name}' needs at least one value.`);
    if (values.length > MAX_FILTER_VALUES) throw new VbsError('InvalidParameterValue', `The filter '${name}' has more than ${MAX_FILTER_VALUES} values.`);
    const check = byTag ? (x: unknown, p: string) => v.tagValue(x, p) : specs[name]!;
    const wildcards = byTag || WILDCARD_FILTERS[kind].has(name);
    const param = `filter ${name.slice(0, 64)}`;
    // An exact value is checked as the field's values are; a pattern only for its own bounds.
    const parsed = values.map((x): FilterValue => {
      const value = wildcards && typeof x === 'string' ? parseFilterValue(x, param) : x;
      return value instanceof Wildcard ? value : check(value, param);
    });
    // A user may name themselves (EC2's OwnerId self); anyone else's records are administrators' business.
    if (name === 'owner' && scope.kind !== 'all' && parsed.some((x) => x !== scope.owner)) throw new VbsError('UnauthorizedOperation', 'Only VBS administrators may filter by owner.');
    out.set(name, [...new Map(parsed.map((x) => [String(x), x])).values()]);
  }
  return out;
}

/** maxResults: absent (everything), or 5-1000. */
export function parseMaxResults(raw: unknown): number | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < MIN_RESULTS || raw > MAX_RESULTS) {
    throw new VbsError('InvalidParameterValue', `Value for parameter maxResults is invalid: expected a whole number from ${MIN_RESULTS} to ${MAX_RESULTS}.`);
  }
  return raw;
}

// --- the page token -----------------------------------------------------------
//
// A token is base64url of {"v":2,"k":kind,"f":filtersHash,"s":seq}: the
// insertion number of the last record returned (pages are in insertion order,
// keyset pagination; version 1 keyed on the creation time and could skip), so
// it stays valid while records are added (they come after it, whatever the
// clock says) or deleted (they are simply not there). The hash binds it to the
// filters it was made with: reused with other filters it is refused rather
// than giving a page of a different listing. It carries nothing secret: the
// caller's own scope still applies to every page.

const TOKEN_VERSION = 2;

/** What a token is bound to: the kind of listing and its filters, in a canonical order. */
export function filtersHash(kind: ListKind, filters: Filters): string {
  const canonical = [...filters.entries()]
    .map(([name, values]) => [name, [...values].map(String).sort()] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return createHash('sha256').update(JSON.stringify([kind, canonical])).digest('base64url').slice(0, 16);
}

export function encodeToken(kind: ListKind, hash: string, key: PageKey): string {
  return Buffer.from(JSON.stringify({ v: TOKEN_VERSION, k: kind, f: hash, s: key.seq })).toString('base64url');
}

/** The key a token continues after; anything garbled, or made for another listing, is InvalidParameterValue. */
export function decodeToken(token: unknown, kind: ListKind, hash: string): PageKey {
  const bad = (why: string) => new VbsError('InvalidParameterValue', `Value for parameter nextToken is invalid: ${why}.`);
  if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_CHARS || !/^[A-Za-z0-9_-]+$/.test(token)) {
    throw bad('not a token this service issued');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw bad('not a token this service issued');
  }
  const t = parsed as { v?: unknown; k?: unknown; f?: unknown; s?: unknown } | null;
  if (!t || typeof t !== 'object' || t.v !== TOKEN_VERSION || typeof t.s !== 'number' || !Number.isSafeInteger(t.s) || t.s < 0) {
    throw bad('not a token this service issued');
  }
  if (t.k !== kind) throw bad(`it was issued for another listing than ${kind}s`);
  if (t.f !== hash) throw bad('it was issued with other filters; repeat the filters of the first request');
  return { seq: t.s };
}
