import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe } from 'vitest';
import { useCephCluster, type CephCluster } from '../../ceph/cluster.js';
import { poolContents } from '../../delegates/volume/rbd-helpers.js';
import { startVbs, type Vbs } from '../harness.js';
import { imageRoundTrip } from '../image-roundtrip.js';
import type { Site } from '../lvm-iscsi/site.js';

/**
 * Images on `vbs up --backend rbd` (the real test cluster, a pool of this
 * file's own), through the CLI and a raw HTTPS upload: an image is an RBD
 * image with no volume (`gone.<snap-id>`) holding a protected snapshot, and
 * each volume from it is a clone. The staging folder beside the delegate's
 * configuration must be empty after every case.
 */
describe('images on the rbd back end through vbs up and the CLI', { timeout: 240_000 }, () => {
  let c: CephCluster;
  let vbs: Vbs;
  let site: Site;

  beforeAll(async () => {
    c = await useCephCluster();
    vbs = await startVbs(['--backend', 'rbd', '--ceph-conf', c.conf, '--ceph-pool', c.pool, '--ceph-keyring', c.vbsKeyring]);
    site = { dir: vbs.dir, cli: (...a) => vbs.cli(...a), api: vbs.soap() };
  }, 600_000);
  afterAll(async () => {
    await vbs?.stop(process.env.KEEP_VBS === '1');
    await c?.release();
  });

  const staging = () => join(vbs.dir, 'volume-delegate.staging');
  imageRoundTrip({
    vbs: () => vbs,
    site: () => site,
    stored: async () => [...(await poolContents(c)), ...(existsSync(staging()) ? readdirSync(staging()).map((f) => `staging/${f}`) : [])],
    ownedBy: (snap, vols) => [`gone.${snap}`, `gone.${snap}@${snap}`, ...vols],
    // Each clone counts at its full GiB against the pool (the back end never over-promises),
    // and the test cluster's OSD is 10 GiB shared by every file's pool.
    count: 5,
  });
});
