import Database from 'better-sqlite3';
import { closeSync, copyFileSync, existsSync, fsyncSync, mkdtempSync, openSync, readSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { Db } from './database.js';
import { engineOf } from './engine.js';
import { MIGRATIONS } from './migrations.js';
import { raiseGenerations } from './generations.js';
import { now } from '../core/clock.js';
import { BackupError, CORE_TABLES, type BackupInfo } from './backup-error.js';
import { backupPostgres, inspectPgDump, isPgDump, restorePostgresBackup } from './pg-backup.js';
import { isPostgresUrl, PostgresDb } from './postgres.js';

export { BackupError, type BackupInfo } from './backup-error.js';

/**
 * Backups of the metadata (docs/operators/backup.md).
 *
 * A backup is SQLite's online backup (better-sqlite3 `db.backup()`): a
 * consistent copy of the database as of one instant, taken page by page
 * while the front goes on serving (writers are not held back; pages a
 * write changes meanwhile are copied again). A restore puts such a copy
 * back in place of the database of a stopped deployment, after checking
 * it is a VBS metadata database of a schema version this VBS knows.
 *
 * PostgreSQL: the same entry points take the connection or its URL, and
 * hand it to src/db/pg-backup.ts, where a backup is `pg_dump
 * --format=custom` and a restore `pg_restore` (a backup of one engine is
 * never restored into the other).
 */

const SQLITE_MAGIC = 'SQLite format 3\0';

/** Writes a consistent copy of an open database to `file` (which must not exist), durably. */
export async function backupDatabase(db: Db, file: string): Promise<BackupInfo> {
  if (engineOf(db) === 'postgres') return backupPostgres((db as PostgresDb).url, file);
  if (existsSync(file)) throw new BackupError(`${file} already exists; a backup never overwrites a file`);
  const part = join(dirname(file), `.${basename(file)}.part`);
  rmSync(part, { force: true });
  try {
    await (db as unknown as Database.Database).backup(part);
    selfContained(part);
    const info = inspectBackup(part);
    fsyncFile(part);
    renameSync(part, file);
    fsyncFile(dirname(file));
    return info;
  } catch (err) {
    rmSync(part, { force: true });
    throw err;
  }
}

/**
 * Backs up the database of a deployment, running or not: a SQLite file (the
 * online backup reads through SQLite's locks) or a postgres:// URL (pg_dump).
 */
export async function backupDatabaseFile(database: string, file: string): Promise<BackupInfo> {
  if (isPostgresUrl(database)) return backupPostgres(database, file);
  if (!existsSync(database)) throw new BackupError(`there is no metadata database at ${database}`);
  inspectBackup(database);
  const db = new Database(database, { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 10000');
    return await backupDatabase(db, file);
  } finally {
    db.close();
  }
}

/** Checks a backup of either engine (an SQLite file or a pg_dump) and says what it holds. */
export async function inspectAnyBackup(file: string): Promise<BackupInfo> {
  if (existsSync(file) && isPgDump(file)) return inspectPgDump(file);
  return inspectBackup(file);
}

/** Restores a backup into a stopped deployment's database of either engine; a backup of one engine is refused by the other. */
export async function restoreAnyDatabase(backup: string, database: string): Promise<BackupInfo> {
  const pgDump = existsSync(backup) && isPgDump(backup);
  if (isPostgresUrl(database)) {
    if (!pgDump && existsSync(backup)) throw new BackupError(`${backup} is not a pg_dump of the metadata, and this deployment's metadata is on PostgreSQL`);
    return restorePostgresBackup(backup, database);
  }
  if (pgDump) throw new BackupError(`${backup} is a pg_dump (PostgreSQL), and this deployment's metadata is an SQLite file`);
  return restoreDatabase(backup, database);
}

/** A backup into memory for the SOAP operation: the bytes of the copy, its folder removed after. */
export async function backupToBuffer(db: Db, maxBytes: number, read: (file: string) => Buffer): Promise<{ bytes: Buffer; info: BackupInfo }> {
  const dir = mkdtempSync(join(tmpdir(), 'vbs-backup-'));
  try {
    const file = join(dir, 'vbs.db');
    const info = await backupDatabase(db, file);
    const bytes = read(file);
    if (bytes.length > maxBytes) throw new BackupError(`the backup is ${bytes.length} bytes, more than the ${maxBytes} one answer carries`, true);
    return { bytes, info };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Checks a file is a whole VBS metadata database of a schema version this
 * VBS knows (older ones are migrated when the front opens them), and says
 * what it holds.
 */
export function inspectBackup(file: string): BackupInfo {
  if (!existsSync(file)) throw new BackupError(`${file} does not exist`);
  if (readHead(file, SQLITE_MAGIC.length) !== SQLITE_MAGIC) throw new BackupError(`${file} is not an SQLite database`);
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const ok = db.pragma('quick_check', { simple: true });
    if (ok !== 'ok') throw new BackupError(`${file} is damaged (${String(ok)})`);
    const schemaVersion = db.pragma('user_version', { simple: true }) as number;
    const tables = new Set(db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).pluck().all() as string[]);
    const missing = CORE_TABLES.filter((t) => !tables.has(t));
    if (schemaVersion < 1 || missing.length) throw new BackupError(`${file} is not a VBS metadata database${missing.length ? ` (no ${missing.join(', ')} table)` : ''}`);
    if (schemaVersion > MIGRATIONS.length) {
      throw new BackupError(`${file} has schema version ${schemaVersion}, newer than this VBS knows (${MIGRATIONS.length}): restore it with the VBS that made it`);
    }
    const count = (t: string) => (db.prepare(`SELECT count(*) FROM ${t}`).pluck().get() as number) ?? 0;
    return { schemaVersion, volumes: count('volumes'), snapshots: count('snapshots'), attachments: count('attachments') };
  } catch (err) {
    if (err instanceof BackupError) throw err;
    throw new BackupError(`${file} cannot be read as a VBS metadata database: ${(err as Error).message}`);
  } finally {
    db.close();
  }
}

/**
 * Puts a backup in place of a deployment's database. Refuses while any
 * process has the database open (a running front): SQLite will not leave
 * WAL mode while another connection uses it, which is what we try (waiting
 * for no one). The copy is written beside the database, fsync'd and renamed
 * over it; the old WAL and shared-memory files go (they belong to the old
 * database). Every generation in the copy is raised above what the delegates
 * saw since the backup (src/db/generations.ts).
 */
export function restoreDatabase(backup: string, database: string): BackupInfo {
  const info = inspectBackup(backup);
  if (existsSync(database)) refuseWhileInUse(database);
  const part = join(dirname(database), `.${basename(database)}.restore`);
  rmSync(part, { force: true });
  try {
    copyFileSync(backup, part);
    raiseRestoredGenerations(part);
    fsyncFile(part);
    for (const f of [`${database}-wal`, `${database}-shm`]) rmSync(f, { force: true });
    renameSync(part, database);
    fsyncFile(dirname(database));
  } catch (err) {
    rmSync(part, { force: true });
    throw err;
  }
  return info;
}

/** A copy of a WAL database is marked WAL too: made a plain one-file database, so reading it leaves no -wal/-shm beside it. */
function selfContained(file: string): void {
  const db = new Database(file, { fileMustExist: true });
  try {
    db.pragma('journal_mode = DELETE');
  } finally {
    db.close();
  }
}

/** Workflows ran after the backup was taken: the restored counters must pass the delegates' memory (src/db/generations.ts). */
function raiseRestoredGenerations(file: string): void {
  const db = new Database(file, { fileMustExist: true });
  try {
    db.pragma('journal_mode = DELETE');
    const has = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'generations'`).get();
    if (has) db.transaction(() => raiseGenerations(db, now())).immediate();
  } finally {
    db.close();
  }
}

function refuseWhileInUse(database: string): void {
  const db = new Database(database, { fileMustExist: true });
  try {
    db.pragma('busy_timeout = 0');
    db.pragma('journal_mode = DELETE');
  } catch (err) {
    if ((err as { code?: string }).code === 'SQLITE_BUSY') throw new BackupError(`${database} is in use (is the deployment running?): stop its front first`);
    throw err;
  } finally {
    db.close();
  }
}

function readHead(file: string, n: number): string {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(n);
    const got = readSync(fd, buf, 0, n, 0);
    return buf.subarray(0, got).toString('latin1');
  } finally {
    closeSync(fd);
  }
}

function fsyncFile(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
