import type { FilterValue } from '../core/wildcard.js';
import type { Db } from './database.js';
import { matchesAny } from './listing.js';
import type { OwnerScope } from './metadata.js';

export interface Tag {
  readonly key: string;
  readonly value: string;
}

export interface TagRow extends Tag {
  readonly resource_id: string;
  /** The row's insertion number (rowid), kept when a value is replaced: pages of DescribeTags follow it. */
  readonly seq: number;
}

/** What DeleteTags names: a key (any value), or a key with the one value it must have. */
export interface TagToDelete {
  readonly key: string;
  readonly value?: string;
}

/** A page of DescribeTags, validated (src/front/tags.ts). */
export interface TagListRequest {
  readonly scope: OwnerScope;
  /** Exact values, or EC2 wildcard patterns (src/core/wildcard.ts). */
  readonly keys?: readonly FilterValue[];
  readonly values?: readonly FilterValue[];
  readonly resourceIds?: readonly FilterValue[];
  readonly resourceTypes?: readonly ('volume' | 'snapshot')[];
  readonly after?: number;
  readonly limit?: number;
}

/**
 * Tags on volumes and snapshots (EC2's CreateTags): at most one value per key
 * and resource; a resource's tags are deleted with it (triggers of the tags
 * migration). Callers check ownership and run writes in writeTx.
 */
export class TagStore {
  constructor(private readonly db: Db) {}

  /** Sets each key to its value (replacing a value keeps the tag's place in DescribeTags' pages). */
  put(resourceId: string, tags: readonly Tag[]): void {
    const stmt = this.db.prepare('INSERT INTO tags (resource_id, key, value) VALUES (?, ?, ?) ON CONFLICT (resource_id, key) DO UPDATE SET value = excluded.value');
    for (const t of tags) stmt.run(resourceId, t.key, t.value);
  }

  /** Keys the resource would have after put(tags): what the 50-tag limit is checked on. */
  countAfter(resourceId: string, tags: readonly Tag[]): number {
    const keys = new Set((this.db.prepare('SELECT key FROM tags WHERE resource_id = ?').all(resourceId) as { key: string }[]).map((r) => r.key));
    for (const t of tags) keys.add(t.key);
    return keys.size;
  }

  /** EC2's DeleteTags: no tags named, all of them; a key alone, whatever its value; a key and value, only when it has that value. */
  remove(resourceId: string, tags: readonly TagToDelete[] | undefined): void {
    if (!tags) {
      this.db.prepare('DELETE FROM tags WHERE resource_id = ?').run(resourceId);
      return;
    }
    const byKey = this.db.prepare('DELETE FROM tags WHERE resource_id = ? AND key = ?');
    const byValue = this.db.prepare('DELETE FROM tags WHERE resource_id = ? AND key = ? AND value = ?');
    for (const t of tags) (t.value === undefined ? byKey.run(resourceId, t.key) : byValue.run(resourceId, t.key, t.value));
  }

  /** The tags of these resources, by resource, in key order (one query). */
  of(resourceIds: readonly string[]): Map<string, Tag[]> {
    const out = new Map<string, Tag[]>();
    if (!resourceIds.length) return out;
    // Bounded by a page (1000) or a request's id list: within SQLite's parameter limit.
    const rows = this.db
      .prepare(`SELECT resource_id, key, value FROM tags WHERE resource_id IN (${resourceIds.map(() => '?').join(', ')}) ORDER BY resource_id, key`)
      .all(...resourceIds) as TagRow[];
    for (const r of rows) {
      const list = out.get(r.resource_id) ?? [];
      list.push({ key: r.key, value: r.value });
      out.set(r.resource_id, list);
    }
    return out;
  }

  /**
   * One page of the tags in scope (a user's: on their own volumes and
   * snapshots), in insertion order after `after`.
   */
  list(req: TagListRequest): TagRow[] {
    const where: string[] = [];
    const params: (string | number)[] = [];
    const among = (column: string, values: readonly FilterValue[] | undefined) => {
      if (!values) return;
      const c = matchesAny(column, values);
      where.push(c.sql);
      params.push(...c.params);
    };
    among('t.key', req.keys);
    among('t.value', req.values);
    among('t.resource_id', req.resourceIds);
    if (req.resourceTypes) {
      where.push(`(${req.resourceTypes.map(() => 'instr(t.resource_id, ?) = 1').join(' OR ')})`);
      params.push(...req.resourceTypes.map((t) => (t === 'volume' ? 'vol-' : 'snap-')));
    }
    if (req.scope.kind === 'owner') {
      where.push('(EXISTS (SELECT 1 FROM volumes v WHERE v.volume_id = t.resource_id AND v.owner = ?) OR EXISTS (SELECT 1 FROM snapshots s WHERE s.snapshot_id = t.resource_id AND s.owner = ?))');
      params.push(req.scope.owner, req.scope.owner);
    }
    if (req.after !== undefined) {
      where.push('t.rowid > ?');
      params.push(req.after);
    }
    const sql =
      'SELECT t.rowid AS seq, t.resource_id, t.key, t.value FROM tags t' +
      (where.length ? ` WHERE ${where.join(' AND ')}` : '') +
      ' ORDER BY t.rowid' +
      (req.limit !== undefined ? ' LIMIT ?' : '');
    return this.db.prepare(sql).all(...params, ...(req.limit !== undefined ? [req.limit] : [])) as TagRow[];
  }
}
