import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { VBS_HOME } from '../core/paths.js';
import { onPath } from '../core/on-path.js';
import { VBS_SERVICE } from '../services/vbs.js';
import { SoapClient } from '../soap/client.js';
import type { Row } from './stats.js';
import { adminTls, fanOut, GiB, importFile, makeImage, seconds } from './image-tools.js';
import { startVbsUp } from './vbs-up.js';

const run = promisify(execFile);
/** The bench's own throw-away cluster listens here (msgr2; msgr1 the next port): not the tests' 3500, not Ceph's 3300. */
const BENCH_MON_PORT = 3700;
/**
 * The OSD's (sparse) size. The rbd back end counts every volume at its full
 * size, clones too (it never promises more than the pool holds), so 100
 * volumes of 1 GiB need 100 GiB of pool even though they write nothing.
 */
const OSD_GIB = 128;
/** CreateVolume calls in flight during the fan-out (see where it is used). */
const FAN_IN_FLIGHT = 2;

/**
 * The images bench on the rbd back end (docs/images.md): a throw-away
 * single-node cluster (scripts/ceph-up.sh, its OSD a sparse file in the
 * temporary folder), a real `vbs up --backend rbd` on it, and each figure
 * beside its baseline in the same run on the same cluster:
 *   - import of a 1 GiB raw image, against `rbd import` of the file straight
 *     into the pool (the cluster's own write path: the physical limit here);
 *   - 100 volumes from it (RBD clones), all `available`, against the
 *     papers' full copy (`rbd cp`, the cluster's copy of one image) × 100.
 * Returns no rows (and says why) where Ceph is not installed.
 */
export async function rbdImageRows(dir: string, say: (line: string) => void): Promise<Row[]> {
  for (const tool of ['ceph-mon', 'ceph-osd', 'rbd']) {
    if (!onPath(tool)) {
      say(`  rbd rows skipped: ${tool} is not installed (Debian: ceph-mon ceph-mgr ceph-osd ceph-common)`);
      return [];
    }
  }
  const scripts = join(VBS_HOME, 'scripts');
  // In the temporary folder, not the bench's loop mount: the OSD's sparse file is larger than that mount.
  const clusterParent = mkdtempSync(join(tmpdir(), 'vbs-bench-ceph-'));
  const cluster = join(clusterParent, 'ceph');
  const rows: Row[] = [];
  let t = process.hrtime.bigint();
  execFileSync(join(scripts, 'ceph-up.sh'), [cluster, '--mon-port', String(BENCH_MON_PORT), '--osd-size-gib', String(OSD_GIB)], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 600_000 });
  say(`  a single-node Ceph cluster up in ${seconds(t).toFixed(1)} s`);
  const conf = join(cluster, 'ceph.conf');
  const rbd = (...args: string[]) => run('rbd', ['--conf', conf, '--id', 'vbs', '--keyring', join(cluster, 'ceph.client.vbs.keyring'), ...args], { env: { ...process.env, CEPH_ARGS: '' }, timeout: 3_600_000 });
  const deploymentDir = join(dir, 'deployment-rbd');
  mkdirSync(deploymentDir);
  let dep: Awaited<ReturnType<typeof startVbsUp>> | undefined;
  try {
    dep = await startVbsUp(deploymentDir, ['--backend', 'rbd', '--ceph-conf', conf], join(dir, 'vbs-up-rbd.log'));
    const tls = adminTls(deploymentDir);
    // Each CreateVolume waits for the delegate's look at the pool (`rbd ls -l`, which opens every image, and
    // `ceph df`) under the back end's lock: with 10 in flight on a loaded machine an answer can pass 30 s.
    const soap = new SoapClient({ def: VBS_SERVICE, url: dep.url, tls, timeoutMs: 600_000 });
    const image = join(dir, 'rbd-1g.raw');
    if (!existsSync(image)) makeImage(image, GiB);

    t = process.hrtime.bigint();
    const snapshotId = await importFile(dep.url, tls, image);
    const importS = seconds(t);
    t = process.hrtime.bigint();
    await rbd('import', '--no-progress', image, 'vbs/bench-baseline');
    const baselineS = seconds(t);
    await rbd('rm', '--no-progress', 'vbs/bench-baseline');
    rows.push({ metric: 'rbd: import of a 1 GiB raw image', value: importS, unit: 's', note: `${(1024 / importS).toFixed(0)} MiB/s; rbd import of the file: ${baselineS.toFixed(2)} s (${(1024 / baselineS).toFixed(0)} MiB/s)` });
    say(`  rbd: import 1 GiB: ${importS.toFixed(2)} s; rbd import ${baselineS.toFixed(2)} s`);

    // Two in flight, not the CLI's ten: the rbd back end takes creates one at a time (its lock, around
    // `rbd ls -l` and `ceph df`), and on a loaded machine ten waiting passed the front's 30 s call to the
    // delegate (docs/images.md, "Measured"). The throughput is the same; no answer waits for nine others.
    const fan = await fanOut(soap, snapshotId, 100, 'rbd-fan', FAN_IN_FLIGHT);
    // The papers' way: a full copy of the image per volume (`rbd cp` of the image the import made, whole in the cluster).
    const copies: number[] = [];
    for (let i = 0; i < 3; i++) {
      const c = process.hrtime.bigint();
      await rbd('cp', '--no-progress', `vbs/gone.${snapshotId}@${snapshotId}`, `vbs/bench-copy-${i}`);
      copies.push(seconds(c));
      await rbd('rm', '--no-progress', `vbs/bench-copy-${i}`);
    }
    const oneCp = copies.sort((a, b) => a - b)[1]!;
    rows.push({
      metric: 'rbd: 100 volumes from one 1 GiB image, all available',
      value: fan.seconds,
      unit: 's',
      target: { limit: 2, atMost: true },
      note: `RBD clones, ${FAN_IN_FLIGHT} CreateVolume in flight; the papers' full copy (rbd cp) of one image × 100: ${(oneCp * 100).toFixed(1)} s (one: ${oneCp.toFixed(2)} s, median of 3)`,
    });
    say(`  rbd: 100 volumes from one image: ${fan.seconds.toFixed(2)} s; rbd cp × 100 ≈ ${(oneCp * 100).toFixed(1)} s`);
    soap.close();
  } finally {
    await dep?.stop();
    execFileSync(join(scripts, 'ceph-down.sh'), [cluster], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 120_000 });
    rmSync(clusterParent, { recursive: true, force: true });
  }
  return rows;
}
