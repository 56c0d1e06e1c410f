import { createRequire } from 'node:module';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { VbsError } from '../core/errors.js';
import type { Db, RunResult, Statement, Transaction } from './engine.js';
import { PG_WORKER_SOURCE } from './pg-worker.js';
import { schemaOf } from './pg-dump.js';
import { bindParams, isNamedArgs, toPostgresMigration, toPostgresQuery, type PgQuery } from './sql-dialect.js';

/**
 * The metadata layer on PostgreSQL, behind the same synchronous interface as
 * better-sqlite3 (src/db/engine.ts), so no caller changes and the engine's
 * rules keep resting on transactions that run without interleaving.
 *
 * The bridge: a worker thread owns the `pg` connection. Each call posts its
 * query to the worker and blocks this thread with Atomics.wait on a shared flag
 * until the worker raises it, then reads the answer with receiveMessageOnPort
 * (the pattern of the synckit package, written here in a few lines). Every wait
 * has a deadline: a database that does not answer fails the call in bounded
 * time with ServiceUnavailable, and the worker (and its connection, so any open
 * transaction and lock with it) is replaced. The cost is one wait of this
 * event loop per round trip, about what a SQLite commit costs (see
 * docs/operators/postgresql.md and `npm run bench`).
 *
 * Writers are serialized across every front sharing the database, as SQLite
 * serializes them: each write transaction (writeTx, `.immediate()`) and each
 * write outside one first takes the transaction-scoped advisory lock
 * WRITER_LOCK. So a transaction that reads then writes (a quota checked in the
 * insert's transaction, a claim renewed, a generation taken) sees no other
 * writer between its statements, exactly as on SQLite, and the engine's rules
 * hold unchanged across fronts. Reads need no lock: a read transaction
 * (deferred, as SQLite's) is REPEATABLE READ, one snapshot throughout.
 */

/** pg_advisory_xact_lock's key for VBS's writers: any constant all fronts agree on ('VBS1'). */
export const WRITER_LOCK = 0x56425331;

export interface PostgresOptions {
  /** Longest wait for one round trip with the database; past it, ServiceUnavailable (default 15 s). */
  readonly callTimeoutMs?: number;
  /** PostgreSQL's statement_timeout and lock_timeout (default 10 s: SQLite's busy_timeout). */
  readonly statementTimeoutMs?: number;
  /** Longest wait for a connection (default 5 s). */
  readonly connectTimeoutMs?: number;
}

interface Answer {
  id: number;
  rows?: Record<string, unknown>[];
  rowCount?: number;
  error?: { message: string; code?: string; unavailable: boolean };
}

/** An error from PostgreSQL, its SQLSTATE as `code` (src/db/engine.ts isUniqueViolation reads it). */
export class PostgresError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
    this.name = 'PostgresError';
  }
}

const unavailable = () => new VbsError('ServiceUnavailable', 'The metadata database is not available; try again later.');

/** The URL without its password, for logs and messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}

export function isPostgresUrl(target: string): boolean {
  return /^postgres(ql)?:\/\//i.test(target);
}

/** A postgres:// URL that names a host and a database, with no control characters (it goes into a config file). */
export function validPostgresUrl(target: string): boolean {
  if (!isPostgresUrl(target) || target.length > 2048 || /[\x00-\x1f\x7f\s]/.test(target)) return false;
  try {
    const u = new URL(target);
    return u.hostname !== '' && /^\/[^/]+$/.test(u.pathname);
  } catch {
    return false;
  }
}

/**
 * How VBS's connections to one metadata database introduce themselves
 * (pg_stat_activity's application_name): `vbs`, or `vbs:SCHEMA` when the
 * URL's options put VBS's tables in a schema of their own. A restore looks
 * for other connections by this name to refuse while a front runs
 * (src/db/pg-backup.ts).
 */
export function applicationName(url: string): string {
  let schema: string | undefined;
  try {
    schema = schemaOf(url);
  } catch {
    schema = undefined; // a search path of several schemas: no name of its own
  }
  return schema ? `vbs:${schema}` : 'vbs';
}

/** The synchronous channel to the worker that owns the connection. */
class Bridge {
  private worker: Worker | undefined;
  private port: MessagePort | undefined;
  private flag = new Int32Array(new SharedArrayBuffer(4));
  private nextId = 0;
  /** This worker has answered since it started or lost its connection: its next call needs no connect. */
  private connected = false;
  private closed = false;
  private readonly pgPath = createRequire(import.meta.url).resolve('pg');

  constructor(
    private readonly url: string,
    private readonly o: Required<PostgresOptions>,
  ) {}

  private start(): MessagePort {
    if (this.closed) throw new TypeError('The database connection is not open');
    if (this.port) return this.port;
    const { port1, port2 } = new MessageChannel();
    this.flag = new Int32Array(new SharedArrayBuffer(4));
    this.worker = new Worker(PG_WORKER_SOURCE, {
      eval: true,
      workerData: {
        port: port2,
        flag: this.flag,
        url: this.url,
        pgPath: this.pgPath,
        lockKey: WRITER_LOCK,
        statementTimeoutMs: this.o.statementTimeoutMs,
        connectTimeoutMs: this.o.connectTimeoutMs,
        applicationName: applicationName(this.url),
      },
      transferList: [port2],
    });
    this.worker.unref();
    this.worker.on('error', () => this.stop());
    this.port = port1;
    return port1;
  }

  /** Drops the worker and its connection: PostgreSQL rolls back its transaction and frees its locks. */
  stop(): void {
    this.connected = false;
    const w = this.worker;
    this.worker = undefined;
    this.port?.close();
    this.port = undefined;
    if (w) void w.terminate();
  }

  /** Stops for good: a later call throws, as better-sqlite3's on a closed database. */
  close(): void {
    this.stop();
    this.closed = true;
  }

  call(req: Record<string, unknown>): { rows: Record<string, unknown>[]; rowCount: number } {
    const port = this.start();
    const id = ++this.nextId;
    Atomics.store(this.flag, 0, 0);
    port.postMessage({ id, ...req });
    // A call that must first start the worker or connect has the connect's time too.
    const deadline = Date.now() + this.o.callTimeoutMs + (this.connected ? 0 : this.o.connectTimeoutMs);
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0 || Atomics.wait(this.flag, 0, 0, left) === 'timed-out') {
        this.stop();
        throw unavailable();
      }
      // Answers to calls that timed out earlier are skipped; ours is the last.
      let msg: { message: Answer } | undefined;
      while ((msg = receiveMessageOnPort(port) as { message: Answer } | undefined) && msg.message.id !== id);
      if (!msg) {
        Atomics.store(this.flag, 0, 0);
        continue;
      }
      const a = msg.message;
      this.connected = !a.error?.unavailable;
      if (a.error) {
        if (a.error.unavailable) throw unavailable();
        throw new PostgresError(a.error.message, a.error.code);
      }
      return { rows: a.rows ?? [], rowCount: a.rowCount ?? 0 };
    }
  }
}

/** Whether a statement may write (it then takes the writers' lock): anything but a query. */
function writes(sql: string): boolean {
  return !/^\s*(SELECT|EXPLAIN|VALUES|SHOW)\b/i.test(sql);
}

export class PostgresDb implements Db {
  readonly engine = 'postgres' as const;
  private readonly bridge: Bridge;
  private readonly queries = new Map<string, PgQuery>();
  private readonly functions = new Map<string, (arg: unknown) => unknown>();
  private depth = 0;

  constructor(
    /** The connection's URL, password included: for pg_dump and pg_restore (src/db/pg-backup.ts), never for a log. */
    readonly url: string,
    options: PostgresOptions = {},
  ) {
    this.bridge = new Bridge(url, {
      callTimeoutMs: options.callTimeoutMs ?? 15_000,
      statementTimeoutMs: options.statementTimeoutMs ?? 10_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 5_000,
    });
  }

  /** The query in PostgreSQL's dialect, translated once per SQL text (the cache is bounded: listing SQL varies). */
  private translate(sql: string): PgQuery {
    let q = this.queries.get(sql);
    if (!q) {
      q = toPostgresQuery(this.withFunctions(sql));
      if (this.queries.size >= 1000) this.queries.clear();
      this.queries.set(sql, q);
    }
    return q;
  }

  /**
   * A JavaScript SQL function (better-sqlite3's db.function) cannot run inside
   * PostgreSQL. A call `fn(column)` becomes `column = ANY(@__fn_fn)`, the
   * values of the column in its table for which fn is true, computed before the
   * query (one more round trip). The journal's vbs_runner_gone is the one user.
   */
  private withFunctions(sql: string): string {
    let out = sql;
    for (const name of this.functions.keys()) {
      out = out.replace(new RegExp(`\\b${name}\\s*\\(\\s*(\\w+)\\s*\\)`, 'g'), (_m, col: string) => `(${col} = ANY(CAST(@__fn_${name}_${col} AS text[])))`);
    }
    return out;
  }

  /** The values of the functions a query calls, by parameter name. */
  private functionValues(sql: string): Record<string, unknown> {
    const values: Record<string, unknown> = {};
    for (const [name, fn] of this.functions) {
      for (const m of sql.matchAll(new RegExp(`\\b${name}\\s*\\(\\s*(\\w+)\\s*\\)`, 'g'))) {
        const col = m[1]!;
        const table = /\bFROM\s+(\w+)/i.exec(sql)?.[1];
        if (!table) throw new Error(`${name}(${col}): no table to read its values from`);
        const { rows } = this.bridge.call({ op: 'query', text: `SELECT DISTINCT ${col} AS v FROM ${table} WHERE ${col} IS NOT NULL`, values: [] });
        values[`__fn_${name}_${col}`] = rows.map((r) => r.v).filter((v) => Boolean(fn(v)));
      }
    }
    return values;
  }

  private query(sql: string, args: unknown[]): { rows: Record<string, unknown>[]; rowCount: number } {
    const q = this.translate(sql);
    const named = isNamedArgs(args);
    const values = bindParams(q, named ? [] : args, { ...(named ? (args[0] as Record<string, unknown>) : {}), ...this.functionValues(sql) });
    return this.bridge.call({ op: 'query', text: q.text, values, lock: writes(sql) });
  }

  prepare(sql: string): Statement {
    return {
      run: (...args: unknown[]): RunResult => ({ changes: this.query(sql, args).rowCount, lastInsertRowid: 0 }),
      get: (...args: unknown[]): unknown => this.query(sql, args).rows[0],
      all: (...args: unknown[]): unknown[] => this.query(sql, args).rows,
    };
  }

  /** Several statements with no parameters (a migration, a test's set-up): as one write. */
  exec(sql: string): this {
    const text = toPostgresMigration(sql);
    if (this.depth > 0) {
      this.bridge.call({ op: 'query', text: 'SELECT 1', values: [], lock: true });
      this.bridge.call({ op: 'simple', text });
    } else {
      this.bridge.call({ op: 'simple', text: `BEGIN; SELECT pg_advisory_xact_lock(${WRITER_LOCK}); ${text} COMMIT;` });
    }
    return this;
  }

  transaction<T>(fn: () => T): Transaction<T> {
    const run = (immediate: boolean): T => {
      if (this.depth > 0) return this.savepoint(fn);
      this.bridge.call({
        op: 'simple',
        text: immediate ? `BEGIN; SELECT pg_advisory_xact_lock(${WRITER_LOCK})` : 'BEGIN ISOLATION LEVEL REPEATABLE READ',
      });
      this.depth = 1;
      try {
        const result = fn();
        if (result instanceof Promise) throw new TypeError('a transaction function cannot return a promise');
        this.bridge.call({ op: 'simple', text: 'COMMIT' });
        return result;
      } catch (err) {
        this.rollback('ROLLBACK');
        throw err;
      } finally {
        this.depth = 0;
      }
    };
    return Object.assign(() => run(false), { immediate: () => run(true) });
  }

  /** A nested transaction: a savepoint, as better-sqlite3 does. */
  private savepoint<T>(fn: () => T): T {
    const name = `vbs_sp_${this.depth}`;
    this.bridge.call({ op: 'simple', text: `SAVEPOINT ${name}` });
    this.depth++;
    try {
      const result = fn();
      this.bridge.call({ op: 'simple', text: `RELEASE SAVEPOINT ${name}` });
      return result;
    } catch (err) {
      this.rollback(`ROLLBACK TO SAVEPOINT ${name}`);
      throw err;
    } finally {
      this.depth--;
    }
  }

  /** Rolls back, keeping the error that caused it (a rollback on a lost connection fails too; PostgreSQL has undone it). */
  private rollback(text: string): void {
    try {
      this.bridge.call({ op: 'simple', text });
    } catch {
      // the original error is the one to report
    }
  }

  function(name: string, _options: { deterministic?: boolean }, fn: (arg: unknown) => unknown): this {
    if (!/^\w+$/.test(name)) throw new RangeError(`not a function name: ${name}`);
    this.functions.set(name, fn);
    this.queries.clear();
    return this;
  }

  close(): this {
    try {
      this.bridge.call({ op: 'close' });
    } catch {
      // closing a connection that is gone already
    }
    this.bridge.close();
    return this;
  }
}

/**
 * Applies the migrations PostgreSQL has not run yet, each in its transaction,
 * under the writers' lock (fronts starting together migrate once). The version
 * is kept in vbs_schema (SQLite keeps it in PRAGMA user_version).
 */
export function migratePostgres(db: PostgresDb, migrations: readonly string[], extra: Readonly<Record<number, string>>): void {
  db.transaction(() => {
    db.exec('CREATE TABLE IF NOT EXISTS vbs_schema (version INTEGER NOT NULL)');
    if (!db.prepare('SELECT version FROM vbs_schema').get()) db.prepare('INSERT INTO vbs_schema (version) VALUES (0)').run();
  }).immediate();
  for (;;) {
    const done = db.transaction(() => {
      const current = (db.prepare('SELECT version FROM vbs_schema').get() as { version: number }).version;
      if (current > migrations.length) throw new Error(`the database schema (version ${current}) is newer than this VBS (${migrations.length})`);
      if (current === migrations.length) return true;
      db.exec(migrations[current]!);
      if (extra[current]) db.exec(extra[current]);
      db.prepare('UPDATE vbs_schema SET version = ?').run(current + 1);
      return false;
    }).immediate();
    if (done) return;
  }
}
