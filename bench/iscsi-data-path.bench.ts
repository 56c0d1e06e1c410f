import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, bench, describe } from 'vitest';
import { startTgtd, type RealTarget } from '../test/sim/real-target.js';

/**
 * The lvm-iscsi data path against the same file read locally: QEMU's own
 * client (qemu-io, the code a VM's disk runs through) reads and writes a
 * volume once as a local file and once as a LUN of a real tgtd on loopback.
 * The difference is what the iSCSI hop costs (protocol, tgtd, TCP), without
 * a network in the way. Needs root, tgtd (Debian `tgt`) and qemu-io with the
 * iscsi driver (`qemu-utils`, `qemu-block-extra`); without them it says so.
 * MiB/s = DATA_MIB / mean time in seconds.
 */
const DATA_MIB = 128;
const OPTIONS = { iterations: 3, warmupIterations: 1, time: 0, warmupTime: 0 };
const IQN = 'iqn.2026-11.org.vbs:vol-bench0000000000000';

function available(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root';
  for (const tool of ['tgtd', 'tgtadm', 'qemu-io']) if (spawnSync('which', [tool]).status !== 0) return `no ${tool}`;
  return undefined;
}

const missing = available();
if (missing) {
  console.log(`iSCSI data path benchmark not run: ${missing} (needs root, tgt, qemu-utils and qemu-block-extra)`);
  describe('iSCSI data path', () => bench('not run here', () => undefined, { iterations: 1 }));
} else {
  const dir = mkdtempSync(join(tmpdir(), 'vbs-bench-iscsi-'));
  const file = join(dir, 'vol.img');
  // Real data, so no layer can skip zeros.
  execFileSync('dd', ['if=/dev/urandom', `of=${file}`, 'bs=1M', `count=${DATA_MIB}`, 'status=none']);
  const target: RealTarget = await startTgtd();
  target.add(IQN, file);
  afterAll(async () => {
    await target.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const url = `iscsi://${target.portal}/${IQN}/1`;
  const qemuIo = (image: string, readOnly: boolean, command: string) =>
    void execFileSync('qemu-io', [...(readOnly ? ['-r'] : []), '-f', 'raw', '-c', command, image], { stdio: ['ignore', 'ignore', 'pipe'] });
  console.log(`iSCSI data path: ${DATA_MIB} MiB through qemu-io, local file vs. tgtd at ${target.portal}`);

  describe(`read ${DATA_MIB} MiB`, () => {
    bench('local file', () => qemuIo(file, true, `read 0 ${DATA_MIB}M`), OPTIONS);
    bench('iSCSI (tgtd on loopback, QEMU initiator)', () => qemuIo(url, true, `read 0 ${DATA_MIB}M`), OPTIONS);
  });

  describe(`write ${DATA_MIB} MiB`, () => {
    bench('local file', () => qemuIo(file, false, `write -P 0x5a 0 ${DATA_MIB}M`), OPTIONS);
    bench('iSCSI (tgtd on loopback, QEMU initiator)', () => qemuIo(url, false, `write -P 0x5a 0 ${DATA_MIB}M`), OPTIONS);
  });
}
