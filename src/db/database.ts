import Database from 'better-sqlite3';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { nowIso } from '../core/clock.js';
import type { Db } from './engine.js';
import { MIGRATIONS, POSTGRES_ADDITIONS } from './migrations.js';
import { isPostgresUrl, migratePostgres, PostgresDb, type PostgresOptions } from './postgres.js';

export type { Db } from './engine.js';

/**
 * Opens the metadata database: WAL so readers never block the writer, a busy
 * timeout so concurrent writers queue instead of failing, foreign keys on,
 * and pending migrations applied in one transaction each.
 *
 * synchronous = FULL: every commit is on the disk before it returns, so a
 * workflow's journal entry is durable before the external step it announces
 * runs (NORMAL, in WAL mode, may lose the last commits on power loss or an OS
 * crash: an LV made with no record of it). Measured on a loaded 2-core
 * machine: a create (5 small commits) took about 61 ms with FULL against
 * 12-17 ms with NORMAL, small beside the host commands it journals.
 */
export function openDatabase(file: string, options: PostgresOptions = {}): Db {
  if (isPostgresUrl(file)) return openPostgres(file, options);
  if (file !== ':memory:') {
    mkdirSync(dirname(file), { recursive: true });
    keepPrivate(file);
  }
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 10000');
  db.pragma('foreign_keys = ON');
  db.pragma('synchronous = FULL');
  migrate(db);
  reusePreparedStatements(db as unknown as Db);
  return db as unknown as Db;
}

/**
 * The metadata on PostgreSQL (`--db postgres://...`): the same interface and
 * migrations (src/db/postgres.ts). The URL may hold a password: it is never
 * logged (redactUrl).
 */
function openPostgres(url: string, options: PostgresOptions): Db {
  const db = new PostgresDb(url, options);
  try {
    migratePostgres(db, MIGRATIONS, POSTGRES_ADDITIONS);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

/** Distinct statement texts kept compiled; past it (listings build their SQL from filters) a text is compiled each time. */
export const MAX_CACHED_STATEMENTS = 512;

/**
 * better-sqlite3 compiles a statement on every `prepare()`, and the metadata
 * code prepares its fixed queries where it runs them (readable, but each
 * create prepared some twenty): a CPU profile of the front under load (the
 * bench's --profile, docs/operators/bench.md) showed compiling as about a
 * tenth of its time. A compiled statement is reused for the same text: it
 * holds no state between runs here (nothing calls iterate(), pluck(), raw()
 * or expand(), which would leave it busy or in another mode), and SQLite
 * compiles it again by itself if a migration changes the schema.
 */
function reusePreparedStatements(db: Db): void {
  const compile = db.prepare.bind(db);
  const compiled = new Map<string, ReturnType<Db['prepare']>>();
  db.prepare = ((source: string) => {
    let statement = compiled.get(source);
    if (statement === undefined) {
      statement = compile(source);
      if (compiled.size < MAX_CACHED_STATEMENTS) compiled.set(source, statement);
    }
    return statement;
  }) as Db['prepare'];
}

/**
 * The metadata holds each export's CHAP secret (src/core/chap.ts): only the
 * service's user may read it. SQLite makes its -wal and -shm files with the
 * database file's mode; those already there are narrowed too.
 */
function keepPrivate(file: string): void {
  if (!existsSync(file)) closeSync(openSync(file, 'a', 0o600));
  for (const f of [file, `${file}-wal`, `${file}-shm`]) {
    if (existsSync(f)) chmodSync(f, 0o600);
  }
}

function migrate(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`the database schema (version ${current}) is newer than this VBS (${MIGRATIONS.length})`);
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
}

/** Runs fn in a BEGIN IMMEDIATE transaction: deferred ones fail under concurrency. */
export function writeTx<T>(db: Db, fn: () => T): T {
  return db.transaction(fn).immediate();
}

/** The service's clock (src/core/clock.ts) as the database stores it: leases and retries compare against it. */
export function now(): string {
  return nowIso();
}
