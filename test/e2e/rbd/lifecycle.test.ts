import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useCephCluster, type CephCluster } from '../../ceph/cluster.js';
import { hasPattern, poolContents, writePattern } from '../../delegates/volume/rbd-helpers.js';
import { startVbs, type Vbs } from '../harness.js';
import { expectCheckClean, fails, ok, type Site } from '../lvm-iscsi/site.js';

/**
 * `vbs up --backend rbd --ceph-conf FILE` against the real test cluster (in a
 * pool of this file's own), through the CLI and SOAP: create, snapshot,
 * clone, delete in EBS order, checking after each what is really in the pool
 * and that `vbs admin check` finds no difference.
 */
interface Volume {
  volumeId: string;
  size: number;
  status: string;
  snapshotId?: string;
}
interface Snapshot {
  snapshotId: string;
  volumeId: string;
  status: string;
}

describe('rbd back end through vbs up, the CLI and SOAP', { timeout: 180_000 }, () => {
  let c: CephCluster;
  let vbs: Vbs;
  let site: Site;
  let vol: Volume;
  let snap: Snapshot;
  let clone: Volume;

  beforeAll(async () => {
    c = await useCephCluster();
    vbs = await startVbs(['--backend', 'rbd', '--ceph-conf', c.conf, '--ceph-pool', c.pool, '--ceph-keyring', c.vbsKeyring]);
    site = { dir: vbs.dir, cli: (...a) => vbs.cli(...a), api: vbs.soap() };
  }, 600_000);
  afterAll(async () => {
    await vbs?.stop();
    await c?.release();
  });

  it('the volume delegate is configured for the cluster, and its capacity comes from it', async () => {
    const cfg = JSON.parse(readFileSync(join(vbs.dir, 'volume-delegate.json'), 'utf8')) as { backend: object };
    expect(cfg.backend).toEqual({ type: 'rbd', cephConf: c.conf, keyring: c.vbsKeyring, pool: c.pool, clientId: 'vbs' });
    expect(await poolContents(c)).toEqual([]);
  });

  it('create-volume: an image of the size asked', async () => {
    vol = await ok<Volume>(site, 'create-volume', '1', 'rbd lifecycle', '--wait');
    expect(vol).toMatchObject({ size: 1, status: 'available' });
    expect(await poolContents(c)).toEqual([vol.volumeId]);
    await writePattern(c, vol.volumeId, 0x5a, 0);
    await expectCheckClean(site);
  });

  it('create-snapshot: a protected RBD snapshot of the image', async () => {
    snap = await ok<Snapshot>(site, 'create-snapshot', vol.volumeId, 'first', '--wait');
    expect(snap).toMatchObject({ status: 'completed', volumeId: vol.volumeId });
    expect(await poolContents(c)).toEqual([vol.volumeId, `${vol.volumeId}@${snap.snapshotId}`]);
    await expectCheckClean(site);
  });

  it('create-volume from the snapshot: a larger clone holding its data', async () => {
    clone = await ok<Volume>(site, 'create-volume', '2', 'clone', snap.snapshotId, '--wait');
    expect(clone).toMatchObject({ size: 2, status: 'available', snapshotId: snap.snapshotId });
    const info = JSON.parse(await c.rbd('info', '--format', 'json', `${c.pool}/${clone.volumeId}`)) as { size: number; parent?: object };
    expect(info).toMatchObject({ size: 2 * 1024 ** 3, parent: { image: vol.volumeId, snapshot: snap.snapshotId } });
    expect(await hasPattern(c, clone.volumeId, 0x5a, 0)).toBe(true);
    await expectCheckClean(site);
  });

  it('describe-volumes over SOAP shows both', async () => {
    const r = (await vbs.soap().call('DescribeVolumes', {})) as { volumeSet?: { item?: { volumeId: string; status: string }[] } };
    const items = JSON.stringify(r);
    expect(items).toContain(vol.volumeId);
    expect(items).toContain(clone.volumeId);
  });

  it('attach-volume to a host that cannot open RBD images (the simulated one) is refused with a clear fault before anything runs', async () => {
    const stderr = await fails(site, 'attach-volume', vol.volumeId, 'localhost', 'vm1', 'xvdb', '--wait');
    expect(stderr).toMatch(/Ceph RBD/);
    expect((await ok<Volume[]>(site, 'describe-volumes', vol.volumeId))[0]).toMatchObject({ status: 'available' });
    await expectCheckClean(site);
  });

  it('delete-volume of a volume with a snapshot: the volume goes, the snapshot stays', async () => {
    await ok(site, 'delete-volume', vol.volumeId, '--wait');
    expect((await ok<Volume[]>(site, 'describe-volumes')).map((v) => v.volumeId)).toEqual([clone.volumeId]);
    expect((await ok<Snapshot[]>(site, 'describe-snapshots', snap.snapshotId))[0]).toMatchObject({ status: 'completed' });
    expect(await poolContents(c)).toEqual([clone.volumeId, `gone.${vol.volumeId}`, `gone.${vol.volumeId}@${snap.snapshotId}`].sort());
    await expectCheckClean(site);
  });

  it('delete-snapshot that a clone reads: the snapshot goes, the clone keeps its data', async () => {
    await ok(site, 'delete-snapshot', snap.snapshotId, '--wait');
    expect(await ok<Snapshot[]>(site, 'describe-snapshots')).toEqual([]);
    expect(await hasPattern(c, clone.volumeId, 0x5a, 0)).toBe(true);
    await expectCheckClean(site);
  });

  it('delete-volume of the clone: nothing is left in the pool', async () => {
    await ok(site, 'delete-volume', clone.volumeId, '--wait');
    expect(await ok<Volume[]>(site, 'describe-volumes')).toEqual([]);
    expect(await poolContents(c)).toEqual([]);
    await expectCheckClean(site);
  });
});
