import type Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/database.js';

/**
 * A journal entry must be on the disk before the external step it announces
 * runs (issue 16, item 8): in WAL mode that takes synchronous = FULL (NORMAL
 * may lose the last commits on power loss or an OS crash). Power loss cannot
 * be simulated here, so this checks the setting on the connection the front
 * opens (src/front/main.ts opens it with openDatabase).
 */
const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

it('the metadata database is opened in WAL mode with synchronous = FULL', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vbs-durable-'));
  dirs.push(dir);
  const db = openDatabase(join(dir, 'vbs.db')) as unknown as Database.Database;
  try {
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('synchronous', { simple: true })).toBe(2); // 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA
  } finally {
    db.close();
  }
});
