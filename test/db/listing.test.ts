import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../../src/db/database.js';
import { ENGINES, freshDatabase, withoutSeqScans } from '../setup/engines.js';
import { listSnapshots, listVolumes, snapshotPageQuery, volumePageQuery, type ListRequest, type PageQuery } from '../../src/db/listing.js';
import { Metadata } from '../../src/db/metadata.js';
import { describeVolumes } from '../../src/front/describe.js';

/**
 * The listing queries on a real database, SQLite and PostgreSQL: what they
 * return, and that a page is found through an index (EXPLAIN QUERY PLAN;
 * PostgreSQL's EXPLAIN with sequential scans disabled, so a plan shows a
 * table scan only where no index serves), never by reading the whole table or
 * sorting it, so its cost does not grow with the table.
 */
describe.each(ENGINES)('on %s', (engine) => {
  let db: Db;
  const volId = (n: number) => `vol-${n.toString(16).padStart(17, '0')}`;
  const snapId = (n: number) => `snap-${n.toString(16).padStart(17, '0')}`;
  const at = (n: number) => new Date(Date.UTC(2026, 0, 1) + Math.floor(n / 2) * 1000).toISOString(); // two records per instant: ids break ties

  beforeAll(() => {
    db = openDatabase(freshDatabase(engine));
    const id = db.prepare('INSERT INTO ids (id, kind, created_at) VALUES (?, ?, ?)');
    const vol = db.prepare(`INSERT INTO volumes (volume_id, owner, size_gib, comment, snapshot_id, status, delegate, create_time) VALUES (?, ?, ?, ?, ?, ?, 'vd', ?)`);
    const snap = db.prepare(`INSERT INTO snapshots (snapshot_id, owner, volume_id, size_gib, comment, status, delegate, create_time) VALUES (?, ?, ?, 1, ?, ?, 'vd', ?)`);
    const att = db.prepare(`INSERT INTO attachments (volume_id, vmm_host, vm_id, device, mode, status, attach_time) VALUES (?, ?, ?, ?, 'r', ?, ?)`);
    db.transaction(() => {
      for (let n = 0; n < 60; n++) {
        id.run(volId(n), 'vol', at(n));
        vol.run(volId(n), n % 3 === 0 ? 'bob' : 'alice', 1 + (n % 4), n % 5 === 0 ? `web ${n}` : `db ${n}`, n % 7 === 0 ? snapId(0) : null, n % 2 ? 'available' : 'in-use', at(n));
        id.run(snapId(n), 'snap', at(n));
        snap.run(snapId(n), n % 3 === 0 ? 'bob' : 'alice', volId(n % 10), n % 5 === 0 ? `web ${n}` : `db ${n}`, n % 2 ? 'completed' : 'pending', at(n));
      }
      // Volume 2 on vm1@hosta (attached) and vm2@hostb (attaching); volume 4 on vm2@hosta.
      att.run(volId(2), 'hosta', 'vm1', 'xvdb', 'attached', at(2));
      att.run(volId(2), 'hostb', 'vm2', 'xvdb', 'attaching', at(2));
      att.run(volId(4), 'hosta', 'vm2', 'xvdc', 'attached', at(4));
    })();
  });

  afterAll(() => db.close());

  const alice = (filters: Record<string, (string | number)[]> = {}, extra: Partial<ListRequest> = {}): ListRequest => ({
    owner: 'alice',
    filters: new Map(Object.entries(filters)),
    ...extra,
  });
  const vols = (req: ListRequest) => listVolumes(db, req).map((r) => Number.parseInt(r.volume_id.slice(4), 16));

  describe('listVolumes', () => {
    it('lists one owner\'s records in insertion order, a page at a time', () => {
      const all = vols(alice());
      expect(all).toEqual([...Array(60).keys()].filter((n) => n % 3 !== 0));
      const seen: number[] = [];
      let after: ListRequest['after'];
      for (;;) {
        const page = listVolumes(db, alice({}, { after, limit: 7 }));
        seen.push(...page.map((r) => Number.parseInt(r.volume_id.slice(4), 16)));
        if (page.length < 7) break;
        const last = page[page.length - 1]!;
        after = { seq: last.page_seq };
      }
      expect(seen).toEqual(all);
    });

    it('ORs the values of a filter and ANDs the filters', () => {
      expect(vols(alice({ status: ['available'], size: [2, 4] }))).toEqual([...Array(60).keys()].filter((n) => n % 3 !== 0 && n % 2 === 1 && [2, 4].includes(1 + (n % 4))));
      expect(vols(alice({ commentPrefix: ['web', 'db 1'] }))).toEqual([...Array(60).keys()].filter((n) => n % 3 !== 0 && (n % 5 === 0 || String(n).startsWith('1'))));
      expect(vols(alice({ snapshotId: [snapId(0)] }))).toEqual([...Array(60).keys()].filter((n) => n % 3 !== 0 && n % 7 === 0));
      expect(vols({ filters: new Map([['owner', ['bob']], ['status', ['in-use']]]) })).toEqual([...Array(60).keys()].filter((n) => n % 3 === 0 && n % 2 === 0));
    });

    it('matches the attachment filters on one attachment together', () => {
      expect(vols(alice({ 'attachment.vmmHost': ['hosta'] }))).toEqual([2, 4]);
      expect(vols(alice({ 'attachment.vmId': ['vm2'] }))).toEqual([2, 4]);
      expect(vols(alice({ 'attachment.vmmHost': ['hosta'], 'attachment.vmId': ['vm2'] }))).toEqual([4]);
      expect(vols(alice({ 'attachment.status': ['attaching'] }))).toEqual([2]);
      expect(vols(alice({ 'attachment.vmmHost': ['hosta'], 'attachment.status': ['attaching'] }))).toEqual([]);
    });

    it('names ids within the owner\'s scope', () => {
      expect(vols(alice({}, { ids: [volId(1), volId(3), volId(5)] }))).toEqual([1, 5]);
    });
  });

  describe('listSnapshots', () => {
    it('filters by status, volume and comment prefix', () => {
      const got = listSnapshots(db, alice({ status: ['completed'], volumeId: [volId(5), volId(7)], commentPrefix: ['db'] })).map((r) => r.snapshot_id);
      expect(got).toEqual([...Array(60).keys()].filter((n) => n % 3 !== 0 && n % 2 === 1 && [5, 7].includes(n % 10) && n % 5 !== 0).map(snapId));
    });
  });

  function plan(q: PageQuery): string[] {
    // PostgreSQL: a table this small is cheaper to scan; the plans ask whether an index serves.
    if (engine === 'postgres') return withoutSeqScans(db, () => db.prepare(`EXPLAIN ${q.sql}`).all(...q.params) as { 'QUERY PLAN': string }[]).map((r) => r['QUERY PLAN']);
    return (db.prepare(`EXPLAIN QUERY PLAN ${q.sql}`).all(...q.params) as { detail: string }[]).map((r) => r.detail);
  }

  /**
   * Found through an index, read in index order: no table scan, no sort of
   * everything that matched. On PostgreSQL (sequential scans disabled, tables
   * this small): no table is scanned where an index could serve; its planner
   * may still sort a few rows rather than read an index in order, a choice it
   * makes by the table's size, so the sort is checked on SQLite only.
   */
  function expectIndexedPage(lines: string[], table: string): void {
    const text = lines.join('\n');
    if (engine === 'postgres') {
      expect(text).not.toMatch(/Seq Scan/);
      expect(text).toMatch(new RegExp(`(Index (Only )?Scan (Backward )?using \\w+ on ${table}\\b|Bitmap Heap Scan on ${table}\\b)`));
      return;
    }
    expect(text).not.toMatch(new RegExp(`SCAN ${table}(?! USING (COVERING )?INDEX)`));
    expect(text).not.toMatch(/TEMP B-TREE/);
    expect(lines.some((l) => new RegExp(`(SEARCH|SCAN) ${table} USING (COVERING )?INDEX`).test(l))).toBe(true);
  }

  /** The plan reads `table` through an index: on SQLite the one `sqlite` names, on PostgreSQL one `postgres` matches. */
  function expectIndex(lines: string[], table: string, sqlite: RegExp, postgres: string): void {
    expect(lines.join('\n')).toMatch(engine === 'postgres' ? new RegExp(`Index (Only )?Scan (Backward )?using ${postgres} on ${table}\\b`) : sqlite);
  }

  describe('query plans', () => {
    const after = { seq: 21 }; // volume 10: volumes and snapshots were inserted in turn

    it('a page of one owner\'s volumes is a search of its owner index, first page or later', () => {
      for (const req of [alice({}, { limit: 1001 }), alice({}, { after, limit: 1001 })]) {
        const lines = plan(volumePageQuery(req));
        expectIndexedPage(lines, 'volumes');
        expectIndex(lines, 'volumes', /SEARCH volumes USING INDEX volumes_owner_page \(owner=\?/, 'volumes_owner_page');
        if (engine === 'postgres') expect(lines.join('\n')).not.toMatch(/Sort/);
      }
    });

    it('filters by status, for one owner or everyone, use an index', () => {
      expectIndexedPage(plan(volumePageQuery(alice({ status: ['available'] }, { after, limit: 1001 }))), 'volumes');
      const all = plan(volumePageQuery({ filters: new Map([['status', ['available']]]), after, limit: 1001 }));
      expectIndexedPage(all, 'volumes');
      expectIndex(all, 'volumes', /SEARCH volumes USING INDEX volumes_status_page \(status=\?/, 'volumes_status_page');
    });

    it('everyone\'s volumes (administrators) and by owner filter use an index', () => {
      expectIndexedPage(plan(volumePageQuery({ filters: new Map(), after, limit: 1001 })), 'volumes');
      expectIndexedPage(plan(volumePageQuery({ filters: new Map([['owner', ['bob']]]), after, limit: 1001 })), 'volumes');
    });

    it('attachment filters look attachments up by volume', () => {
      const lines = plan(volumePageQuery(alice({ 'attachment.vmmHost': ['hosta'] }, { after, limit: 1001 })));
      expectIndexedPage(lines, 'volumes');
      expectIndex(lines, 'attachments a', /SEARCH a (EXISTS )?USING (COVERING )?INDEX sqlite_autoindex_attachments_1 \(volume_id=\?/, '\\w+');
      if (engine === 'postgres') expect(lines.join('\n')).not.toMatch(/Seq Scan/);
    });

    it('one id is a primary-key lookup', () => {
      expectIndex(plan(volumePageQuery(alice({}, { ids: [volId(1)] }))), 'volumes', /SEARCH volumes USING INDEX sqlite_autoindex_volumes_1 \(volume_id=\?\)/, '\\w+');
    });

    it('snapshot pages search their owner or status index', () => {
      // A user's page: one page of their own, read in order from the owner index,
      // merged with the snapshots shared with them (found by the share index).
      // What is sorted is at most a page of each, never the table.
      const mine = plan(snapshotPageQuery(alice({}, { after: { seq: 8 }, limit: 1001 })));
      if (engine === 'postgres') {
        expect(mine.join('\n')).not.toMatch(/Seq Scan on snapshots\b/);
        expectIndex(mine, 'snapshots', /$^/, 'snapshots_owner_page');
        expect(mine.join('\n')).toMatch(/(Index (Only )?Scan using|Bitmap Index Scan on) snapshot_shares_\w+/);
        expect(mine.join('\n')).not.toMatch(/Seq Scan/);
      } else {
        expect(mine.join('\n')).not.toMatch(/SCAN snapshots(?! USING (COVERING )?INDEX)/);
        expect(mine.join('\n')).toMatch(/SEARCH snapshots USING INDEX snapshots_owner_page \(owner=\? AND page_seq>\?\)/);
        expect(mine.join('\n')).toMatch(/SEARCH snapshot_shares USING (COVERING )?INDEX/);
      }
      expectIndexedPage(plan(snapshotPageQuery({ filters: new Map([['status', ['completed']]]), limit: 1001 })), 'snapshots');
    });
  });

  describe('pages that never skip (issue 16 item 9)', () => {
    /**
     * Pages continue after the last record's key. Keyed on the creation time,
     * a record inserted later in the same millisecond with a smaller id, or
     * inserted after the clock stepped back, sorted before the key and was
     * never shown. Through describeVolumes and its tokens, on a fresh database
     * whose rows are inserted with chosen creation times (the injected clock).
     */
    const T = '2026-06-01T12:00:00.500Z';
    let fresh: Db;
    let meta: Metadata;
    const insert = (n: number, createTime: string) => {
      fresh.prepare('INSERT INTO ids (id, kind, created_at) VALUES (?, ?, ?)').run(volId(n), 'vol', createTime);
      fresh
        .prepare(`INSERT INTO volumes (volume_id, owner, size_gib, comment, status, delegate, create_time) VALUES (?, 'alice', 1, '', 'available', 'vd', ?)`)
        .run(volId(n), createTime);
    };
    const page = (nextToken?: string) => {
      const out = describeVolumes(meta, { kind: 'owner', owner: 'alice' }, { maxResults: 5, ...(nextToken ? { nextToken } : {}) });
      return { ids: (out.volume as { volumeId: string }[]).map((v) => Number.parseInt(v.volumeId.slice(4), 16)), nextToken: out.nextToken as string | undefined };
    };

    beforeAll(() => {
      fresh = openDatabase(freshDatabase(engine));
      meta = new Metadata(fresh);
    });
    afterAll(() => fresh.close());

    it('shows a record made in the same millisecond with a smaller id, and one made after a clock step back, exactly once', () => {
      for (let n = 100; n < 110; n++) insert(n, T); // ten records in one millisecond
      const first = page();
      expect(first.ids).toHaveLength(5);
      insert(1, T); // same millisecond, smaller id than every record shown
      insert(2, '2026-06-01T11:00:00.000Z'); // the clock stepped back an hour
      const seen = [...first.ids];
      let token = first.nextToken;
      while (token) {
        const next = page(token);
        seen.push(...next.ids);
        token = next.nextToken;
      }
      expect([...seen].sort((a, b) => a - b)).toEqual([1, 2, ...Array.from({ length: 10 }, (_, i) => 100 + i)]);
      expect(new Set(seen).size).toBe(seen.length);
    });
  });
});
