import Database from 'better-sqlite3';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BackupError, backupDatabase, backupDatabaseFile, inspectBackup, restoreDatabase } from '../../src/db/backup.js';
import { openDatabase, writeTx } from '../../src/db/database.js';
import { currentGeneration, nextGeneration } from '../../src/db/generations.js';
import { Metadata } from '../../src/db/metadata.js';
import { MIGRATIONS } from '../../src/db/migrations.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function folder(): string {
  const d = mkdtempSync(join(tmpdir(), 'vbs-backup-'));
  dirs.push(d);
  return d;
}

function addVolume(meta: Metadata, owner = 'alice'): string {
  return writeTx(meta.db, () => {
    const id = meta.reserveId('vol');
    meta.insertVolume({ volume_id: id, owner, size_gib: 1, comment: '', snapshot_id: null, status: 'available', delegate: 'local' });
    return id;
  });
}

describe('metadata backup and restore (SQLite)', () => {
  it('a backup taken while writes go on is whole and holds every row committed before it began', async () => {
    const dir = folder();
    const db = openDatabase(join(dir, 'vbs.db'));
    const meta = new Metadata(db);
    const before = Array.from({ length: 200 }, () => addVolume(meta));
    // Writes interleave with the backup's steps (it yields between pages).
    let writing = true;
    const writes = (async () => {
      let n = 0;
      while (writing && n < 500) {
        addVolume(meta, 'bob');
        n++;
        await new Promise((r) => setImmediate(r));
      }
      return n;
    })();
    const info = await backupDatabase(db, join(dir, 'copy.db'));
    writing = false;
    expect(await writes).toBeGreaterThan(0);
    expect(info.schemaVersion).toBe(MIGRATIONS.length);
    const copy = new Database(join(dir, 'copy.db'), { readonly: true });
    expect(copy.pragma('integrity_check', { simple: true })).toBe('ok');
    const ids = new Set(copy.prepare('SELECT volume_id FROM volumes').pluck().all() as string[]);
    for (const id of before) expect(ids.has(id)).toBe(true);
    // Every volume row has its issued id: no half of a transaction.
    expect(copy.prepare('SELECT count(*) FROM volumes WHERE volume_id NOT IN (SELECT id FROM ids)').pluck().get()).toBe(0);
    copy.close();
    db.close();
  });

  it('never overwrites a file; --data reads a database another connection has open', async () => {
    const dir = folder();
    const db = openDatabase(join(dir, 'vbs.db'));
    addVolume(new Metadata(db));
    writeFileSync(join(dir, 'taken.db'), 'mine');
    await expect(backupDatabase(db, join(dir, 'taken.db'))).rejects.toThrow(/already exists/);
    expect(await backupDatabaseFile(join(dir, 'vbs.db'), join(dir, 'files.db'))).toMatchObject({ volumes: 1 });
    db.close();
    // One self-contained file: no journal or part left beside it.
    expect(readdirSync(dir).filter((f) => f.includes('files.db'))).toEqual(['files.db']);
    const copy = new Database(join(dir, 'files.db'), { readonly: true });
    expect(copy.pragma('journal_mode', { simple: true })).toBe('delete');
    copy.close();
  });

  it('inspect refuses what is not a VBS database of a known schema version', () => {
    const dir = folder();
    writeFileSync(join(dir, 'text.db'), 'hello');
    expect(() => inspectBackup(join(dir, 'text.db'))).toThrow(/is not an SQLite database/);
    new Database(join(dir, 'other.db')).exec('CREATE TABLE t (a)').close();
    expect(() => inspectBackup(join(dir, 'other.db'))).toThrow(/is not a VBS metadata database/);
    const newer = openDatabase(join(dir, 'newer.db'));
    newer.exec(`PRAGMA user_version = ${MIGRATIONS.length + 1}`);
    newer.close();
    expect(() => inspectBackup(join(dir, 'newer.db'))).toThrow(/newer than this VBS knows/);
    expect(() => inspectBackup(join(dir, 'absent.db'))).toThrow(BackupError);
  });

  it('a restore is refused while the database is open, then replaces it, drops the old WAL and raises every generation', async () => {
    const dir = folder();
    const live = join(dir, 'vbs.db');
    const db = openDatabase(live);
    const meta = new Metadata(db);
    const kept = addVolume(meta);
    writeTx(db, () => nextGeneration(db, kept));
    await backupDatabase(db, join(dir, 'b.db'));
    const later = addVolume(meta);

    expect(() => restoreDatabase(join(dir, 'b.db'), live)).toThrow(/in use \(is the deployment running\?\)/);
    db.close();
    const info = restoreDatabase(join(dir, 'b.db'), live);
    expect(info.volumes).toBe(1);
    expect(existsSync(`${live}-wal`)).toBe(false);

    const back = openDatabase(live);
    const m = new Metadata(back);
    expect(m.volume(kept)).toBeDefined();
    expect(m.volume(later)).toBeUndefined();
    // Workflows ran after the backup: the next generation passes anything a delegate saw since.
    expect(currentGeneration(back, kept)).toBeGreaterThan(1_000_000_000_000);
    back.close();
  });
});
