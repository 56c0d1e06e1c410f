import { closeSync, existsSync, fsyncSync, openSync, readSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { now } from '../core/clock.js';
import { BackupError, CORE_TABLES, type BackupInfo } from './backup-error.js';
import { writeTx } from './database.js';
import { raiseGenerations } from './generations.js';
import { MIGRATIONS } from './migrations.js';
import { dumpedRows, dumpedTables, dumpPostgres, PG_DUMP_MAGIC, restorePostgres } from './pg-dump.js';
import { applicationName, PostgresDb } from './postgres.js';

/**
 * `vbs admin backup`/`restore` for metadata kept in PostgreSQL
 * (docs/operators/backup.md): the same contract as SQLite's (src/db/backup.ts)
 * with PostgreSQL's tools (src/db/pg-dump.ts). A backup is pg_dump's custom
 * format, one snapshot taken while the fronts write; a restore checks the
 * file, refuses while a front is connected, replaces the database's VBS
 * tables in one transaction, and raises the generations above what the
 * delegates saw since. Messages never hold the URL's password.
 */

/** Dumps the database to `file` (which must not exist), durably, and says what the copy holds. */
export async function backupPostgres(url: string, file: string): Promise<BackupInfo> {
  if (existsSync(file)) throw new BackupError(`${file} already exists; a backup never overwrites a file`);
  const part = join(dirname(file), `.${basename(file)}.part`);
  rmSync(part, { force: true });
  try {
    await dumpPostgres(url, part).catch((err: Error) => {
      throw new BackupError(err.message);
    });
    const info = await inspectPgDump(part);
    fsync(part);
    renameSync(part, file);
    fsync(dirname(file));
    return info;
  } catch (err) {
    rmSync(part, { force: true });
    throw err;
  }
}

/** Whether a file starts as pg_dump's custom format does. */
export function isPgDump(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(PG_DUMP_MAGIC.length);
    return readSync(fd, head, 0, head.length, 0) === head.length && head.toString('latin1') === PG_DUMP_MAGIC;
  } finally {
    closeSync(fd);
  }
}

/** Checks a file is a whole pg_dump of VBS metadata of a schema version this VBS knows, and says what it holds. */
export async function inspectPgDump(file: string): Promise<BackupInfo> {
  if (!existsSync(file)) throw new BackupError(`${file} does not exist`);
  if (!isPgDump(file)) throw new BackupError(`${file} is not a pg_dump of the metadata (custom format)`);
  try {
    const tables = await dumpedTables(file);
    const missing = [...CORE_TABLES, 'vbs_schema'].filter((t) => !tables.has(t));
    if (missing.length) throw new BackupError(`${file} is not a VBS metadata database (no ${missing.join(', ')} table)`);
    let schemaVersion = 0;
    await dumpedRows(file, 'vbs_schema', (row) => (schemaVersion = Number(row)));
    if (!(schemaVersion >= 1)) throw new BackupError(`${file} is not a VBS metadata database (no schema version)`);
    if (schemaVersion > MIGRATIONS.length) {
      throw new BackupError(`${file} has schema version ${schemaVersion}, newer than this VBS knows (${MIGRATIONS.length}): restore it with the VBS that made it`);
    }
    const count = async (table: string) => {
      let n = 0;
      await dumpedRows(file, table, () => n++);
      return n;
    };
    return { schemaVersion, volumes: await count('volumes'), snapshots: await count('snapshots'), attachments: await count('attachments') };
  } catch (err) {
    if (err instanceof BackupError) throw err;
    throw new BackupError(`${file} cannot be read as a VBS metadata dump: ${(err as Error).message}`);
  }
}

/**
 * Puts a pg_dump back in place of the database's VBS tables. Refuses while
 * another VBS connection to them is open (a running front, on any machine:
 * PostgreSQL lists them all). pg_restore replaces the tables in one
 * transaction; then every generation is raised (src/db/generations.ts), as
 * SQLite's restore does, since workflows ran after the backup was taken.
 */
export async function restorePostgresBackup(file: string, url: string): Promise<BackupInfo> {
  const info = await inspectPgDump(file);
  refuseWhileConnected(url);
  await restorePostgres(url, file).catch((err: Error) => {
    throw new BackupError(`${err.message} (the database is as it was: the restore is one transaction)`);
  });
  const db = new PostgresDb(url);
  try {
    if ((db.prepare('SELECT to_regclass(?) AS t').get('generations') as { t: string | null }).t !== null) writeTx(db, () => raiseGenerations(db, now()));
  } catch (err) {
    throw new BackupError(`the backup was restored but its generations could not be raised (${(err as Error).message}); run the restore again before starting the fronts`);
  } finally {
    db.close();
  }
  return info;
}

/** A front holds its connection for as long as it runs: any other connection by VBS's name for these tables means one does. */
function refuseWhileConnected(url: string): void {
  const db = new PostgresDb(url);
  try {
    const { n } = db
      .prepare('SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = ? AND pid <> pg_backend_pid()')
      .get(applicationName(url)) as { n: number };
    if (n > 0) throw new BackupError(`the metadata database is in use by ${n} VBS connection${n === 1 ? '' : 's'} (is the deployment running?): stop its fronts first`);
  } catch (err) {
    if (err instanceof BackupError) throw err;
    throw new BackupError(`the metadata database cannot be reached: ${(err as Error).message}`);
  } finally {
    db.close();
  }
}

function fsync(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
