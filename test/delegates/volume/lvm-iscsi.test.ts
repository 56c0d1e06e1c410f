import { closeSync, mkdirSync, openSync, readSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { VbsError } from '../../../src/core/errors.js';
import { CommandFailed } from '../../../src/commands/runner.js';
import { volumeDelegateHandlers } from '../../../src/delegates/volume/service.js';
import { cleanupDirs, eventually, GiB, IQN_PREFIX, ietTargets, lvmConfig, lvNames, openLvm, ready, sim, simSite } from './helpers.js';
import { faultOf } from '../../fault-of.js';

afterEach(cleanupDirs);

const VOL = (n: number) => `vol-${n.toString(16).padStart(17, '0')}`;
const SNAP = (n: number) => `snap-${n.toString(16).padStart(17, '0')}`;

/** Writes a marker at a few offsets of an LV's backing file (the simulated device). */
function writeMarkers(state: string, lv: string, text: string): void {
  const file = sim(state, 'lvm', 'path', `vbs/${lv}`).trim();
  const fd = openSync(file, 'r+');
  for (const at of [0, 300 * 1024 ** 2, GiB - 4096]) writeSync(fd, Buffer.from(text), 0, text.length, at);
  closeSync(fd);
}

function readAt(state: string, lv: string, at: number, n: number): string {
  const file = sim(state, 'lvm', 'path', `vbs/${lv}`).trim();
  const fd = openSync(file, 'r');
  const buf = Buffer.alloc(n);
  readSync(fd, buf, 0, n, at);
  closeSync(fd);
  return buf.toString();
}

describe('lvm-iscsi back end on the simulator (iet)', { timeout: 180_000 }, () => {
  it('creates and deletes a blank volume as an LV, idempotently, with capacity from vgs', async () => {
    const site = simSite(4);
    const { backend } = await openLvm(lvmConfig(site));
    expect(await backend.capacity()).toEqual({ totalBytes: 4 * GiB, freeBytes: 4 * GiB, provisionedBytes: 0 });
    await backend.createVolume(VOL(1), 1);
    await backend.createVolume(VOL(1), 1); // same request again: nothing more
    await ready(backend, VOL(1));
    await backend.createVolume(VOL(1), 1);
    expect(lvNames(site.state)).toEqual([VOL(1)]);
    expect(await backend.describe(VOL(1))).toEqual({ id: VOL(1), state: 'ready', sizeBytes: GiB, progress: 100 });
    expect(await backend.capacity()).toEqual({ totalBytes: 4 * GiB, freeBytes: 3 * GiB, provisionedBytes: GiB });
    expect(await backend.delete(VOL(1))).toBe(true);
    expect(await backend.delete(VOL(1))).toBe(false);
    expect(lvNames(site.state)).toEqual([]);
    expect(await backend.describe(VOL(1))).toEqual({ id: VOL(1), state: 'absent' });
  });

  it('snapshots outlive their volume, and a volume from a snapshot has its data, larger', async () => {
    const site = simSite(8);
    const { backend, ran } = await openLvm(lvmConfig(site));
    await backend.createVolume(VOL(1), 1);
    await ready(backend, VOL(1));
    writeMarkers(site.state, VOL(1), 'before');
    await backend.createSnapshot(SNAP(1), VOL(1));
    // The point in time is the request: a write after it is not in the snapshot.
    writeMarkers(site.state, VOL(1), 'after!');
    await ready(backend, SNAP(1));
    expect(ran.filter((r) => r.key === 'volume.lvm.snapshot')).toHaveLength(1);
    expect(ran.filter((r) => r.key === 'volume.lvm.copy')).toHaveLength(4); // 1 GiB in 256 MiB chunks
    expect(lvNames(site.state)).toEqual([SNAP(1), VOL(1)]); // the cow. source is gone
    expect(readAt(site.state, SNAP(1), 300 * 1024 ** 2, 6)).toBe('before');

    expect(await backend.delete(VOL(1))).toBe(true);
    expect(lvNames(site.state)).toEqual([SNAP(1)]);

    await backend.createVolume(VOL(2), 2, SNAP(1));
    await ready(backend, VOL(2));
    expect((await backend.describe(VOL(2))).sizeBytes).toBe(2 * GiB);
    for (const at of [0, 300 * 1024 ** 2, GiB - 4096]) expect(readAt(site.state, VOL(2), at, 6)).toBe('before');
    expect(lvNames(site.state)).toEqual([SNAP(1), VOL(2)]);
    expect((await backend.list()).map((o) => [o.id, o.state])).toEqual([
      [SNAP(1), 'ready'],
      [VOL(2), 'ready'],
    ]);
    // From a snapshot that is not here: a client fault, nothing created.
    expect((await faultOf(backend.createVolume(VOL(3), 1, SNAP(2)))).code).toBe('InvalidSnapshot.NotFound');
    await backend.createSnapshot(SNAP(3), VOL(2));
    await ready(backend, SNAP(3));
    expect((await faultOf(backend.createVolume(VOL(4), 1, SNAP(3)))).code).toBe('InvalidParameterValue');
    expect(lvNames(site.state)).toEqual([SNAP(1), SNAP(3), VOL(2)]);
  });

  it('reports progress of a copy, never ready before the rename', async () => {
    const site = simSite(8);
    const { backend } = await openLvm(lvmConfig(site, { copyChunkMiB: 64 }));
    await backend.createVolume(VOL(1), 1);
    await ready(backend, VOL(1));
    // Hold the final rename: the copy is whole but not yet the snapshot.
    mkdirSync(join(site.state, 'hang'), { recursive: true });
    writeFileSync(join(site.state, 'hang', 'lvrename.rename'), '1');
    writeFileSync(join(site.state, 'hang', 'lvrename.rename.count'), '1');
    await backend.createSnapshot(SNAP(1), VOL(1));
    const seen = new Set<number>();
    await eventually(async () => {
      const o = await backend.describe(SNAP(1));
      if (o.state === 'creating') seen.add(o.progress ?? -1);
      return o.state === 'ready' ? true : undefined;
    });
    expect([...seen].every((p) => p >= 0 && p <= 99)).toBe(true);
    expect(seen.has(99)).toBe(true);
  });

  it('refuses what the VG cannot hold, and never over-commits under concurrent creates', async () => {
    const site = simSite(3);
    const { backend } = await openLvm(lvmConfig(site));
    const results = await Promise.allSettled([1, 2, 3, 4, 5].map((n) => backend.createVolume(VOL(n), 1)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => (r.reason as VbsError).code);
    expect(refused).toEqual(['InsufficientCapacity', 'InsufficientCapacity']);
    for (const n of [1, 2, 3, 4, 5]) await eventually(async () => ((await backend.describe(VOL(n))).state === 'creating' ? undefined : true));
    expect(lvNames(site.state)).toHaveLength(3);
    expect((await backend.capacity()).freeBytes).toBe(0);
    // A snapshot needs room for its copy-on-write source and its copy.
    const [first] = lvNames(site.state);
    expect((await faultOf(backend.createSnapshot(SNAP(1), first!))).code).toBe('InsufficientCapacity');
    expect((await faultOf(backend.createVolume(VOL(9), 1))).code).toBe('InsufficientCapacity');
  });

  it('honours capacityGiB below what the VG has', async () => {
    const site = simSite(8);
    const { backend } = await openLvm(lvmConfig(site, { capacityGiB: 2 }));
    expect((await backend.capacity()).totalBytes).toBe(2 * GiB);
    await backend.createVolume(VOL(1), 2);
    expect((await faultOf(backend.createVolume(VOL(2), 1))).code).toBe('InsufficientCapacity');
  });

  it('a failing lvcreate -s leaves nothing behind; a failing rename leaves no LV and reports the error', async () => {
    const site = simSite(8);
    const { backend } = await openLvm(lvmConfig(site));
    await backend.createVolume(VOL(1), 1);
    await ready(backend, VOL(1));
    mkdirSync(join(site.state, 'fail'), { recursive: true });
    writeFileSync(join(site.state, 'fail', 'lvcreate.snapshot'), '  Failed to activate new LV.\n');
    const err = await faultOf(backend.createSnapshot(SNAP(1), VOL(1)));
    expect(err.code).toBe('OperationFailed');
    expect(err.message).toBe('volume.lvm.snapshot exited with 1');
    expect((err as CommandFailed).result.stderr).toMatch(/Failed to activate new LV\./);
    expect(lvNames(site.state)).toEqual([VOL(1)]);
    expect(await backend.describe(SNAP(1))).toEqual({ id: SNAP(1), state: 'absent' });

    writeFileSync(join(site.state, 'fail', 'lvcreate.snapshot.count'), '0');
    writeFileSync(join(site.state, 'fail', 'lvrename.rename'), '');
    await backend.createSnapshot(SNAP(1), VOL(1));
    const o = await eventually(async () => {
      const d = await backend.describe(SNAP(1));
      return d.state === 'error' ? d : undefined;
    });
    expect(o.message).toMatch(/volume\.lvm\.rename/);
    expect(lvNames(site.state)).toEqual([VOL(1)]);
    // The front deletes the failed snapshot; then it can be made again.
    expect(await backend.delete(SNAP(1))).toBe(true);
    writeFileSync(join(site.state, 'fail', 'lvrename.rename.count'), '0');
    await backend.createSnapshot(SNAP(1), VOL(1));
    await ready(backend, SNAP(1));
  });

  it('a failed copy whose temporaries cannot be removed either leaves them to the delete, which removes them or fails', async () => {
    // The soak's case: a killed copy, then the lvremove of its part. LV killed too.
    const site = simSite(8);
    const { backend } = await openLvm(lvmConfig(site));
    await backend.createVolume(VOL(1), 1);
    await ready(backend, VOL(1));
    mkdirSync(join(site.state, 'fail'), { recursive: true });
    // lvremove fails 5 times: the cow. removal that ends the copy, the 3 cleanup attempts, the first delete.
    writeFileSync(join(site.state, 'fail', 'lvremove.remove'), '  Logical volume in use.\n');
    writeFileSync(join(site.state, 'fail', 'lvremove.remove.count'), '5');
    await backend.createSnapshot(SNAP(1), VOL(1));
    await eventually(async () => ((await backend.describe(SNAP(1))).state === 'error' ? true : undefined));
    // Both temporaries are still there after the three cleanup attempts.
    expect(lvNames(site.state)).toEqual([`cow.${SNAP(1)}`, `part.${SNAP(1)}`, VOL(1)].sort());
    // One more failure: the delete fails, to be retried, and reports nothing gone.
    expect((await faultOf(backend.delete(SNAP(1)))).code).toBe('OperationFailed');
    expect(lvNames(site.state)).toContain(`part.${SNAP(1)}`);
    // The retry removes them.
    await backend.delete(SNAP(1));
    expect(lvNames(site.state)).toEqual([VOL(1)]);
    expect(await backend.describe(SNAP(1))).toEqual({ id: SNAP(1), state: 'absent' });
  });

  it('refuses to delete a volume whose snapshot is being copied, and ends a copy that is deleted', async () => {
    const site = simSite(8);
    const { backend } = await openLvm(lvmConfig(site, { copyChunkMiB: 1 }));
    await backend.createVolume(VOL(1), 1);
    await ready(backend, VOL(1));
    await backend.createSnapshot(SNAP(1), VOL(1));
    expect((await faultOf(backend.delete(VOL(1)))).code).toBe('IncorrectState');
    await eventually(async () => ((await backend.describe(SNAP(1))).progress ?? 0) > 0 || undefined);
    expect(await backend.delete(SNAP(1))).toBe(true);
    expect(await backend.describe(SNAP(1))).toEqual({ id: SNAP(1), state: 'absent' });
    expect(lvNames(site.state)).toEqual([VOL(1)]);
    expect(await backend.delete(VOL(1))).toBe(true);
  });

  it('removes copies a crash cut off when it opens', async () => {
    const site = simSite(8);
    sim(site.state, 'lvcreate', '-L', '1g', '-n', VOL(1), 'vbs');
    sim(site.state, 'lvcreate', '-L', '1g', '-n', `part.${VOL(2)}`, 'vbs');
    sim(site.state, 'lvcreate', '-s', '-L', '1g', '-n', `cow.${SNAP(1)}`, `vbs/${VOL(1)}`);
    sim(site.state, 'lvcreate', '-L', '1g', '-n', `part.${SNAP(1)}`, 'vbs');
    sim(site.state, 'lvcreate', '-L', '1g', '-n', 'someone-elses', 'vbs');
    const { backend } = await openLvm(lvmConfig(site));
    expect(lvNames(site.state)).toEqual(['someone-elses', VOL(1)]);
    expect(await backend.describe(VOL(2))).toEqual({ id: VOL(2), state: 'absent' });
    expect((await backend.list()).map((o) => o.id)).toEqual([VOL(1)]);
  });
});

describe('iSCSI exports through ietadm (simulated IET)', { timeout: 180_000 }, () => {
  it('exports one target per volume, idempotently, and withdraws it with the last host, across a restart', async () => {
    const site = simSite(8);
    const cfg = lvmConfig(site);
    const { backend } = await openLvm(cfg);
    await backend.createVolume(VOL(1), 1);
    await ready(backend, VOL(1));
    const iqn = `${IQN_PREFIX}:${VOL(1)}`;
    const a = await backend.exportVolume(VOL(1), 'host-a');
    expect(a).toEqual({ kind: 'iscsi', portal: '127.0.0.1:3260', iqn, lun: 1 });
    expect(await backend.exportVolume(VOL(1), 'host-a')).toEqual(a);
    expect(await backend.exportVolume(VOL(1), 'host-b')).toEqual(a);
    expect(ietTargets(site.state)).toMatch(new RegExp(`^tid:1 name:${iqn}\\n\\tlun:1 .*blocks:2097152 .*path:/`));
    expect(ietTargets(site.state).match(/^tid:/gm)).toHaveLength(1);
    expect(await backend.listExports()).toEqual({
      tracked: true,
      exports: [
        { volumeId: VOL(1), vmmHost: 'host-a', kind: 'iscsi', iqn, tid: 1, lun: 1 },
        { volumeId: VOL(1), vmmHost: 'host-b', kind: 'iscsi', iqn, tid: 1, lun: 1 },
      ],
    });
    // The exported LV is held by the target: the simulator refuses to remove it.
    expect(() => sim(site.state, 'lvremove', '-f', `vbs/${VOL(1)}`)).toThrow(/in use/);

    await backend.unexportVolume(VOL(1), 'host-a');
    expect(ietTargets(site.state)).toContain(iqn);
    const restarted = (await openLvm(cfg)).backend;
    expect((await restarted.listExports()).exports.map((e) => e.vmmHost)).toEqual(['host-b']);
    await restarted.unexportVolume(VOL(1), 'host-b');
    expect(ietTargets(site.state)).toBe('');
    await restarted.unexportVolume(VOL(1), 'host-b');
    expect(await restarted.listExports()).toEqual({ tracked: true, exports: [] });
  });

  it('puts back, when it opens, the targets its hosts still use that the target daemon lost', async () => {
    const site = simSite(8);
    const cfg = lvmConfig(site);
    const { backend } = await openLvm(cfg);
    await backend.createVolume(VOL(1), 1);
    await ready(backend, VOL(1));
    await backend.exportVolume(VOL(1), 'host-a');
    const before = ietTargets(site.state);
    // What a restart of the daemon does: its targets are gone.
    sim(site.state, 'ietadm', '--op', 'delete', '--tid=1', '--lun=1');
    sim(site.state, 'ietadm', '--op', 'delete', '--tid=1');
    expect(ietTargets(site.state)).toBe('');
    const reopened = (await openLvm(cfg)).backend;
    expect(ietTargets(site.state)).toBe(before);
    expect((await reopened.listExports()).exports.map((e) => e.vmmHost)).toEqual(['host-a']);
  });

  it('gives concurrent exports distinct target ids, lowest first, and reuses freed ones', async () => {
    const site = simSite(16);
    const { backend } = await openLvm(lvmConfig(site));
    sim(site.state, 'ietadm', '--op', 'new', '--tid=2', '--params', 'Name=iqn.2001-04.com.example:not-ours');
    const ids = [1, 2, 3, 4, 5, 6];
    for (const n of ids) await backend.createVolume(VOL(n), 1);
    for (const n of ids) await ready(backend, VOL(n));
    await Promise.all(ids.map((n) => backend.exportVolume(VOL(n), 'host-a')));
    const tids = (await backend.listExports()).exports.map((e) => e.tid);
    expect(new Set(tids).size).toBe(6);
    expect([...tids].sort((x, y) => x! - y!)).toEqual([1, 3, 4, 5, 6, 7]);
    const third = (await backend.listExports()).exports.find((e) => e.volumeId === VOL(3))!.tid;
    await backend.unexportVolume(VOL(3), 'host-a');
    const freed = (await backend.listExports()).exports.find((e) => e.volumeId === VOL(3));
    expect(freed).toBeUndefined();
    await backend.createVolume(VOL(9), 1);
    await ready(backend, VOL(9));
    await backend.exportVolume(VOL(9), 'host-a');
    const nine = (await backend.listExports()).exports.find((e) => e.volumeId === VOL(9));
    expect(nine!.tid).toBe(third);
    expect(ietTargets(site.state)).toContain('name:iqn.2001-04.com.example:not-ours');
  });

  it('a LUN that cannot be added leaves no target behind', async () => {
    const site = simSite(8);
    // An operator's pattern pointing at a device that is not there: ietadm refuses the LUN (ENOENT).
    const broken = 'iscsi.iet.add-lun.sim = <node> <vbsHome>/dist/sim/hostsim.js --state <stateDir> ietadm --op new --tid=<tid> --lun=<lun> --params Path=/nonexistent/device,Type=fileio';
    const { backend } = await openLvm(lvmConfig(site), broken);
    await backend.createVolume(VOL(1), 1);
    await ready(backend, VOL(1));
    const err = await faultOf(backend.exportVolume(VOL(1), 'host-a'));
    expect(err.code).toBe('OperationFailed');
    expect(err.message).toMatch(/^iscsi\.iet\.add-lun(\.sim)? exited with 254$/);
    expect((err as CommandFailed).result.stderr).toMatch(/No such file or directory\./);
    expect(ietTargets(site.state)).toBe('');
    expect(await backend.listExports()).toEqual({ tracked: true, exports: [] });
  });

  it('deleting a volume withdraws its target', async () => {
    const site = simSite(8);
    const { backend } = await openLvm(lvmConfig(site));
    await backend.createVolume(VOL(1), 1);
    await ready(backend, VOL(1));
    await backend.exportVolume(VOL(1), 'host-a');
    expect(await backend.delete(VOL(1))).toBe(true);
    expect(ietTargets(site.state)).toBe('');
    expect(lvNames(site.state)).toEqual([]);
    expect((await faultOf(backend.exportVolume(VOL(1), 'host-a'))).code).toBe('InvalidVolume.NotFound');
  });
});

describe('SOAP handlers over the lvm-iscsi back end', { timeout: 180_000 }, () => {
  it('refuses hostile input as a client fault before any command runs', async () => {
    const site = simSite(8);
    const { backend, ran } = await openLvm(lvmConfig(site));
    const h = volumeDelegateHandlers(backend);
    const before = ran.length;
    const hostile: [string, Record<string, unknown>][] = [
      ['CreateVolume', { volumeId: 'vol-../../../etc/passwd', sizeGiB: 1 }],
      ['CreateVolume', { volumeId: VOL(1), sizeGiB: 0 }],
      ['CreateVolume', { volumeId: VOL(1), sizeGiB: 1, snapshotId: 'snap-$(reboot)' }],
      ['CreateSnapshot', { snapshotId: SNAP(1), volumeId: 'vol-1;rm -rf /' }],
      ['DeleteObject', { id: '--force' }],
      ['DescribeObjects', { id: ['vbs/other-lv'] }],
      ['ExportVolume', { volumeId: VOL(1), vmmHost: 'host a;reboot' }],
      ['UnexportVolume', { volumeId: 'vol-0123456789ABCDEF0', vmmHost: 'host-a' }],
    ];
    for (const [op, input] of hostile) {
      const err = await faultOf(Promise.resolve().then(() => h[op]!(input as never, {} as never)));
      expect(['InvalidParameterValue', 'MissingParameter']).toContain(err.code);
      expect(err.faultBy).toBe('Client');
    }
    expect(ran.length).toBe(before);
    expect(lvNames(site.state)).toEqual([]);
  });

  it('reports its back end and tracked exports', async () => {
    const site = simSite(8);
    const h = volumeDelegateHandlers((await openLvm(lvmConfig(site))).backend);
    expect(await h.GetCapacity!({} as never, {} as never)).toEqual({ backend: 'lvm-iscsi', totalBytes: 8 * GiB, freeBytes: 8 * GiB, provisionedBytes: 0 });
    expect(await h.ListExports!({} as never, {} as never)).toEqual({ tracked: true, export: [] });
  });
});

describe('simulated device files', { timeout: 180_000 }, () => {
  it('are sparse: a copy of a mostly empty volume does not fill the disk', async () => {
    const site = simSite(8);
    const { backend } = await openLvm(lvmConfig(site));
    await backend.createVolume(VOL(1), 1);
    await ready(backend, VOL(1));
    writeMarkers(site.state, VOL(1), 'x');
    await backend.createSnapshot(SNAP(1), VOL(1));
    await ready(backend, SNAP(1));
    const file = sim(site.state, 'lvm', 'path', `vbs/${SNAP(1)}`).trim();
    expect(statSync(file).size).toBe(GiB);
    expect(statSync(file).blocks * 512).toBeLessThan(64 * 1024 ** 2);
    expect(readAt(site.state, SNAP(1), GiB - 4096, 1)).toBe('x');
  });
});
