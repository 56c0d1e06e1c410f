import { describe, expect, it } from 'vitest';
import { fault, FakeFront, fakeRuntime, rec, run, SNAP } from './fakes.js';

/** The CLI of issue 8: share-snapshot, unshare-snapshot, admin quota set|show. */
async function vbs(front: FakeFront, ...args: string[]) {
  const runtime = fakeRuntime(front);
  const code = await run(runtime, ...args);
  return { code, stdout: runtime.stdout.text, stderr: runtime.stderr.text };
}

const quota = { user: 'alice', volumeLimit: 10, gibLimit: 100, snapshotLimit: 5, snapshotGibLimit: 50, volumes: 3, gib: 30, snapshots: 1, snapshotGib: 10 };

describe('vbs share-snapshot / unshare-snapshot', () => {
  it('sends the snapshot and the user, and says what it did', async () => {
    const front = new FakeFront({ ShareSnapshot: () => rec({ return: true }), UnshareSnapshot: () => rec({ return: true }) });
    expect(await vbs(front, 'share-snapshot', SNAP, 'bob')).toEqual({ code: 0, stdout: `${SNAP}: shared with bob\n`, stderr: '' });
    expect(await vbs(front, 'unshare-snapshot', SNAP, 'bob')).toEqual({ code: 0, stdout: `${SNAP}: no longer shared with bob\n`, stderr: '' });
    expect(front.calls).toEqual([
      { operation: 'ShareSnapshot', input: { snapshotId: SNAP, user: 'bob' } },
      { operation: 'UnshareSnapshot', input: { snapshotId: SNAP, user: 'bob' } },
    ]);
    expect(JSON.parse((await vbs(front, '--json', 'share-snapshot', SNAP, 'bob')).stdout)).toEqual({ return: true });
  });

  it('a bad id or user name is a usage error that sends nothing; a fault exits 1', async () => {
    const front = new FakeFront({ ShareSnapshot: () => { throw fault('UnauthorizedOperation', 'only its owner may share it.'); } });
    for (const args of [['snap-1', 'bob'], [SNAP, 'vbs-front'], [SNAP, '-x'], [SNAP]]) {
      expect((await vbs(front, 'share-snapshot', ...args)).code, args.join(' ')).toBe(2);
    }
    expect(front.calls).toEqual([]);
    expect(await vbs(front, 'share-snapshot', SNAP, 'carol')).toEqual({ code: 1, stdout: '', stderr: 'vbs: UnauthorizedOperation: only its owner may share it.\n' });
  });
});

describe('vbs admin quota', () => {
  it('show prints usage beside each limit', async () => {
    const front = new FakeFront({ DescribeQuota: () => rec({ quota }) });
    const r = await vbs(front, 'admin', 'quota', 'show', 'alice');
    expect(front.calls).toEqual([{ operation: 'DescribeQuota', input: { user: 'alice' } }]);
    expect(r.code).toBe(0);
    expect(r.stdout.trimEnd().split('\n').map((l) => l.split(/\s+/))).toEqual([
      ['USER', 'QUOTA', 'USED', 'LIMIT'],
      ['alice', 'volumes', '3', '10'],
      ['alice', 'gib', '30', '100'],
      ['alice', 'snapshots', '1', '5'],
      ['alice', 'snapshot-gib', '10', '50'],
    ]);
    expect(JSON.parse((await vbs(front, '--json', 'admin', 'quota', 'show', 'alice')).stdout)).toEqual(quota);
  });

  it('set sends only the limits given, as numbers', async () => {
    const front = new FakeFront({ SetQuota: () => rec({ quota }) });
    expect((await vbs(front, 'admin', 'quota', 'set', 'alice', '--volumes', '10', '--snapshots', '0')).code).toBe(0);
    expect(front.calls).toEqual([{ operation: 'SetQuota', input: { user: 'alice', volumes: 10, gib: undefined, snapshots: 0, snapshotGib: undefined } }]);
    expect((await vbs(front, 'admin', 'quota', 'set', 'bob', '--snapshot-gib', '40')).code).toBe(0);
    expect(front.calls.at(-1)).toEqual({ operation: 'SetQuota', input: { user: 'bob', volumes: undefined, gib: undefined, snapshots: undefined, snapshotGib: 40 } });
  });

  it('set without a limit, or with a bad one, is a usage error; a non-administrator gets the fault', async () => {
    const front = new FakeFront({ SetQuota: () => { throw fault('UnauthorizedOperation', 'Only VBS administrators may set quotas.'); } });
    for (const args of [['alice'], ['alice', '--gib', '-1'], ['alice', '--snapshot-gib', 'x'], ['alice', '--gib', 'lots'], ['alice', '--volumes', '1.5'], ['a b', '--gib', '1']]) {
      expect((await vbs(front, 'admin', 'quota', 'set', ...args)).code, args.join(' ')).toBe(2);
    }
    expect(front.calls).toEqual([]);
    expect(await vbs(front, 'admin', 'quota', 'set', 'alice', '--gib', '5')).toEqual({ code: 1, stdout: '', stderr: 'vbs: UnauthorizedOperation: Only VBS administrators may set quotas.\n' });
  });
});

describe('vbs admin vm (issue 17 item 7)', () => {
  const assignment = { vmmHost: 'localhost', vmId: 'vm2', user: 'alice', assignTime: '2026-12-07T16:00:00.000Z' };

  it('assign, unassign and list send the VM and the user, and print the assignments', async () => {
    const front = new FakeFront({
      AssignVm: () => rec({ assignment }),
      UnassignVm: () => rec({ return: true }),
      DescribeVmAssignments: () => rec({ assignment: [assignment] }),
    });
    const assigned = await vbs(front, 'admin', 'vm', 'assign', 'LocalHost', 'vm2', 'alice');
    expect(assigned.code).toBe(0);
    expect(assigned.stdout.trimEnd().split('\n').map((l) => l.split(/\s+/))).toEqual([['HOST', 'VM', 'USER', 'ASSIGNED'], ['localhost', 'vm2', 'alice', '2026-12-07T16:00:00.000Z']]);
    expect((await vbs(front, 'admin', 'vm', 'unassign', 'localhost', 'vm2')).code).toBe(0);
    expect(JSON.parse((await vbs(front, '--json', 'admin', 'vm', 'list', 'alice')).stdout)).toEqual([assignment]);
    expect(front.calls).toEqual([
      { operation: 'AssignVm', input: { vmmHost: 'localhost', vmId: 'vm2', user: 'alice' } },
      { operation: 'UnassignVm', input: { vmmHost: 'localhost', vmId: 'vm2' } },
      { operation: 'DescribeVmAssignments', input: { user: 'alice' } },
    ]);
  });

  it('a bad host, VM or user is a usage error that sends nothing', async () => {
    const front = new FakeFront({});
    for (const args of [['assign', 'bad host', 'vm2', 'alice'], ['assign', 'localhost', '-vm', 'alice'], ['assign', 'localhost', 'vm2', 'vbs-front'], ['unassign', 'localhost']]) {
      expect((await vbs(front, 'admin', 'vm', ...args)).code, args.join(' ')).toBe(2);
    }
    expect(front.calls).toEqual([]);
  });
});
