/**
 * What the metadata layer asks of a database: the part of better-sqlite3's
 * synchronous API that src/db and its callers use. SQLite (better-sqlite3
 * itself) and PostgreSQL (src/db/postgres.ts, a synchronous bridge to the
 * `pg` driver) both implement it, so the ~27 modules that read and write
 * metadata run unchanged on either, and so do the engine's rules that rest on
 * a transaction running without interleaving (claims, generations, quotas).
 *
 * SQL is written once, in SQLite's dialect with `?` and `@name` parameters;
 * the PostgreSQL engine translates it (src/db/sql-dialect.ts).
 */
export interface RunResult {
  /** Rows the statement inserted, updated or deleted. */
  changes: number;
  /** SQLite's rowid of the last insert; PostgreSQL has none (0): use RETURNING. */
  lastInsertRowid: number | bigint;
}

export interface Statement {
  run(...params: unknown[]): RunResult;
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}

/** A function that runs its body in a transaction; `.immediate()` takes the writer's lock first. */
export interface Transaction<T> {
  (): T;
  immediate(): T;
}

export interface Db {
  /** Which engine: the few places whose SQL or plan differs ask (EXPLAIN, backups). */
  readonly engine?: 'sqlite' | 'postgres';
  prepare(sql: string): Statement;
  exec(sql: string): unknown;
  transaction<T>(fn: () => T): Transaction<T>;
  /** A scalar SQL function computed in JavaScript (PostgreSQL: see src/db/postgres.ts). */
  function(name: string, options: { deterministic?: boolean }, fn: (arg: unknown) => unknown): unknown;
  close(): unknown;
}

/** The engine of a database (better-sqlite3's object has no `engine`: it is SQLite). */
export function engineOf(db: Db): 'sqlite' | 'postgres' {
  return db.engine ?? 'sqlite';
}

/**
 * Whether an insert failed because its key exists already, on either engine:
 * SQLite's SQLITE_CONSTRAINT_PRIMARYKEY/UNIQUE, PostgreSQL's 23505.
 */
export function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === '23505';
}
