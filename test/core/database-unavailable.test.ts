import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { toSafeError } from '../../src/core/errors.js';
import { openDatabase } from '../../src/db/database.js';

/**
 * Several fronts share one metadata database (issue 20): a front that waited
 * its whole busy timeout for the database, or cannot write it, answers the
 * retryable ServiceUnavailable (the CLI may go to another front), never
 * InternalError; other database errors stay ours.
 */
const dir = mkdtempSync(join(tmpdir(), 'vbs-dbbusy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a database that does not answer is ServiceUnavailable', () => {
  it('a write that waited out the busy timeout behind another front\'s transaction', () => {
    const file = join(dir, 'vbs.db');
    const frontA = openDatabase(file);
    const frontB = new Database(file);
    frontB.pragma('busy_timeout = 20');
    frontA.prepare('BEGIN IMMEDIATE').run();
    let caught: unknown;
    try {
      frontB.transaction(() => frontB.prepare(`INSERT INTO ids (id) VALUES ('vol-00000000000000000')`).run()).immediate();
    } catch (err) {
      caught = err;
    } finally {
      frontA.prepare('ROLLBACK').run();
    }
    expect((caught as { code?: string }).code).toBe('SQLITE_BUSY');
    const safe = toSafeError(caught);
    expect(safe.code).toBe('ServiceUnavailable');
    expect(safe.message).not.toContain('SQLITE');
    frontA.close();
    frontB.close();
  });

  it('a broken statement is still an internal error', () => {
    const db = new Database(':memory:');
    let caught: unknown;
    try {
      db.prepare('SELECT * FROM no_such_table').all();
    } catch (err) {
      caught = err;
    }
    expect(toSafeError(caught).code).toBe('InternalError');
    db.close();
  });
});
