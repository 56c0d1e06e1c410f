import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { backupDatabase, backupDatabaseFile, inspectAnyBackup, restoreAnyDatabase } from '../../src/db/backup.js';
import { openDatabase, writeTx, type Db } from '../../src/db/database.js';
import { currentGeneration, nextGeneration } from '../../src/db/generations.js';
import { Metadata } from '../../src/db/metadata.js';
import { freshPostgresUrl } from '../setup/engines.js';

/**
 * Issue 20: `vbs admin backup`/`restore` on metadata kept in PostgreSQL
 * (src/db/pg-backup.ts), each deployment a schema of the run's cluster: a
 * dump taken while writes go on holds its moment and only its own schema; a
 * restore is refused while a VBS connection is open, then puts the moment
 * back and raises every generation; a backup of one engine is refused by
 * the other.
 */
const dir = mkdtempSync(join(tmpdir(), 'vbs-pg-backup-'));
const open: Db[] = [];
afterAll(() => {
  for (const db of open) db.close();
  rmSync(dir, { recursive: true, force: true });
});

function addVolume(meta: Metadata, owner = 'alice'): string {
  return writeTx(meta.db, () => {
    const id = meta.reserveId('vol');
    meta.insertVolume({ volume_id: id, owner, size_gib: 1, comment: '', snapshot_id: null, status: 'available', delegate: 'local' });
    return id;
  });
}

describe('metadata backup and restore (PostgreSQL)', () => {
  it('a dump taken through the open connection while writes go on holds every row committed before it, of its own schema only', async () => {
    const url = freshPostgresUrl();
    const db = openDatabase(url);
    open.push(db);
    const meta = new Metadata(db);
    const before = Array.from({ length: 20 }, () => addVolume(meta));
    // Another deployment's schema in the same database: not part of this one's backup.
    const neighbour = openDatabase(freshPostgresUrl());
    open.push(neighbour);
    addVolume(new Metadata(neighbour), 'carol');
    let writing = true;
    const writes = (async () => {
      let n = 0;
      while (writing && n < 200) {
        addVolume(meta, 'bob');
        n++;
        await new Promise((r) => setImmediate(r));
      }
    })();
    const info = await backupDatabase(db, join(dir, 'live.dump'));
    writing = false;
    await writes;
    expect(info.volumes).toBeGreaterThanOrEqual(before.length);
    expect(info.schemaVersion).toBeGreaterThan(0);
    expect(await inspectAnyBackup(join(dir, 'live.dump'))).toEqual(info);
    // A backup never overwrites a file.
    await expect(backupDatabase(db, join(dir, 'live.dump'))).rejects.toThrow(/already exists/);
  });

  it('a restore is refused while a VBS connection is open, then replaces the tables with the dump\'s and raises every generation', async () => {
    const url = freshPostgresUrl();
    const db = openDatabase(url);
    const meta = new Metadata(db);
    const kept = addVolume(meta);
    writeTx(db, () => nextGeneration(db, kept));
    // As `vbs admin backup --data`: from the URL, the password (ignored by trust) never on a command line.
    const withPassword = url.replace('postgres@', 'postgres:pw-0x5ecret@');
    const info = await backupDatabaseFile(withPassword, join(dir, 'b.dump'));
    expect(info.volumes).toBe(1);
    const later = addVolume(meta);

    await expect(restoreAnyDatabase(join(dir, 'b.dump'), url)).rejects.toThrow(/in use by 1 VBS connection \(is the deployment running\?\)/);
    expect(new Metadata(db).volume(later)).toBeDefined();
    db.close();
    expect(await restoreAnyDatabase(join(dir, 'b.dump'), withPassword)).toEqual(info);

    const back = openDatabase(url);
    open.push(back);
    const m = new Metadata(back);
    expect(m.volume(kept)).toBeDefined();
    expect(m.volume(later)).toBeUndefined();
    expect(currentGeneration(back, kept)).toBeGreaterThan(1_000_000_000_000);
  });

  it('refuses a file that is no backup, and a backup of the other engine, changing nothing', async () => {
    const url = freshPostgresUrl();
    const sqliteFile = join(dir, 'vbs.db');
    const sqlite = openDatabase(sqliteFile);
    addVolume(new Metadata(sqlite));
    await backupDatabase(sqlite, join(dir, 'sqlite-backup.db'));
    sqlite.close();
    await expect(restoreAnyDatabase(join(dir, 'sqlite-backup.db'), url)).rejects.toThrow(/not a pg_dump of the metadata, and this deployment's metadata is on PostgreSQL/);
    const pg = openDatabase(url);
    addVolume(new Metadata(pg));
    await backupDatabase(pg, join(dir, 'pg.dump'));
    pg.close();
    await expect(restoreAnyDatabase(join(dir, 'pg.dump'), sqliteFile)).rejects.toThrow(/is a pg_dump \(PostgreSQL\), and this deployment's metadata is an SQLite file/);
    writeFileSync(join(dir, 'fake.dump'), 'PGDMP not really a dump');
    await expect(inspectAnyBackup(join(dir, 'fake.dump'))).rejects.toThrow(/cannot be read as a VBS metadata dump/);
  });
});
