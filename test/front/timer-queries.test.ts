import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/log.js';
import { openDatabase, writeTx, type Db } from '../../src/db/database.js';
import { Metadata } from '../../src/db/metadata.js';
import { DelegatePool } from '../../src/front/delegates.js';
import { CreationMonitor } from '../../src/front/monitor.js';
import { FrontWorkflows } from '../../src/front/workflows.js';
import { FakeDelegate } from '../workflows/fakes.js';
import { ENGINES, freshDatabase, withoutSeqScans } from '../setup/engines.js';

/**
 * Issue 10: with many finished volumes and snapshots in the metadata, what
 * runs on a timer (the creation monitor and the long-poll's look for work,
 * the retries of unfinished work) must touch only rows in non-final states,
 * through indexes. Every statement those paths prepare is captured and its
 * query plan read: none may scan a table of records or of the journal.
 */

describe.each(ENGINES)('on %s', (engine) => {
  let db: Db;
  let meta: Metadata;
  let storage: FakeDelegate;
  let monitor: CreationMonitor;
  let wf: FrontWorkflows;

  // PostgreSQL plans with sequential scans disabled (see plan()): a scan shows where no index serves, whatever the size.
  const FINISHED = engine === 'sqlite' ? 2_000 : 200;

  beforeAll(() => {
    db = openDatabase(freshDatabase(engine));
    meta = new Metadata(db);
    storage = new FakeDelegate();
    const pool = new DelegatePool(new Map([['local', storage]]), new Map([['localhost', new FakeDelegate()]]));
    wf = new FrontWorkflows(db, meta, pool, silentLogger);
    monitor = new CreationMonitor(meta, pool, silentLogger, 3_600_000);
    writeTx(db, () => {
      for (let i = 0; i < FINISHED; i++) {
        const vol = meta.reserveId('vol');
        meta.insertVolume({ volume_id: vol, owner: 'u', size_gib: 1, comment: '', snapshot_id: null, status: 'available', delegate: 'local' });
        const snap = meta.reserveId('snap');
        meta.insertSnapshot({ snapshot_id: snap, owner: 'u', volume_id: vol, size_gib: 1, comment: '', status: 'completed', delegate: 'local' });
      }
    });
  });

  afterAll(() => db?.close());

  /** The SQL of every statement `run` prepares. */
  async function statementsOf(run: () => Promise<unknown>): Promise<string[]> {
    const seen: string[] = [];
    const prepare = db.prepare.bind(db);
    db.prepare = ((sql: string) => {
      seen.push(sql);
      return prepare(sql);
    }) as typeof db.prepare;
    try {
      await run();
    } finally {
      db.prepare = prepare;
    }
    return [...new Set(seen)];
  }

  /** The query plan's lines for a statement, its parameters bound to NULL. */
  function plan(sql: string): string[] {
    const named = [...new Set([...sql.matchAll(/@(\w+)/g)].map((m) => m[1]!))];
    const stmt = db.prepare(`${engine === 'sqlite' ? 'EXPLAIN QUERY PLAN' : 'EXPLAIN'} ${sql}`);
    const explain = () => (named.length ? stmt.all(Object.fromEntries(named.map((n) => [n, null]))) : stmt.all(...Array<null>((sql.match(/\?/g) ?? []).length).fill(null)));
    const rows = engine === 'sqlite' ? explain() : withoutSeqScans(db, explain);
    return engine === 'sqlite' ? (rows as { detail: string }[]).map((r) => r.detail) : (rows as { 'QUERY PLAN': string }[]).map((r) => r['QUERY PLAN'].trim().replace(/^->\s*/, ''));
  }

  /**
   * Full scans of these tables only: leftovers holds nothing but unfinished
   * undos (a finished one is deleted), and json_each is a statement's own list.
   */
  const SMALL_BY_DESIGN = /^(SCAN (leftovers|json_each)\b|Seq Scan on leftovers\b)/;

  function fullScans(statements: string[]): string[] {
    const scan = (line: string) => (engine === 'sqlite' ? /^SCAN /.test(line) && !/USING (COVERING )?INDEX/.test(line) : /^Seq Scan on /.test(line));
    return statements.flatMap((sql) =>
      plan(sql)
        .filter((line) => scan(line) && !SMALL_BY_DESIGN.test(line))
        .map((line) => `${line}  <-  ${sql.replace(/\s+/g, ' ').slice(0, 120)}`),
    );
  }

  describe('timer-driven queries touch only rows in progress', () => {
    it('the creation monitor, the long-poll’s look for work and the retries of unfinished work use indexes', async () => {
      // Some work in progress, so every path does its work.
      const vol = meta.reserveId('vol');
      meta.insertVolume({ volume_id: vol, owner: 'u', size_gib: 1, comment: '', snapshot_id: null, status: 'creating', delegate: 'local' });
      storage.objects.set(vol, 'ready');
      const statements = await statementsOf(async () => {
        expect(monitor.hasWorkOn('local')).toBe(true);
        expect(monitor.delegatesWithWork()).toEqual(['local']);
        await monitor.pollOnce();
        await wf.engine.resume();
        await wf.engine.resume({ notDueToo: true });
      });
      expect(meta.volume(vol)?.status).toBe('available');
      expect(statements.length).toBeGreaterThan(3);
      expect(fullScans(statements)).toEqual([]);
    });
  });
});
