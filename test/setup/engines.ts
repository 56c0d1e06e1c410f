import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import type { Db } from '../../src/db/engine.js';
import { PostgresDb } from '../../src/db/postgres.js';

/**
 * The metadata engines a test runs on (issue 20): describe.each(ENGINES).
 * A fresh database is ':memory:' on SQLite, and on PostgreSQL a new schema in
 * the run's cluster (test/setup/postgres.ts), named by the URL's search_path.
 */
export const ENGINES = ['sqlite', 'postgres'] as const;
export type Engine = (typeof ENGINES)[number];

let admin: PostgresDb | undefined;

/** A URL of a new, empty PostgreSQL schema in the run's cluster. */
export function freshPostgresUrl(): string {
  admin ??= new PostgresDb(inject('pgUrl'));
  const schema = `t_${process.pid}_${randomBytes(6).toString('hex')}`;
  admin.exec(`CREATE SCHEMA ${schema}`);
  const url = new URL(inject('pgUrl'));
  url.searchParams.set('options', `-c search_path=${schema}`);
  return url.toString();
}

/** What openDatabase takes for a fresh database on this engine. */
export function freshDatabase(engine: Engine): string {
  return engine === 'sqlite' ? ':memory:' : freshPostgresUrl();
}

/**
 * Runs fn (an EXPLAIN) on PostgreSQL with sequential scans disabled: its plan
 * then shows a table scan only where no index can serve, whatever the table's
 * size. Only around the EXPLAIN: set for a whole connection it makes ordinary
 * writes (foreign-key and trigger queries) hundreds of times slower.
 */
export function withoutSeqScans<T>(db: Db, fn: () => T): T {
  db.exec('SET enable_seqscan = off');
  try {
    return fn();
  } finally {
    db.exec('RESET enable_seqscan');
  }
}
