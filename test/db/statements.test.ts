import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { MAX_CACHED_STATEMENTS, openDatabase, type Db } from '../../src/db/database.js';

/**
 * The metadata connection keeps each statement it compiles and hands it out
 * again for the same text (the front's profile showed compiling as a tenth of
 * its time under load): the same results as compiling anew, through schema
 * changes, and a bounded number of texts kept.
 */
let dir: string;
let db: Db;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vbs-statements-'));
  db = openDatabase(join(dir, 'vbs.db'));
  db.exec('CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)');
});
afterAll(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

it('hands out the compiled statement again for the same text, with fresh parameters each run', () => {
  const insert = 'INSERT INTO t (k, v) VALUES (?, ?)';
  expect(db.prepare(insert)).toBe(db.prepare(insert));
  for (let i = 0; i < 5; i++) db.prepare(insert).run(`k${i}`, i);
  const one = 'SELECT v FROM t WHERE k = ?';
  expect(db.prepare(one).get('k3')).toEqual({ v: 3 });
  expect(db.prepare(one).get('k1')).toEqual({ v: 1 });
  expect(db.prepare(one).get('absent')).toBeUndefined();
  expect(db.prepare('SELECT count(*) AS n FROM t').get()).toEqual({ n: 5 });
});

it('a kept statement sees a schema change made after it was compiled', () => {
  const all = 'SELECT * FROM t WHERE k = ?';
  expect(db.prepare(all).get('k0')).toEqual({ k: 'k0', v: 0 });
  db.exec("ALTER TABLE t ADD COLUMN w TEXT DEFAULT 'x'");
  expect(db.prepare(all).get('k0')).toEqual({ k: 'k0', v: 0, w: 'x' });
});

it('a statement that fails to compile is not kept, and transactions still roll back', () => {
  expect(() => db.prepare('SELECT nope FROM t')).toThrow(/no such column/);
  expect(() => db.prepare('SELECT nope FROM t')).toThrow(/no such column/);
  const add = db.transaction(() => {
    db.prepare('INSERT INTO t (k, v) VALUES (?, ?)').run('rolled', 1);
    throw new Error('undo');
  });
  expect(() => add.immediate()).toThrow('undo');
  expect(db.prepare('SELECT count(*) AS n FROM t WHERE k = ?').get('rolled')).toEqual({ n: 0 });
});

it('keeps at most MAX_CACHED_STATEMENTS texts; others are compiled each time and still work', () => {
  for (let i = 0; i < MAX_CACHED_STATEMENTS + 10; i++) expect(db.prepare(`SELECT ${i} AS n`).get()).toEqual({ n: i });
  const past = `SELECT ${MAX_CACHED_STATEMENTS + 5} AS n`;
  expect(db.prepare(past)).not.toBe(db.prepare(past));
  expect(db.prepare(past).get()).toEqual({ n: MAX_CACHED_STATEMENTS + 5 });
});
