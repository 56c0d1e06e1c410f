import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/log.js';
import { openDatabase, writeTx, type Db } from '../../src/db/database.js';
import { Metadata } from '../../src/db/metadata.js';
import { DelegatePool } from '../../src/front/delegates.js';
import { CreationMonitor } from '../../src/front/monitor.js';
import { FakeDelegate } from '../workflows/fakes.js';

/**
 * Issue 16 item 5: a volume `creating` (a snapshot `pending`) on a volume
 * delegate that was removed from the front's configuration was polled every
 * interval for ever. Nothing can make its data any more: it goes to error,
 * saying why, and the delegates still configured are polled as before.
 */
let db: Db;
let meta: Metadata;
let storage: FakeDelegate;
let monitor: CreationMonitor;

beforeEach(() => {
  db = openDatabase(':memory:');
  meta = new Metadata(db);
  storage = new FakeDelegate();
  monitor = new CreationMonitor(meta, new DelegatePool(new Map([['local', storage]]), new Map()), silentLogger, 3_600_000);
});
afterEach(() => db.close());

function insert(delegate: string): { vol: string; snap: string } {
  return writeTx(db, () => {
    const vol = meta.reserveId('vol');
    meta.insertVolume({ volume_id: vol, owner: 'u', size_gib: 1, comment: '', snapshot_id: null, status: 'creating', delegate });
    const base = meta.reserveId('vol');
    meta.insertVolume({ volume_id: base, owner: 'u', size_gib: 1, comment: '', snapshot_id: null, status: 'available', delegate });
    const snap = meta.reserveId('snap');
    meta.insertSnapshot({ snapshot_id: snap, owner: 'u', volume_id: base, size_gib: 1, comment: '', status: 'pending', delegate });
    return { vol, snap };
  });
}

describe('creations on a volume delegate no longer configured', () => {
  it('go to error with a message instead of being polled for ever', async () => {
    const gone = insert('old-storage');
    const here = insert('local');
    await monitor.pollOnce();
    expect(meta.volume(gone.vol)).toMatchObject({ status: 'error' });
    expect(meta.volume(gone.vol)?.status_message).toMatch(/'old-storage' is no longer in the front's configuration/);
    expect(meta.snapshot(gone.snap)).toMatchObject({ status: 'error' });
    expect(monitor.delegatesWithWork()).toEqual(['local']);
    // The configured delegate's creations are untouched by this.
    expect(meta.volume(here.vol)?.status).toBe('creating');
  });
});
