import { VbsError } from '../core/errors.js';
import * as v from '../core/validate.js';
import { writeTx } from '../db/database.js';
import type { Metadata } from '../db/metadata.js';
import type { Tag, TagStore, TagToDelete } from '../db/tags.js';
import type { CallContext } from '../soap/server.js';
import type { Record as XmlRecord } from '../soap/xml.js';
import type { Access } from './access.js';
import { decodeToken, encodeToken, filtersHash, parseFilters, parseMaxResults } from './query.js';
import type { TagsOf } from './records.js';
import type { Zones } from './zones.js';

/** Resources one CreateTags or DeleteTags may name (EC2's limit). */
const MAX_RESOURCES = 1000;

/**
 * Tags and zones as operations (issue 18), for SOAP and EC2 alike: CreateTags,
 * DeleteTags, DescribeTags and DescribeAvailabilityZones. A user tags their
 * own volumes and snapshots only (someone else's is NotFound, as everywhere);
 * an administrator any. Creates take tags too (`tag` of CreateVolume and
 * CreateSnapshot, EC2's TagSpecification), written in their transaction.
 */
export class ResourceTags {
  constructor(
    private readonly meta: Metadata,
    private readonly store: TagStore,
    private readonly access: Access,
    private readonly zones: Zones,
  ) {}

  of(ids: readonly string[]): TagsOf {
    return this.store.of(ids);
  }

  /** Validates a request's `tag` list: keys once each, at most 50. */
  parse(raw: unknown): Tag[] {
    const list = Array.isArray(raw) ? (raw as XmlRecord[]) : [];
    if (list.length > v.MAX_TAGS_PER_RESOURCE) throw new VbsError('TagLimitExceeded', `A resource holds at most ${v.MAX_TAGS_PER_RESOURCE} tags.`);
    const seen = new Set<string>();
    return list.map((t) => {
      const key = v.tagKey(t?.key, 'tag key');
      if (seen.has(key)) throw new VbsError('InvalidParameterValue', `The tag key '${key}' is given twice.`);
      seen.add(key);
      return { key, value: v.tagValue(t?.value, 'tag value') };
    });
  }

  /** Tags of a record being created (in its transaction). */
  putNew(resourceId: string, tags: readonly Tag[]): void {
    if (tags.length) this.store.put(resourceId, tags);
  }

  create(input: XmlRecord, ctx: CallContext): XmlRecord {
    const ids = this.resourceIds(input.resourceId);
    const tags = this.parse(input.tag);
    if (!tags.length) throw new VbsError('MissingParameter', 'The request must contain the parameter tag.');
    writeTx(this.meta.db, () => {
      for (const id of ids) {
        this.mayTag(id, ctx);
        if (this.store.countAfter(id, tags) > v.MAX_TAGS_PER_RESOURCE) {
          throw new VbsError('TagLimitExceeded', `The resource '${id}' would hold more than ${v.MAX_TAGS_PER_RESOURCE} tags.`);
        }
        this.store.put(id, tags);
      }
    });
    return { return: true };
  }

  remove(input: XmlRecord, ctx: CallContext): XmlRecord {
    const ids = this.resourceIds(input.resourceId);
    const raw = Array.isArray(input.tag) ? (input.tag as XmlRecord[]) : [];
    const tags: TagToDelete[] | undefined = raw.length
      ? raw.map((t) => ({ key: v.tagKey(t?.key, 'tag key'), ...(t?.value === undefined || t.value === null ? {} : { value: v.tagValue(t.value, 'tag value') }) }))
      : undefined;
    writeTx(this.meta.db, () => {
      for (const id of ids) {
        this.mayTag(id, ctx);
        this.store.remove(id, tags);
      }
    });
    return { return: true };
  }

  /** The tags in the caller's scope, filtered (key, value, resourceId, resourceType), all or in pages. */
  describe(input: XmlRecord, ctx: CallContext): XmlRecord {
    const scope = this.access.describeScope(ctx);
    const filters = parseFilters('tag', input.filter, scope);
    const maxResults = parseMaxResults(input.maxResults);
    const hash = filtersHash('tag', filters);
    const after = input.nextToken === undefined ? undefined : decodeToken(input.nextToken, 'tag', hash).seq;
    const rows = this.store.list({
      scope,
      keys: filters.get('key'),
      values: filters.get('value'),
      resourceIds: filters.get('resourceId'),
      resourceTypes: filters.get('resourceType')?.map(String) as ('volume' | 'snapshot')[] | undefined,
      after,
      limit: maxResults === undefined ? undefined : maxResults + 1,
    });
    const page = maxResults === undefined ? rows : rows.slice(0, maxResults);
    const nextToken = maxResults !== undefined && rows.length > maxResults ? encodeToken('tag', hash, { seq: page.at(-1)!.seq }) : undefined;
    return {
      tag: page.map((r) => ({ resourceId: r.resource_id, resourceType: r.resource_id.startsWith('vol-') ? 'volume' : 'snapshot', key: r.key, value: r.value })),
      nextToken,
    };
  }

  /** The zones, or those named (an unknown name is InvalidParameterValue). */
  describeZones(input: XmlRecord): XmlRecord {
    const asked = (Array.isArray(input.zoneName) ? input.zoneName : []).map((z) => this.zones.known(v.zoneName(z, 'zoneName')));
    const names = asked.length ? this.zones.names().filter((n) => asked.includes(n)) : this.zones.names();
    return { zone: this.zones.status(names).map((z) => ({ zoneName: z.zoneName, state: z.state, regionName: this.zones.region, message: [...z.messages] })) };
  }

  private resourceIds(raw: unknown): string[] {
    const list = Array.isArray(raw) ? raw : raw === undefined ? [] : [raw];
    if (!list.length) throw new VbsError('MissingParameter', 'The request must contain the parameter resourceId.');
    if (list.length > MAX_RESOURCES) throw new VbsError('InvalidParameterValue', `At most ${MAX_RESOURCES} resources may be named at once.`);
    return [...new Set(list.map((x) => v.resourceId(x)))];
  }

  /** The caller's own volume or snapshot (an administrator: anyone's); otherwise NotFound (shared snapshots: UnauthorizedOperation). */
  private mayTag(id: string, ctx: CallContext): void {
    if (id.startsWith('vol-')) this.access.volume(id, ctx);
    else this.access.snapshotToManage(id, ctx);
  }
}
