import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { VbsError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/log.js';
import { openDatabase } from '../../src/db/database.js';
import { Metadata } from '../../src/db/metadata.js';
import type { Limits } from '../../src/db/quotas.js';
import { administrators } from '../../src/front/access.js';
import { AuditFile, AuditTrail, type AuditEntry } from '../../src/front/audit.js';
import { DelegatePool } from '../../src/front/delegates.js';
import { FrontService } from '../../src/front/service.js';
import { FrontWorkflows } from '../../src/front/workflows.js';
import type { CallContext } from '../../src/soap/server.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { FakeDelegate } from '../workflows/fakes.js';

/**
 * Issue 8 in the front, over fake delegates and a real SQLite database:
 * quotas checked in the creating transaction, the sharing rules, what an
 * administrator may do, and the audit trail's lines.
 */
const tmp = mkdtempSync(join(tmpdir(), 'vbs-users-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function front(quotas?: Partial<Limits>, auditFile?: string) {
  const db = openDatabase(':memory:');
  const meta = new Metadata(db);
  const storage = new FakeDelegate();
  const pool = new DelegatePool(new Map([['local', storage]]), new Map([['localhost', new FakeDelegate()]]));
  const wf = new FrontWorkflows(db, meta, pool, silentLogger);
  const audit = new AuditTrail(auditFile ? new AuditFile(auditFile) : undefined, administrators(['root']), () => new Date('2026-11-30T12:00:00Z'));
  const handlers = new FrontService(meta, pool, wf, { admins: ['root'], quotas, audit }).handlers();
  const ctxOf = (caller: string, admin = false): CallContext => ({ caller, admin, requestId: `r-${caller}`, log: silentLogger });
  const call = async (op: string, input: XmlRecord, caller: string, admin = false) => handlers[op]!(input, ctxOf(caller, admin));
  const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: VbsError) => e.code);
  const volume = async (caller: string, size = 1, extra: XmlRecord = {}) => {
    const id = String(((await call('CreateVolume', { size, ...extra }, caller)).volume as XmlRecord).volumeId);
    meta.setVolumeStatus(id, ['creating'], 'available');
    return id;
  };
  const snapshot = async (caller: string, volumeId: string) => {
    const id = String(((await call('CreateSnapshot', { volumeId }, caller)).snapshot as XmlRecord).snapshotId);
    meta.setSnapshotStatus(id, ['pending'], 'completed', null, 100);
    return id;
  };
  return { db, meta, storage, audit, call, code, volume, snapshot, ctxOf };
}

const LIMITS: Partial<Limits> = { volumes: 3, gib: 10, snapshots: 2 };
const quotaOf = async (f: ReturnType<typeof front>, user: string) => (await f.call('DescribeQuota', { user }, 'root')).quota as XmlRecord;

describe('quotas', () => {
  it('refuses the create past each limit with QuotaExceeded naming it', async () => {
    const f = front(LIMITS);
    await f.volume('alice', 4);
    await f.volume('alice', 4);
    await expect(f.call('CreateVolume', { size: 3 }, 'alice')).rejects.toMatchObject({ code: 'QuotaExceeded', message: expect.stringContaining('gib') });
    const v3 = await f.volume('alice', 2);
    await expect(f.call('CreateVolume', { size: 1 }, 'alice')).rejects.toMatchObject({ code: 'QuotaExceeded', message: expect.stringContaining('volumes') });
    await f.snapshot('alice', v3);
    await f.snapshot('alice', v3);
    await expect(f.call('CreateSnapshot', { volumeId: v3 }, 'alice')).rejects.toMatchObject({ code: 'QuotaExceeded', message: expect.stringContaining('snapshots') });
    // A refused create leaves nothing: no record, no id.
    expect(f.meta.volumesOf('alice')).toHaveLength(3);
    // Another user's limits are their own.
    expect(await f.code(f.volume('bob', 10))).toBe('ok');
    expect(await quotaOf(f, 'alice')).toMatchObject({ user: 'alice', volumeLimit: 3, gibLimit: 10, snapshotLimit: 2, volumes: 3, gib: 10, snapshots: 2 });
  });

  it('counts snapshot storage apart from volume storage: GiB of snapshots have their own limit (issue 17 item 10)', async () => {
    // The issue: with a 4 GiB limit, three 4 GiB snapshots were held beside a 4 GiB volume.
    const f = front({ gib: 4, snapshotGib: 8 });
    const vol = await f.volume('alice', 4);
    await f.snapshot('alice', vol);
    await f.snapshot('alice', vol);
    const third = f.call('CreateSnapshot', { volumeId: vol }, 'alice');
    await expect(third).rejects.toMatchObject({ code: 'QuotaExceeded', message: 'Quota exceeded: snapshotGib. alice holds 8 GiB of snapshots of 8; 4 more would pass it.' });
    expect(await quotaOf(f, 'alice')).toMatchObject({ gib: 4, gibLimit: 4, snapshotGib: 8, snapshotGibLimit: 8, snapshots: 2 });
    // Set and shown like the others; the defaults apply to a user with no override.
    const set = await f.call('SetQuota', { user: 'alice', snapshotGib: 12 }, 'root');
    expect(set.quota).toMatchObject({ snapshotGibLimit: 12, gibLimit: 4 });
    expect(await f.code(f.snapshot('alice', vol))).toBe('ok');
    expect(await quotaOf(f, 'bob')).toMatchObject({ snapshotGibLimit: 8, snapshotGib: 0 }); // the front's default
    expect(await f.code(f.call('SetQuota', { user: 'alice', snapshotGib: -1 }, 'root'))).toBe('InvalidParameterValue');
  });

  it('concurrent snapshots at the snapshot GiB limit never overshoot', async () => {
    const f = front({ snapshotGib: 10 });
    const vol = await f.volume('alice', 3);
    const results = await Promise.all(Array.from({ length: 12 }, () => f.code(f.call('CreateSnapshot', { volumeId: vol }, 'alice'))));
    expect(results.filter((r) => r === 'ok')).toHaveLength(3);
    expect(results.filter((r) => r === 'QuotaExceeded')).toHaveLength(9);
    expect(await quotaOf(f, 'alice')).toMatchObject({ snapshots: 3, snapshotGib: 9 });
  });

  it('concurrent creates at the limit never overshoot', async () => {
    const f = front({ volumes: 5, gib: 1000, snapshots: 5 });
    const results = await Promise.all(Array.from({ length: 20 }, () => f.code(f.call('CreateVolume', { size: 1 }, 'alice'))));
    expect(results.filter((r) => r === 'ok')).toHaveLength(5);
    expect(results.filter((r) => r === 'QuotaExceeded')).toHaveLength(15);
    expect(f.meta.volumesOf('alice')).toHaveLength(5);
  });

  it('a failed create, a rolled-back one and a finished delete give their usage back; error records count', async () => {
    const f = front({ volumes: 1, gib: 5, snapshots: 1 });
    f.storage.failures.set('CreateVolume', new VbsError('InsufficientCapacity', 'full'));
    await expect(f.call('CreateVolume', { size: 5 }, 'alice')).rejects.toMatchObject({ code: 'InsufficientCapacity' });
    expect(await quotaOf(f, 'alice')).toMatchObject({ volumes: 0, gib: 0 });
    f.storage.failures.clear();
    const id = await f.volume('alice', 5);
    f.meta.markError(id, 'lost its data');
    // In error it still holds its data, so it still counts.
    await expect(f.call('CreateVolume', { size: 1 }, 'alice')).rejects.toMatchObject({ code: 'QuotaExceeded' });
    await f.call('DeleteVolume', { volumeId: id }, 'alice');
    expect(await quotaOf(f, 'alice')).toMatchObject({ volumes: 0, gib: 0 });
    expect(await f.code(f.volume('alice', 5))).toBe('ok');
  });

  it('a create repeated with its client token at the limit returns the first result, not QuotaExceeded', async () => {
    const f = front({ volumes: 1, gib: 5, snapshots: 1 });
    const first = await f.call('CreateVolume', { size: 1, clientToken: 'tok-1' }, 'alice');
    const again = await f.call('CreateVolume', { size: 1, clientToken: 'tok-1' }, 'alice');
    expect((again.volume as XmlRecord).volumeId).toBe((first.volume as XmlRecord).volumeId);
  });

  it('SetQuota changes the limits given and keeps the others; only administrators set or see quotas', async () => {
    const f = front(LIMITS);
    const set = await f.call('SetQuota', { user: 'alice', volumes: 7 }, 'root');
    expect(set.quota).toMatchObject({ volumeLimit: 7, gibLimit: 10, snapshotLimit: 2 });
    expect(await quotaOf(f, 'alice')).toMatchObject({ volumeLimit: 7, gibLimit: 10 });
    await f.call('SetQuota', { user: 'alice', gib: 0 }, 'carol', true); // an administrator by certificate
    expect(await quotaOf(f, 'alice')).toMatchObject({ volumeLimit: 7, gibLimit: 0 });
    await expect(f.call('CreateVolume', { size: 1 }, 'alice')).rejects.toMatchObject({ code: 'QuotaExceeded' });
    expect(await f.code(f.call('SetQuota', { user: 'alice', volumes: 100 }, 'alice'))).toBe('UnauthorizedOperation');
    expect(await f.code(f.call('DescribeQuota', { user: 'alice' }, 'alice'))).toBe('UnauthorizedOperation');
    expect(await f.code(f.call('SetQuota', { user: 'alice', volumes: -1 }, 'root'))).toBe('InvalidParameterValue');
    expect(await f.code(f.call('DescribeQuota', { user: 'vbs-front' }, 'root'))).toBe('InvalidParameterValue');
  });

  it('what an administrator creates is theirs and counts against their own quota', async () => {
    const f = front(LIMITS);
    const vol = await f.volume('alice', 1);
    const snap = await f.snapshot('root', vol);
    expect(f.meta.snapshot(snap)!.owner).toBe('root');
    expect(await quotaOf(f, 'alice')).toMatchObject({ snapshots: 0 });
    expect(await quotaOf(f, 'root')).toMatchObject({ snapshots: 1 });
  });
});

describe('sharing snapshots', () => {
  async function shared() {
    const f = front();
    const vol = await f.volume('alice', 2);
    const snap = await f.snapshot('alice', vol);
    await f.call('ShareSnapshot', { snapshotId: snap, user: 'bob' }, 'alice');
    return { f, vol, snap };
  }

  it('the user it is shared with sees it, with its owner, and may create volumes from it', async () => {
    const { f, snap } = await shared();
    const seen = (await f.call('DescribeSnapshots', {}, 'bob')).snapshot as XmlRecord[];
    expect(seen.map((s) => [s.snapshotId, s.owner])).toEqual([[snap, 'alice']]);
    const made = (await f.call('CreateVolume', { size: 2, snapshotId: snap }, 'bob')).volume as XmlRecord;
    expect(made.owner).toBe('bob');
    // Nobody else sees it.
    expect(await f.code(f.call('DescribeSnapshots', { snapshotId: [snap] }, 'carol'))).toBe('InvalidSnapshot.NotFound');
    expect(await f.code(f.call('CreateVolume', { size: 2, snapshotId: snap }, 'carol'))).toBe('InvalidSnapshot.NotFound');
  });

  it('it cannot be deleted or shared further by the user it is shared with', async () => {
    const { f, snap } = await shared();
    expect(await f.code(f.call('DeleteSnapshot', { snapshotId: snap }, 'bob'))).toBe('UnauthorizedOperation');
    expect(await f.code(f.call('ShareSnapshot', { snapshotId: snap, user: 'carol' }, 'bob'))).toBe('UnauthorizedOperation');
    expect(await f.code(f.call('UnshareSnapshot', { snapshotId: snap, user: 'bob' }, 'bob'))).toBe('UnauthorizedOperation');
    expect(await f.code(f.call('ShareSnapshot', { snapshotId: snap, user: 'carol' }, 'carol'))).toBe('InvalidSnapshot.NotFound');
  });

  it('unsharing hides it again and leaves the volumes made from it', async () => {
    const { f, snap } = await shared();
    const made = String(((await f.call('CreateVolume', { size: 2, snapshotId: snap }, 'bob')).volume as XmlRecord).volumeId);
    await f.call('UnshareSnapshot', { snapshotId: snap, user: 'bob' }, 'alice');
    expect((await f.call('DescribeSnapshots', {}, 'bob')).snapshot).toEqual([]);
    expect(await f.code(f.call('CreateVolume', { size: 2, snapshotId: snap }, 'bob'))).toBe('InvalidSnapshot.NotFound');
    expect(f.meta.volume(made)).toMatchObject({ owner: 'bob', snapshot_id: snap });
    // Unsharing again, or sharing twice, changes nothing.
    expect(await f.code(f.call('UnshareSnapshot', { snapshotId: snap, user: 'bob' }, 'alice'))).toBe('ok');
    await f.call('ShareSnapshot', { snapshotId: snap, user: 'dave' }, 'alice');
    await f.call('ShareSnapshot', { snapshotId: snap, user: 'dave' }, 'alice');
    expect(f.db.prepare('SELECT user FROM snapshot_shares').all()).toEqual([{ user: 'dave' }]);
  });

  it('names: an unknown user is allowed, a name no certificate could carry or the owner is refused', async () => {
    const { f, snap } = await shared();
    expect(await f.code(f.call('ShareSnapshot', { snapshotId: snap, user: 'nobody-yet@example.org' }, 'alice'))).toBe('ok');
    for (const user of ['alice', 'vbs-front', '-rf', 'a b', 'x'.repeat(65), '']) {
      expect(await f.code(f.call('ShareSnapshot', { snapshotId: snap, user }, 'alice')), user).toBe(user === '' ? 'MissingParameter' : 'InvalidParameterValue');
    }
    // An administrator may share anyone's snapshot, never with its owner.
    expect(await f.code(f.call('ShareSnapshot', { snapshotId: snap, user: 'erin' }, 'root'))).toBe('ok');
    expect(await f.code(f.call('ShareSnapshot', { snapshotId: snap, user: 'alice' }, 'root'))).toBe('InvalidParameterValue');
  });

  it("a deleted snapshot's shares go with it; a snapshot being deleted cannot be shared", async () => {
    const { f, snap } = await shared();
    f.meta.setSnapshotStatus(snap, ['completed'], 'deleting');
    expect(await f.code(f.call('ShareSnapshot', { snapshotId: snap, user: 'carol' }, 'alice'))).toBe('IncorrectState');
    f.meta.setSnapshotStatus(snap, ['deleting'], 'completed');
    await f.call('DeleteSnapshot', { snapshotId: snap }, 'alice');
    expect(f.meta.snapshot(snap)).toBeUndefined();
    expect(f.db.prepare('SELECT count(*) AS n FROM snapshot_shares').get()).toEqual({ n: 0 });
  });
});

describe('administrators', () => {
  it("see everyone's records and act on anyone's; users see their own only", async () => {
    const f = front();
    const a = await f.volume('alice');
    const b = await f.volume('bob');
    const ids = async (caller: string, admin = false) => ((await f.call('DescribeVolumes', {}, caller, admin)).volume as XmlRecord[]).map((v) => `${v.volumeId} ${v.owner}`);
    expect(await ids('alice')).toEqual([`${a} alice`]);
    expect(await ids('root')).toEqual([`${a} alice`, `${b} bob`]);
    expect(await ids('carol', true)).toEqual([`${a} alice`, `${b} bob`]);
    expect(await f.code(f.call('DeleteVolume', { volumeId: b }, 'alice'))).toBe('InvalidVolume.NotFound');
    expect(await f.code(f.call('DeleteVolume', { volumeId: b }, 'carol', true))).toBe('ok');
  });
});

describe('the audit trail', () => {
  it('writes one JSON line per state-changing or refused request, with the owner an administrator acted for', async () => {
    const file = join(tmp, 'audit.log');
    const f = front(undefined, file);
    const vol = await f.volume('alice');
    const ctx = f.ctxOf('root');
    f.audit.actingFor(ctx, 'alice');
    f.audit.record({ requestId: 'r1', caller: 'root', admin: false, operation: 'DeleteVolume', input: { volumeId: vol }, output: { return: true }, ctx });
    f.audit.record({ requestId: 'r2', caller: 'bob', admin: false, operation: 'DescribeVolumes', input: { volumeId: [vol] }, fault: 'InvalidVolume.NotFound' });
    f.audit.record({ requestId: 'r3', caller: 'bob', admin: false, operation: 'DescribeVolumes', input: {}, output: { volume: [] } });
    f.audit.record({ requestId: 'r4', admin: false, fault: 'AuthFailure' });
    f.audit.record({ requestId: 'r5', caller: 'alice', admin: false, operation: 'CreateVolume', input: { size: 1, comment: 'x'.repeat(1000) }, output: { volume: { volumeId: vol } } });
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as AuditEntry);
    expect(lines).toEqual([
      { time: '2026-11-30T12:00:00.000Z', requestId: 'r1', caller: 'root', admin: true, onBehalfOf: 'alice', operation: 'DeleteVolume', arguments: { volumeId: vol }, result: 'ok' },
      { time: '2026-11-30T12:00:00.000Z', requestId: 'r2', caller: 'bob', admin: false, operation: 'DescribeVolumes', arguments: { volumeId: [vol] }, result: 'InvalidVolume.NotFound' },
      { time: '2026-11-30T12:00:00.000Z', requestId: 'r4', caller: null, admin: false, operation: null, result: 'AuthFailure' },
      { time: '2026-11-30T12:00:00.000Z', requestId: 'r5', caller: 'alice', admin: false, operation: 'CreateVolume', arguments: { size: 1, comment: `${'x'.repeat(256)}…` }, result: 'ok', resource: vol },
    ]);
  });

  it('a write that fails throws (the server then answers InternalError)', () => {
    const trail = new AuditTrail(new AuditFile('/dev/full'));
    expect(() => trail.record({ requestId: 'r', caller: 'alice', admin: false, operation: 'DeleteVolume', input: {}, output: {} })).toThrow(/ENOSPC/);
    trail.close();
  });
});
