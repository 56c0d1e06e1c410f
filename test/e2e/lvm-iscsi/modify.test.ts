import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canRunTgtd } from '../../../src/deploy/tgtd.js';
import { hostInitiatorName } from '../../../src/core/initiator-name.js';
import { startVbs, type Vbs } from '../harness.js';
import { armFault, backendOf, chapAccountOf, clearFault, expectCheckClean, GiB, IQN_PREFIX, lvFile, ok, simDump, type BackendConfig, type Site } from './site.js';

/**
 * ModifyVolume through the CLI against `vbs up --backend lvm-iscsi`: the LV
 * grows (lvextend on the simulated VG) keeping its data, and the target (a
 * real tgtd started by vbs up where one can run) serves the new size to the
 * VMM host's initiator while the volume stays attached.
 */
const TARGET = canRunTgtd() ? 'tgt' : 'iet';
const MARK = Buffer.from(`VBS modify ${process.pid}`);

interface Modification {
  modificationState: string;
  targetSize: number;
  statusMessage?: string;
}

describe(`ModifyVolume on lvm-iscsi (targets on ${TARGET})`, { timeout: 180_000 }, () => {
  let vbs: Vbs;
  let site: Site;
  let b: BackendConfig;

  beforeAll(async () => {
    vbs = await startVbs(['--backend', 'lvm-iscsi', '--target', TARGET]);
    site = { dir: vbs.dir, cli: (...a) => vbs.cli(...a), api: vbs.soap() };
    b = backendOf(vbs.dir);
  });
  afterAll(async () => {
    await vbs?.stop();
  });

  const lvGiB = (lv: string) => {
    const vg = simDump(b.simState).vgs[0]!;
    const found = vg.lvs.find((l) => l.name === lv);
    return found ? (found.extents * vg.extentSize) / GiB : undefined;
  };

  it('an attached volume grows: the LV keeps its data, the target serves the new size, the check is clean', async () => {
    const vol = await ok<{ volumeId: string }>(site, 'create-volume', '1', 'grows', '--wait');
    const file = lvFile(b, vol.volumeId)!;
    const fd = openSync(file, 'r+');
    writeSync(fd, MARK, 0, MARK.length, 0);
    closeSync(fd);
    await ok(site, 'attach-volume', vol.volumeId, 'localhost', 'vm1', 'xvdb', '--wait');

    const m = await ok<Modification>(site, 'modify-volume', vol.volumeId, '--size', '2', '--wait');
    expect(m).toMatchObject({ modificationState: 'completed', targetSize: 2 });
    expect(m.statusMessage).toBeUndefined();
    expect(lvGiB(vol.volumeId)).toBe(2);
    const back = Buffer.alloc(MARK.length);
    const rd = openSync(lvFile(b, vol.volumeId)!, 'r');
    readSync(rd, back, 0, MARK.length, 0);
    closeSync(rd);
    expect(back.equals(MARK)).toBe(true);
    if (TARGET === 'tgt') {
      const iqn = `${IQN_PREFIX}:${vol.volumeId}`;
      // With the CHAP account the front gave the host for this export (tgt requires one).
      const chap = chapAccountOf(site.dir, vol.volumeId);
      const env = { ...process.env, ...(chap ? { LIBISCSI_CHAP_USERNAME: chap.user, LIBISCSI_CHAP_PASSWORD: chap.secret } : {}) };
      const cap = spawnSync('iscsi-readcapacity16', [`--initiator-name=${hostInitiatorName('localhost')}`, `iscsi://${b.portal}/${iqn}/1`], { encoding: 'utf8', env });
      expect(cap.stdout).toContain(`Total size:${2 * GiB}`);
    }
    const [described] = await ok<{ size: number; status: string }[]>(site, 'describe-volumes', vol.volumeId);
    expect(described).toMatchObject({ size: 2, status: 'in-use' });
    await expectCheckClean(site);

    await ok(site, 'detach-volume', vol.volumeId, '--wait');
    await ok(site, 'delete-volume', vol.volumeId, '--wait');
  });

  it('a growth past the volume group fails: the LV and the volume keep their size', async () => {
    const vol = await ok<{ volumeId: string }>(site, 'create-volume', '1', 'too big', '--wait');
    const r = await vbs.cli('modify-volume', vol.volumeId, '--size', '16000');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/InsufficientCapacity/);
    expect(lvGiB(vol.volumeId)).toBe(1);
    const [latest] = await ok<{ modificationState: string }[]>(site, 'describe-volumes-modifications', vol.volumeId);
    expect(latest!.modificationState).toBe('failed');
    await ok(site, 'delete-volume', vol.volumeId, '--wait');
  });

  it('lvextend failing on the host: the growth fails, the LV and the volume keep their size, and the next request grows it', async () => {
    const vol = await ok<{ volumeId: string }>(site, 'create-volume', '1', 'extend fails', '--wait');
    armFault(site, 'fail', 'lvextend.extend', '  Insufficient suitable allocatable extents (injected)\n');
    try {
      const r = await vbs.cli('modify-volume', vol.volumeId, '--size', '2');
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/OperationFailed: ModifyVolume failed at step 1 of 2/);
    } finally {
      clearFault(site, 'fail', 'lvextend.extend');
    }
    expect(lvGiB(vol.volumeId)).toBe(1);
    const [failed] = await ok<{ modificationState: string }[]>(site, 'describe-volumes-modifications', vol.volumeId);
    expect(failed!.modificationState).toBe('failed');
    expect(await ok<Modification>(site, 'modify-volume', vol.volumeId, '--size', '2')).toMatchObject({ modificationState: 'completed' });
    expect(lvGiB(vol.volumeId)).toBe(2);
    await ok(site, 'delete-volume', vol.volumeId, '--wait');
  });
});
