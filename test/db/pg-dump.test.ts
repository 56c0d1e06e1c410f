import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, inject, it } from 'vitest';
import { openDatabase, writeTx } from '../../src/db/database.js';
import { Metadata } from '../../src/db/metadata.js';
import { dumpPostgres, restorePostgres } from '../../src/db/pg-dump.js';
import { createDatabase } from '../setup/postgres-cluster.js';

/**
 * Issue 20: a copy of metadata kept in PostgreSQL (pg_dump) taken while it is
 * written, and put back (pg_restore): the rows of the copy's moment return,
 * what was written after it is gone. On two databases of the run's cluster.
 */
const dir = mkdtempSync(join(tmpdir(), 'vbs-pg-dump-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('a dump taken while the database is open is restored whole, replacing what came after', async () => {
  const port = Number(new URL(inject('pgUrl')).port);
  const suffix = `${process.pid}_${Date.now()}`;
  const url = createDatabase({ dir: '', port, url: '' }, `vbs_dump_${suffix}`);
  const db = openDatabase(url);
  const meta = new Metadata(db);
  const before = writeTx(db, () => {
    const id = meta.reserveId('vol');
    meta.insertVolume({ volume_id: id, owner: 'alice', size_gib: 3, comment: 'kept', snapshot_id: null, status: 'available', delegate: 'local' });
    return id;
  });
  const file = join(dir, 'vbs.dump');
  await dumpPostgres(url.replace('postgres@', 'postgres:not-needed-with-trust@'), file);
  const after = writeTx(db, () => {
    const id = meta.reserveId('vol');
    meta.insertVolume({ volume_id: id, owner: 'alice', size_gib: 1, comment: 'later', snapshot_id: null, status: 'available', delegate: 'local' });
    return id;
  });
  db.close();

  await restorePostgres(url, file);
  const back = openDatabase(url);
  try {
    expect(new Metadata(back).volume(before)).toMatchObject({ owner: 'alice', size_gib: 3, comment: 'kept' });
    expect(new Metadata(back).volume(after)).toBeUndefined();
    // The migrations' version came back with it: opening ran none again.
    expect(back.prepare('SELECT version FROM vbs_schema').get()).toMatchObject({ version: expect.any(Number) });
  } finally {
    back.close();
  }
});

it('a failure names the tool and not the password', async () => {
  const failure = await dumpPostgres('postgres://vbs:hunter2-secret@127.0.0.1:1/none', join(dir, 'x.dump'), 30_000).then(() => undefined, (e: Error) => e);
  expect(failure?.message).toMatch(/^pg_dump failed/);
  expect(failure?.message).not.toContain('hunter2');
});
