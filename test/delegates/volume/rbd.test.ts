import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/log.js';
import type { CallContext } from '../../../src/soap/server.js';
import { volumeDelegateHandlers } from '../../../src/delegates/volume/service.js';
import { until, useCephCluster, type CephCluster } from '../../ceph/cluster.js';
import { faultOf } from '../../fault-of.js';
import { GiB, ready } from './helpers.js';
import { hasPattern, openRbd, poolContents, rbdConfig, SNAP, VOL, writePattern } from './rbd-helpers.js';

/**
 * The rbd back end on a real single-node Ceph cluster (scripts/ceph-up.sh,
 * started once per run: test/ceph), in a pool of this file's own.
 * Data is written and read through QEMU's rbd driver (qemu-io).
 */
let c: CephCluster;
beforeAll(async () => {
  c = await useCephCluster();
}, 600_000);
afterAll(async () => {
  await c?.release();
});

const MiB = 1024 ** 2;

describe('rbd back end on a real Ceph cluster', { timeout: 180_000 }, () => {
  it('creates and deletes a blank volume as an image, idempotently, with capacity from the cluster', async () => {
    const { backend, ran } = await openRbd(rbdConfig(c));
    const before = await backend.capacity();
    expect(before.provisionedBytes).toBe(0);
    // A 10 GiB OSD: the pool's size as `ceph df` reports it (stored + max_avail).
    expect(before.totalBytes).toBeGreaterThan(5 * GiB);
    expect(before.totalBytes).toBeLessThanOrEqual(10 * GiB);
    await backend.createVolume(VOL(1), 1);
    await backend.createVolume(VOL(1), 1); // the same request again: nothing more
    await ready(backend, VOL(1));
    await backend.createVolume(VOL(1), 1);
    expect(ran.filter((r) => r.key === 'volume.rbd.create')).toHaveLength(1);
    expect(await poolContents(c)).toEqual([VOL(1)]);
    expect(await backend.describe(VOL(1))).toEqual({ id: VOL(1), state: 'ready', sizeBytes: GiB, progress: 100 });
    const after = await backend.capacity();
    expect(after.provisionedBytes).toBe(GiB);
    expect(after.freeBytes).toBe(after.totalBytes - GiB);
    // Every call names the cluster's conf, the cephx client and its key, and the timeouts.
    for (const r of ran) {
      expect(r.argv).toEqual(expect.arrayContaining(['--conf', c.conf, '--id', 'vbs', '--keyring', c.vbsKeyring, '--client_mount_timeout', '5']));
    }
    expect(await backend.delete(VOL(1))).toBe(true);
    expect(await backend.delete(VOL(1))).toBe(false);
    expect(await poolContents(c)).toEqual([]);
    expect(await backend.describe(VOL(1))).toEqual({ id: VOL(1), state: 'absent' });
  });

  it('a snapshot is the point in time of its request; a volume from it is a larger clone with its data', async () => {
    const { backend } = await openRbd(rbdConfig(c));
    await backend.createVolume(VOL(2), 1);
    await ready(backend, VOL(2));
    await writePattern(c, VOL(2), 0x61, 0);
    await writePattern(c, VOL(2), 0x61, 700 * MiB);
    await backend.createSnapshot(SNAP(2), VOL(2));
    await writePattern(c, VOL(2), 0x62, 0); // after the request: not in the snapshot
    await ready(backend, SNAP(2));
    expect(await backend.describe(SNAP(2))).toEqual({ id: SNAP(2), state: 'ready', sizeBytes: GiB, progress: 100 });
    expect(await poolContents(c)).toEqual([VOL(2), `${VOL(2)}@${SNAP(2)}`]);
    expect(await hasPattern(c, `${VOL(2)}@${SNAP(2)}`, 0x61, 0)).toBe(true);

    await backend.createVolume(VOL(3), 2, SNAP(2));
    await ready(backend, VOL(3));
    expect((await backend.describe(VOL(3))).sizeBytes).toBe(2 * GiB);
    const info = JSON.parse(await c.rbd('info', '--format', 'json', `${c.pool}/${VOL(3)}`)) as { parent?: { image: string; snapshot: string } };
    expect(info.parent).toMatchObject({ image: VOL(2), snapshot: SNAP(2) }); // a clone: nothing was copied
    expect(await hasPattern(c, VOL(3), 0x61, 0)).toBe(true);
    expect(await hasPattern(c, VOL(3), 0x61, 700 * MiB)).toBe(true);
    expect((await backend.list()).map((o) => [o.id, o.state])).toEqual([
      [SNAP(2), 'ready'],
      [VOL(2), 'ready'],
      [VOL(3), 'ready'],
    ]);
    for (const id of [VOL(3), SNAP(2), VOL(2)]) expect(await backend.delete(id)).toBe(true);
    expect(await poolContents(c)).toEqual([]);
  });

  it('grows a volume in place with rbd resize, keeping its data; the same size again is done; an absent volume is refused', async () => {
    const { backend } = await openRbd(rbdConfig(c));
    await backend.createVolume(VOL(7), 1);
    await ready(backend, VOL(7));
    expect(await backend.growVolume(VOL(7), 2)).toBe(2 * GiB);
    expect((await backend.describe(VOL(7))).sizeBytes).toBe(2 * GiB);
    expect(await backend.growVolume(VOL(7), 2)).toBe(2 * GiB);
    expect(await backend.growVolume(VOL(7), 1)).toBe(2 * GiB); // never shrinks
    expect((await faultOf(backend.growVolume(VOL(70), 2))).code).toBe('InvalidVolume.NotFound');
    expect(await backend.delete(VOL(7))).toBe(true);
  });

  it('deletes in the order EBS users expect: a snapshot outlives its volume, a clone outlives its snapshot', async () => {
    const { backend } = await openRbd(rbdConfig(c));
    await backend.createVolume(VOL(4), 1);
    await ready(backend, VOL(4));
    await writePattern(c, VOL(4), 0x71, 4096);
    await backend.createSnapshot(SNAP(4), VOL(4));
    await ready(backend, SNAP(4));
    await backend.createVolume(VOL(5), 1, SNAP(4));
    await ready(backend, VOL(5));

    // The volume goes; its snapshot stays, readable and clonable.
    expect(await backend.delete(VOL(4))).toBe(true);
    expect((await backend.describe(VOL(4))).state).toBe('absent');
    expect((await backend.describe(SNAP(4))).state).toBe('ready');
    expect(await poolContents(c)).toEqual([`gone.${VOL(4)}`, `gone.${VOL(4)}@${SNAP(4)}`, VOL(5)]);
    await backend.createVolume(VOL(6), 1, SNAP(4));
    await ready(backend, VOL(6));
    // A snapshot of a deleted volume cannot be taken.
    expect((await faultOf(backend.createSnapshot(SNAP(40), VOL(4)))).code).toBe('InvalidVolume.NotFound');

    // The snapshot goes; its clones stay whole.
    expect(await backend.delete(SNAP(4))).toBe(true);
    expect((await backend.describe(SNAP(4))).state).toBe('absent');
    expect(await backend.delete(SNAP(4))).toBe(false);
    expect((await faultOf(backend.createVolume(VOL(7), 1, SNAP(4)))).code).toBe('InvalidSnapshot.NotFound');
    expect(await hasPattern(c, VOL(5), 0x71, 4096)).toBe(true);
    expect(await hasPattern(c, VOL(6), 0x71, 4096)).toBe(true);
    expect((await backend.list()).map((o) => o.id)).toEqual([VOL(5), VOL(6)]);

    // Once the last clone goes, what was kept for it goes too.
    expect(await backend.delete(VOL(5))).toBe(true);
    expect(await poolContents(c)).toEqual([`gone.${VOL(4)}`, `gone.${VOL(4)}@gone.${SNAP(4)}`, VOL(6)]);
    expect(await backend.delete(VOL(6))).toBe(true);
    expect(await poolContents(c)).toEqual([]);
  });

  it('refuses what cannot be done with a client fault, and runs no command for a hostile id', async () => {
    const { backend, ran } = await openRbd(rbdConfig(c, { capacityGiB: 4 }));
    await backend.createVolume(VOL(8), 1);
    await ready(backend, VOL(8));
    await backend.createSnapshot(SNAP(8), VOL(8));
    await ready(backend, SNAP(8));
    expect((await faultOf(backend.createVolume(VOL(9), 1, SNAP(9)))).code).toBe('InvalidSnapshot.NotFound');
    expect((await faultOf(backend.createSnapshot(SNAP(9), VOL(9)))).code).toBe('InvalidVolume.NotFound');
    expect((await faultOf(backend.createVolume(VOL(9), 4))).code).toBe('InsufficientCapacity'); // 1 of 4 GiB taken
    expect((await backend.capacity()).totalBytes).toBe(4 * GiB);
    // An export of a volume that is not there (attaching: test/e2e/rbd/attach.test.ts).
    expect((await faultOf(backend.exportVolume(VOL(9), 'host-1'))).code).toBe('InvalidVolume.NotFound');

    const handlers = volumeDelegateHandlers(backend);
    const ctx = { log: silentLogger } as unknown as CallContext;
    const count = ran.length;
    for (const host of ['host;1', '-host', 'a b']) expect((await faultOf(backend.exportVolume(VOL(8), host))).code).toBe('InvalidParameterValue');
    for (const id of ['vol-../../x', 'vol-0', `${VOL(8)}@x`, `gone.${VOL(8)}`, `snap-${'0'.repeat(16)};`]) {
      expect((await faultOf(Promise.resolve().then(() => handlers.DeleteObject!({ id }, ctx)))).code).toBe('InvalidParameterValue');
    }
    expect((await faultOf(Promise.resolve().then(() => handlers.CreateVolume!({ volumeId: VOL(9), sizeGiB: '0' }, ctx)))).code).toBe('InvalidParameterValue');
    expect(ran.length).toBe(count);
    for (const id of [SNAP(8), VOL(8)]) await backend.delete(id);
    expect(await poolContents(c)).toEqual([]);
  });

  it('a volume still open on a host is not deleted (VolumeInUse), and is once it is closed', async () => {
    const { backend } = await openRbd(rbdConfig(c));
    await backend.createVolume(VOL(10), 1);
    await ready(backend, VOL(10));
    // QEMU holds the image open (a watcher), as a hypervisor does, until its stdin closes.
    const qemu = spawn('qemu-io', ['-f', 'raw', `rbd:${c.pool}/${VOL(10)}:id=admin:conf=${c.conf}`], { stdio: ['pipe', 'ignore', 'ignore'] });
    const exited = new Promise((r) => qemu.once('exit', r));
    try {
      await until(async () => (await c.rbd('status', `${c.pool}/${VOL(10)}`)).includes('watcher='), 60_000, 'QEMU to open the image');
      expect((await faultOf(backend.delete(VOL(10)))).code).toBe('VolumeInUse');
      expect(await poolContents(c)).toEqual([VOL(10)]);
    } finally {
      qemu.stdin!.end();
    }
    await exited;
    expect(await backend.delete(VOL(10))).toBe(true);
    expect(await poolContents(c)).toEqual([]);
  });

  it('a volume with a snapshot still open on a host is not deleted either (never kept as gone. while a client writes it), and its watchers are reported', async () => {
    const { backend } = await openRbd(rbdConfig(c));
    await backend.createVolume(VOL(11), 1);
    await ready(backend, VOL(11));
    await backend.createSnapshot(SNAP(11), VOL(11));
    await ready(backend, SNAP(11));
    const qemu = spawn('qemu-io', ['-f', 'raw', `rbd:${c.pool}/${VOL(11)}:id=admin:conf=${c.conf}`], { stdio: ['pipe', 'ignore', 'ignore'] });
    const exited = new Promise((r) => qemu.once('exit', r));
    try {
      await until(async () => (await c.rbd('status', `${c.pool}/${VOL(11)}`)).includes('watcher='), 60_000, 'QEMU to open the image');
      expect((await faultOf(backend.delete(VOL(11)))).code).toBe('VolumeInUse');
      expect(await poolContents(c)).toEqual([VOL(11), `${VOL(11)}@${SNAP(11)}`]);
      expect((await backend.listExports()).exports).toEqual([{ volumeId: VOL(11), kind: 'rbd', watchers: 1 }]);
    } finally {
      qemu.stdin!.end();
    }
    await exited;
    expect(await backend.delete(VOL(11))).toBe(true);
    expect(await poolContents(c)).toEqual([`gone.${VOL(11)}`, `gone.${VOL(11)}@${SNAP(11)}`]);
    expect(await backend.delete(SNAP(11))).toBe(true);
    expect(await poolContents(c)).toEqual([]);
  });

  it('a deleted volume (kept as gone.) that a client opened anyway is reported as still open', async () => {
    const { backend } = await openRbd(rbdConfig(c));
    await backend.createVolume(VOL(12), 1);
    await ready(backend, VOL(12));
    await backend.createSnapshot(SNAP(12), VOL(12));
    await ready(backend, SNAP(12));
    expect(await backend.delete(VOL(12))).toBe(true);
    // A client that still knew the image (by its old name, under its new one) opens it.
    const qemu = spawn('qemu-io', ['-f', 'raw', `rbd:${c.pool}/gone.${VOL(12)}:id=admin:conf=${c.conf}`], { stdio: ['pipe', 'ignore', 'ignore'] });
    const exited = new Promise((r) => qemu.once('exit', r));
    try {
      await until(async () => (await c.rbd('status', `${c.pool}/gone.${VOL(12)}`)).includes('watcher='), 60_000, 'QEMU to open the image');
      expect((await backend.listExports()).exports).toEqual([{ volumeId: VOL(12), kind: 'rbd', watchers: 1 }]);
    } finally {
      qemu.stdin!.end();
    }
    await exited;
    expect((await backend.listExports()).exports).toEqual([]);
    expect(await backend.delete(SNAP(12))).toBe(true);
    expect(await poolContents(c)).toEqual([]);
  });

  it('flattens a clone whose chain of parents would pass maxCloneDepth', async () => {
    const { backend, ran } = await openRbd(rbdConfig(c, { maxCloneDepth: 1 }));
    await backend.createVolume(VOL(11), 1);
    await ready(backend, VOL(11));
    await writePattern(c, VOL(11), 0x33, 0);
    await backend.createSnapshot(SNAP(11), VOL(11));
    await ready(backend, SNAP(11));
    await backend.createVolume(VOL(12), 1, SNAP(11)); // depth 1: a plain clone
    await ready(backend, VOL(12));
    await backend.createSnapshot(SNAP(12), VOL(12));
    await ready(backend, SNAP(12));
    await backend.createVolume(VOL(13), 1, SNAP(12)); // depth 2: flattened to depth 0
    await ready(backend, VOL(13));
    expect(ran.filter((r) => r.key === 'volume.rbd.flatten')).toHaveLength(1);
    const info = JSON.parse(await c.rbd('info', '--format', 'json', `${c.pool}/${VOL(13)}`)) as { parent?: unknown };
    expect(info.parent).toBeUndefined();
    expect(await hasPattern(c, VOL(13), 0x33, 0)).toBe(true);
    for (const id of [VOL(13), SNAP(12), VOL(12), SNAP(11), VOL(11)]) expect(await backend.delete(id)).toBe(true);
    expect(await poolContents(c)).toEqual([]);
  });

  it('after a restart: a half-made image goes, a snapshot taken but not protected is protected, kept objects nothing reads go', async () => {
    await c.rbd('create', `${c.pool}/part.${VOL(14)}`, '--size', '64');
    await c.rbd('create', `${c.pool}/${VOL(15)}`, '--size', '64');
    await c.rbd('snap', 'create', `${c.pool}/${VOL(15)}@${SNAP(15)}`);
    await c.rbd('create', `${c.pool}/gone.${VOL(16)}`, '--size', '64');
    const { backend, warnings } = await openRbd(rbdConfig(c));
    expect(await poolContents(c)).toEqual([VOL(15), `${VOL(15)}@${SNAP(15)}`]);
    expect(await backend.describe(SNAP(15))).toMatchObject({ state: 'ready' });
    expect(warnings).toEqual(expect.arrayContaining(['removing an image cut off by a restart', 'protecting a snapshot whose protect a restart cut off']));
    for (const id of [SNAP(15), VOL(15)]) expect(await backend.delete(id)).toBe(true);
    expect(await poolContents(c)).toEqual([]);
  });
});
