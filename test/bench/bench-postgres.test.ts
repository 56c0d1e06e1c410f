import { expect, inject, it } from 'vitest';
import { benchPostgres } from '../../src/bench/bench-postgres.js';
import { openDatabase } from '../../src/db/database.js';
import { PostgresDb } from '../../src/db/postgres.js';

/**
 * The bench's PostgreSQL when one is given (`npm run bench -- --db URL`): a
 * schema of its own, the metadata made in it, dropped afterwards; the
 * password never in what the bench prints. On the run's cluster.
 */
it('a given PostgreSQL is measured in a schema of its own, removed afterwards, its password never shown', async () => {
  const given = inject('pgUrl').replace('postgres@', 'postgres:bench-pw-77@');
  const pg = await benchPostgres(given);
  expect(pg.about).not.toContain('bench-pw-77');
  const schema = /schema (vbs_bench_[0-9a-f]+)/.exec(pg.about)![1]!;
  const db = openDatabase(pg.url);
  db.close();
  const admin = new PostgresDb(given);
  const tables = () => (admin.prepare('SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = ?').get(schema) as { n: number }).n;
  try {
    expect(tables()).toBeGreaterThan(5);
    pg.remove();
    expect(tables()).toBe(0);
    expect(admin.prepare('SELECT 1 AS x FROM information_schema.schemata WHERE schema_name = ?').get(schema)).toBeUndefined();
  } finally {
    admin.close();
  }
  await expect(benchPostgres('mysql://x@y/z')).rejects.toThrow(/must be a postgres:\/\/ URL/);
});
