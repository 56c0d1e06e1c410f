import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../src/front/audit.js';
import { PkiStore } from '../../src/pki/store.js';
import { VBS_SERVICE } from '../../src/services/vbs.js';
import { SoapClient } from '../../src/soap/client.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { assignVms, eventually, startVbs, type Vbs } from './harness.js';

/**
 * Issue 8's authorization through real processes (`vbs up`: a front, a
 * volume delegate, a VMM delegate on the simulated hypervisor): every front
 * operation as the owner of the resource, another user, a user the snapshot
 * is shared with, an administrator by name (the front's `admins`) and one by
 * certificate (the administrator purpose); quotas under concurrent creates;
 * and the audit log those requests left.
 */
type Role = 'owner' | 'other' | 'shared' | 'admin' | 'adminCert';
const ROLES: readonly Role[] = ['owner', 'other', 'shared', 'admin', 'adminCert'];
const USER: Record<Role, string> = { owner: 'alice', other: 'bob', shared: 'carol', admin: 'admin', adminCert: 'ops' };

let vbs: Vbs;
const as = {} as Record<Role, SoapClient>;
const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: { code?: string }) => e.code ?? String(e));
const idOf = (r: XmlRecord, kind: 'volume' | 'snapshot') => String((r[kind] as XmlRecord)[`${kind}Id`]);

/** Fixtures, all alice's: one set that refused cells share, and one fresh resource per cell that consumes it. */
const fx = {
  volume: '',
  snapshot: '',
  attached: '',
  fresh: {} as Record<string, string>,
};

async function availableFor(client: SoapClient, id: string): Promise<void> {
  await eventually(async () => {
    const rows = (await client.call('DescribeVolumes', { volumeId: [id] })).volume as XmlRecord[];
    return rows.every((r) => r.status === 'available') ? true : undefined;
  });
}

async function aliceVolume(): Promise<string> {
  return idOf(await as.owner.call('CreateVolume', { size: 1, comment: 'matrix' }), 'volume');
}

async function settled(kind: 'volume' | 'snapshot', ids: string[], status: string): Promise<void> {
  await eventually(async () => {
    const op = kind === 'volume' ? 'DescribeVolumes' : 'DescribeSnapshots';
    const rows = (await as.owner.call(op, { [`${kind}Id`]: ids }))[kind] as XmlRecord[];
    return rows.every((r) => r.status === status) ? true : undefined;
  });
}

beforeAll(async () => {
  vbs = await startVbs();
  // The administrator purpose, set by the CA: ops is in no admins list.
  new PkiStore(join(vbs.dir, 'pki')).ensureIdentity('user-ops', { commonName: 'ops', use: 'client', admin: true });
  for (const role of ROLES) as[role] = vbs.soap(USER[role]);
  await assignVms(as.admin, 'alice', 'localhost', ['vm2', 'vm3']); // the owner attaches into these

  const consumers = ['owner', 'admin', 'adminCert'];
  const volumeKeys = ['base', 'attachedBase', ...consumers.flatMap((r) => [`delete-${r}`, `attach-${r}`, `detach-${r}`, `modify-${r}`])];
  const volumes = Object.fromEntries(await Promise.all(volumeKeys.map(async (k) => [k, await aliceVolume()] as const)));
  await settled('volume', Object.values(volumes), 'available');
  fx.volume = volumes.base!;
  fx.attached = volumes.attachedBase!;
  const snapKeys = ['base', ...consumers.map((r) => `deleteSnap-${r}`)];
  const snaps = Object.fromEntries(await Promise.all(snapKeys.map(async (k) => [k, idOf(await as.owner.call('CreateSnapshot', { volumeId: fx.volume }), 'snapshot')] as const)));
  await settled('snapshot', Object.values(snaps), 'completed');
  fx.snapshot = snaps.base!;
  await as.owner.call('ShareSnapshot', { snapshotId: fx.snapshot, user: 'carol' });
  const toAttach = [fx.attached, ...consumers.map((r) => volumes[`detach-${r}`]!)];
  await Promise.all(toAttach.map((id, i) => as.owner.call('AttachVolume', { volumeId: id, vmmHost: 'localhost', vmId: 'vm3', device: `xvd${'cdef'[i]}`, mode: 'r' })));
  await eventually(async () => {
    const rows = (await as.owner.call('DescribeVolumes', { volumeId: toAttach })).volume as XmlRecord[];
    return rows.every((r) => (r.attachments as XmlRecord[]).every((a) => a.status === 'attached')) ? true : undefined;
  });
  fx.fresh = { ...volumes, ...snaps };
}, 120_000);

afterAll(async () => {
  await vbs?.stop();
});

/** One row per operation: the call each role makes, and what each must get. */
interface Row {
  readonly op: string;
  readonly call: (role: Role) => XmlRecord;
  readonly expect: Record<Role, string>;
}
const ALL_OK = { owner: 'ok', other: 'ok', shared: 'ok', admin: 'ok', adminCert: 'ok' } as const;
const OWNER_OR_ADMIN = (notFound: string) => ({ owner: 'ok', other: notFound, shared: notFound, admin: 'ok', adminCert: 'ok' }) as const;
const ADMINS_ONLY = { owner: 'UnauthorizedOperation', other: 'UnauthorizedOperation', shared: 'UnauthorizedOperation', admin: 'ok', adminCert: 'ok' } as const;
/** A cell that succeeds acts on its own fresh resource; a refused one on the shared fixture. */
const pick = (role: Role, row: Record<Role, string>, fresh: string, shared: () => string) => (row[role] === 'ok' ? fx.fresh[`${fresh}-${role}`]! : shared());
const VOL_NF = 'InvalidVolume.NotFound';
const SNAP_NF = 'InvalidSnapshot.NotFound';
const DEVICES: Record<Role, string> = { owner: 'xvdj', other: 'xvdk', shared: 'xvdl', admin: 'xvdm', adminCert: 'xvdn' };

const MATRIX: readonly Row[] = [
  { op: 'CreateVolume', call: () => ({ size: 1 }), expect: ALL_OK },
  { op: 'CreateVolume', call: () => ({ size: 1, snapshotId: fx.snapshot }), expect: { owner: 'ok', other: SNAP_NF, shared: 'ok', admin: 'ok', adminCert: 'ok' } },
  { op: 'DeleteVolume', call: (r) => ({ volumeId: pick(r, OWNER_OR_ADMIN(VOL_NF), 'delete', () => fx.volume) }), expect: OWNER_OR_ADMIN(VOL_NF) },
  { op: 'DescribeVolumes', call: () => ({ volumeId: [fx.volume] }), expect: OWNER_OR_ADMIN(VOL_NF) },
  { op: 'CreateSnapshot', call: () => ({ volumeId: fx.volume }), expect: OWNER_OR_ADMIN(VOL_NF) },
  {
    op: 'DeleteSnapshot',
    call: (r) => ({ snapshotId: pick(r, OWNER_OR_ADMIN(SNAP_NF), 'deleteSnap', () => fx.snapshot) }),
    expect: { ...OWNER_OR_ADMIN(SNAP_NF), shared: 'UnauthorizedOperation' },
  },
  { op: 'DescribeSnapshots', call: () => ({ snapshotId: [fx.snapshot] }), expect: { ...OWNER_OR_ADMIN(SNAP_NF), shared: 'ok' } },
  {
    op: 'AttachVolume',
    call: (r) => ({ volumeId: pick(r, OWNER_OR_ADMIN(VOL_NF), 'attach', () => fx.volume), vmmHost: 'localhost', vmId: 'vm2', device: DEVICES[r], mode: 'r' }),
    expect: OWNER_OR_ADMIN(VOL_NF),
  },
  { op: 'DetachVolume', call: (r) => ({ volumeId: pick(r, OWNER_OR_ADMIN(VOL_NF), 'detach', () => fx.attached) }), expect: OWNER_OR_ADMIN(VOL_NF) },
  { op: 'ShareSnapshot', call: () => ({ snapshotId: fx.snapshot, user: 'dave' }), expect: { ...OWNER_OR_ADMIN(SNAP_NF), shared: 'UnauthorizedOperation' } },
  { op: 'UnshareSnapshot', call: () => ({ snapshotId: fx.snapshot, user: 'dave' }), expect: { ...OWNER_OR_ADMIN(SNAP_NF), shared: 'UnauthorizedOperation' } },
  // Issue 18: tags follow the resource's ownership (a shared snapshot is seen, not managed); zones are everyone's.
  { op: 'CreateTags', call: () => ({ resourceId: [fx.volume], tag: [{ key: 'k', value: 'v' }] }), expect: OWNER_OR_ADMIN(VOL_NF) },
  { op: 'DeleteTags', call: () => ({ resourceId: [fx.snapshot], tag: [{ key: 'nothing' }] }), expect: { ...OWNER_OR_ADMIN(SNAP_NF), shared: 'UnauthorizedOperation' } },
  { op: 'DescribeTags', call: () => ({}), expect: ALL_OK },
  { op: 'DescribeAvailabilityZones', call: () => ({}), expect: ALL_OK },
  { op: 'DescribeSnapshotSharing', call: () => ({ snapshotId: fx.snapshot }), expect: { ...OWNER_OR_ADMIN(SNAP_NF), shared: 'UnauthorizedOperation' } },
  { op: 'SetQuota', call: () => ({ user: 'alice', volumes: 1000 }), expect: ADMINS_ONLY },
  { op: 'DescribeQuota', call: () => ({ user: 'alice' }), expect: ADMINS_ONLY },
  { op: 'CheckConsistency', call: () => ({}), expect: ADMINS_ONLY },
  { op: 'AssignVm', call: () => ({ vmmHost: 'localhost', vmId: 'vm9', user: 'dave' }), expect: ADMINS_ONLY },
  { op: 'UnassignVm', call: () => ({ vmmHost: 'localhost', vmId: 'vm8' }), expect: ADMINS_ONLY },
  { op: 'DescribeVmAssignments', call: () => ({}), expect: ADMINS_ONLY },
  { op: 'RetireHost', call: () => ({ host: 'gone-host' }), expect: ADMINS_ONLY },
  { op: 'BackupMetadata', call: () => ({}), expect: ADMINS_ONLY },
  // A rebuild runs on an empty metadata only: here administrators pass the check and are told so.
  { op: 'RebuildMetadata', call: () => ({}), expect: { ...ADMINS_ONLY, admin: 'IncorrectState', adminCert: 'IncorrectState' } },
  { op: 'ModifyVolume', call: (r) => ({ volumeId: pick(r, OWNER_OR_ADMIN(VOL_NF), 'modify', () => fx.volume), size: 2 }), expect: OWNER_OR_ADMIN(VOL_NF) },
  { op: 'DescribeVolumesModifications', call: () => ({ volumeId: [fx.volume] }), expect: OWNER_OR_ADMIN(VOL_NF) },
];

describe('the authorization matrix', () => {
  it('covers every front operation', () => {
    expect(new Set(MATRIX.map((r) => r.op))).toEqual(new Set(Object.keys(VBS_SERVICE.operations)));
  });

  it.each(MATRIX.map((row) => [`${row.op}(${Object.keys(row.call('owner')).join(',')})`, row] as const))('%s', async (_name, row) => {
    const got = Object.fromEntries(await Promise.all(ROLES.map(async (role) => [role, await code(as[role].call(row.op, row.call(role)))] as const)));
    expect(got).toEqual(row.expect);
  }, 60_000);

  it('records name their owners: an administrator sees everyone, a user their own and what is shared with them', async () => {
    const owners = async (role: Role, op: 'DescribeVolumes' | 'DescribeSnapshots') => {
      const field = op === 'DescribeVolumes' ? 'volume' : 'snapshot';
      return new Set(((await as[role].call(op, {}))[field] as XmlRecord[]).map((r) => r.owner));
    };
    expect(await owners('owner', 'DescribeVolumes')).toEqual(new Set(['alice']));
    expect(await owners('admin', 'DescribeVolumes')).toEqual(new Set(['alice', 'bob', 'carol', 'admin', 'ops']));
    expect(await owners('shared', 'DescribeSnapshots')).toEqual(new Set(['alice']));
    expect(await owners('other', 'DescribeSnapshots')).toEqual(new Set());
    // What an administrator made of alice's volume is the administrator's.
    expect(await owners('adminCert', 'DescribeSnapshots')).toContain('ops');
  });
});

describe('instances a user may attach into (issue 17 item 7)', () => {
  it("another tenant's VM, by host + VM or by its name (scan), is refused as an unknown one; the VM's owner attaches", async () => {
    const bobs = idOf(await as.other.call('CreateVolume', { size: 1 }), 'volume');
    await availableFor(as.other, bobs);
    const byVm = await as.other.call('AttachVolume', { volumeId: bobs, vmmHost: 'localhost', vmId: 'vm3', device: 'xvdz' }).then(() => 'ok', (e: { code: string; message: string }) => `${e.code}: ${e.message}`);
    const unknownVm = await as.other.call('AttachVolume', { volumeId: bobs, vmmHost: 'localhost', vmId: 'vm77', device: 'xvdz' }).then(() => 'ok', (e: { code: string; message: string }) => `${e.code}: ${e.message}`);
    expect(byVm).toBe("InvalidInstanceID.NotFound: The VM 'vm3' on 'localhost' does not exist.");
    expect(unknownVm).toBe("InvalidInstanceID.NotFound: The VM 'vm77' on 'localhost' does not exist.");
    const byName = await code(as.other.call('AttachVolume', { volumeId: bobs, instanceId: 'vm3', device: 'xvdz' }));
    expect(byName).toBe('InvalidInstanceID.NotFound');
    // vm1 is nobody's: the administrators'. An administrator attaches there; alice, its owner once assigned, too.
    expect(await code(as.other.call('AttachVolume', { volumeId: bobs, instanceId: 'vm1', device: 'xvdz' }))).toBe('InvalidInstanceID.NotFound');
    const listed = (await as.admin.call('DescribeVmAssignments', { user: 'alice' })).assignment as XmlRecord[];
    expect(listed.map((a) => `${String(a.vmmHost)}/${String(a.vmId)}`)).toEqual(['localhost/vm2', 'localhost/vm3']);
  });
});

describe('quotas under concurrency', () => {
  /** `n` creates of `size` GiB at once by a user with `limits`: how many succeeded and were refused, and the usage after. */
  async function race(user: string, limits: XmlRecord, n: number, size: number) {
    await as.admin.call('SetQuota', { user, ...limits });
    const client = vbs.soap(user);
    const results = await Promise.all(Array.from({ length: n }, () => code(client.call('CreateVolume', { size }))));
    const quota = (await as.admin.call('DescribeQuota', { user })).quota as XmlRecord;
    return { ok: results.filter((r) => r === 'ok').length, refused: results.filter((r) => r === 'QuotaExceeded').length, quota };
  }

  it('20 parallel creates with a limit of 5 volumes: exactly 5 succeed, the rest are QuotaExceeded', async () => {
    const r = await race('quinn', { volumes: 5 }, 20, 1);
    expect(r).toMatchObject({ ok: 5, refused: 15, quota: { volumes: 5, volumeLimit: 5, gib: 5 } });
  });

  it('8 parallel 3 GiB creates with a limit of 10 GiB: exactly 3 succeed', async () => {
    const r = await race('gina', { gib: 10 }, 8, 3);
    expect(r).toMatchObject({ ok: 3, refused: 5, quota: { volumes: 3, gib: 9, gibLimit: 10 } });
  });

  it('12 parallel snapshots of a 3 GiB volume with a limit of 10 snapshot GiB: exactly 3 succeed', async () => {
    await as.admin.call('SetQuota', { user: 'sven', snapshotGib: 10 });
    const sven = vbs.soap('sven');
    const vol = idOf(await sven.call('CreateVolume', { size: 3 }), 'volume');
    await eventually(async () => (((await sven.call('DescribeVolumes', { volumeId: [vol] })).volume as XmlRecord[])[0]!.status === 'available' ? true : undefined));
    const results = await Promise.all(Array.from({ length: 12 }, () => code(sven.call('CreateSnapshot', { volumeId: vol }))));
    expect(results.filter((r) => r === 'ok')).toHaveLength(3);
    expect(results.filter((r) => r === 'QuotaExceeded')).toHaveLength(9);
    expect((await as.admin.call('DescribeQuota', { user: 'sven' })).quota).toMatchObject({ snapshots: 3, snapshotGib: 9, snapshotGibLimit: 10, gib: 3 });
  });

  it('a create the volume delegate refuses gives its usage back', async () => {
    await as.admin.call('SetQuota', { user: 'fay', volumes: 1, gib: 16384 });
    const fay = vbs.soap('fay');
    // More than the test machine's disk: the delegate refuses it, the workflow rolls back.
    expect(await code(fay.call('CreateVolume', { size: 16384 }))).toBe('InsufficientCapacity');
    expect((await as.admin.call('DescribeQuota', { user: 'fay' })).quota).toMatchObject({ volumes: 0, gib: 0 });
    expect(await code(fay.call('CreateVolume', { size: 1 }))).toBe('ok');
  });
});

describe('the audit log', () => {
  const entries = () => readFileSync(join(vbs.dir, 'audit.log'), 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as AuditEntry);

  it('has a line for each allowed change, naming the owner an administrator acted for', () => {
    const deleted = entries().find((e) => e.operation === 'DeleteVolume' && e.caller === 'ops' && e.result === 'ok');
    expect(deleted).toMatchObject({ admin: true, onBehalfOf: 'alice', arguments: { volumeId: fx.fresh['delete-adminCert'] } });
    const byName = entries().find((e) => e.operation === 'DeleteVolume' && e.caller === 'admin' && e.result === 'ok');
    expect(byName).toMatchObject({ admin: true, onBehalfOf: 'alice', arguments: { volumeId: fx.fresh['delete-admin'] } });
    // The owner acting on their own: no onBehalfOf.
    expect(entries().find((e) => e.operation === 'DeleteVolume' && e.caller === 'alice' && e.result === 'ok')).not.toHaveProperty('onBehalfOf');
    expect(Date.parse(deleted!.time)).not.toBeNaN();
    expect(deleted!.requestId).toMatch(/^[0-9a-f-]{36}$/);
    const created = entries().filter((e) => e.operation === 'CreateVolume' && e.caller === 'quinn');
    expect(created.filter((e) => e.result === 'ok').every((e) => /^vol-/.test(e.resource ?? ''))).toBe(true);
    expect(created.filter((e) => e.result === 'QuotaExceeded')).toHaveLength(15);
    // Successful reads are not audited.
    expect(entries().filter((e) => e.operation?.startsWith('Describe') && e.result === 'ok')).toEqual([]);
  });

  it('has a line for each refused request, with the request id the caller got', async () => {
    const fault = (await as.other.call('DeleteVolume', { volumeId: fx.volume }).catch((e: unknown) => e)) as { code: string; requestId: string };
    expect(fault.code).toBe(VOL_NF);
    expect(entries().find((e) => e.requestId === fault.requestId)).toMatchObject({ caller: 'bob', admin: false, operation: 'DeleteVolume', result: VOL_NF });
    expect(entries().filter((e) => e.operation === 'CheckConsistency' && e.result === 'UnauthorizedOperation').map((e) => e.caller).sort()).toEqual(['alice', 'bob', 'carol']);
    expect(entries().some((e) => e.operation === 'DescribeQuota' && e.caller === 'carol' && e.result === 'UnauthorizedOperation')).toBe(true);
  });

  it('has a line for each caller the front refuses before reading its request', async () => {
    const pki = join(vbs.dir, 'pki');
    // The front's own certificate (a service's: never a tenant), and a delegate's server-only one (no client certificate at all).
    for (const [name, caller] of [['front', 'vbs-front'], ['volume-delegate', null]] as const) {
      const client = new SoapClient({
        def: VBS_SERVICE,
        url: vbs.url,
        tls: { key: readFileSync(join(pki, `${name}.key`)), cert: readFileSync(join(pki, `${name}.crt`)), ca: readFileSync(join(pki, 'ca.crt')) },
      });
      try {
        const fault = (await client.call('DeleteVolume', { volumeId: fx.volume }).catch((e: unknown) => e)) as { code: string; requestId: string };
        expect(fault.code).toBe('AuthFailure');
        expect(entries().find((e) => e.requestId === fault.requestId)).toMatchObject({ caller, operation: null, result: 'AuthFailure' });
      } finally {
        client.close();
      }
    }
  });
});

describe('the CLI', () => {
  it('share-snapshot, unshare-snapshot and admin quota show, as the deployment admin', async () => {
    const share = await vbs.cli('share-snapshot', fx.snapshot, 'erin');
    expect(share).toMatchObject({ code: 0, stdout: `${fx.snapshot}: shared with erin\n` });
    expect(await code(vbs.soap('erin').call('DescribeSnapshots', { snapshotId: [fx.snapshot] }))).toBe('ok');
    expect(await vbs.cli('unshare-snapshot', fx.snapshot, 'erin')).toMatchObject({ code: 0, stdout: `${fx.snapshot}: no longer shared with erin\n` });
    expect(await code(vbs.soap('erin').call('DescribeSnapshots', { snapshotId: [fx.snapshot] }))).toBe(SNAP_NF);
    const show = await vbs.cli('--json', 'admin', 'quota', 'show', 'quinn');
    expect(JSON.parse(show.stdout)).toEqual({ user: 'quinn', volumeLimit: 5, gibLimit: 102400, snapshotLimit: 1000, snapshotGibLimit: 102400, volumes: 5, gib: 5, snapshots: 0, snapshotGib: 0 });
  });
});
