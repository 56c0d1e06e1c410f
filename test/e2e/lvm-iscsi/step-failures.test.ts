import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canRunTgtd } from '../../../src/deploy/tgtd.js';
import { eventually, startVbs, type Vbs } from '../harness.js';
import { childProcesses, startServedLvmIscsi, type ServedSite } from './served.js';
import {
  armFault,
  backendOf,
  clearFault,
  expectCheckClean,
  fails,
  leftovers,
  ok,
  operatorCommands,
  siteState,
  type Site,
  type SiteState,
} from './site.js';

/**
 * Every step of every multi-step operation of the lvm-iscsi back end, failed
 * in turn (a simulator fault file, or an operator's commands file whose
 * pattern fails): the CLI exits 1 with a fault naming the step, everything a
 * request can touch (metadata, LVs, targets, sessions, VM disks, the export
 * bookkeeping) is exactly as before, `vbs admin check` finds nothing, and the
 * same request succeeds once the fault is gone.
 */

interface Volume {
  volumeId: string;
  status: string;
  statusMessage?: string;
}
interface Snapshot {
  snapshotId: string;
  status: string;
}

/** The request failed with `fault`, and left everything as it found it. */
async function expectRolledBack(site: Site, before: SiteState, stderr: string, fault: RegExp): Promise<void> {
  expect(stderr).toMatch(fault);
  expect(await siteState(site)).toEqual(before);
  await expectCheckClean(site);
}

function siteOf(vbs: Vbs): Site {
  return { dir: vbs.dir, cli: (...a) => vbs.cli(...a), api: vbs.soap() };
}

describe(`step failures under vbs up --backend lvm-iscsi (targets on ${canRunTgtd() ? 'a real tgtd' : 'the simulated IET'})`, { timeout: 120_000 }, () => {
  let vbs: Vbs;
  let site: Site;
  let vol: string;
  let snap: string;
  const attach = () => ['attach-volume', vol, 'localhost', 'vm1', 'xvdb'];

  beforeAll(async () => {
    vbs = await startVbs(['--backend', 'lvm-iscsi']);
    site = siteOf(vbs);
    vol = (await ok<Volume>(site, 'create-volume', '1', 'faults', '--wait')).volumeId;
    snap = (await ok<Snapshot>(site, 'create-snapshot', vol, 'source', '--wait')).snapshotId;
  });
  afterAll(async () => {
    await vbs?.stop();
  });

  /** Runs `args` with the fault armed, expects a clean rollback, then the same request without it. */
  async function failThenSucceed(key: string, args: string[], fault: RegExp): Promise<void> {
    const before = await siteState(site);
    armFault(site, 'fail', key);
    let stderr: string;
    try {
      stderr = await fails(site, ...args);
    } finally {
      clearFault(site, 'fail', key);
    }
    await expectRolledBack(site, before, stderr, fault);
    await ok(site, ...args);
  }

  it('AttachVolume step 2 (discover) fails: the export is withdrawn', async () => {
    await failThenSucceed('iscsiadm.discovery', attach(), /OperationFailed: AttachVolume failed at step 2 of 4 \(vmm-delegate\.DiscoverTarget\): .*exited with \d+ on [a-z-]+\./);
  });

  it('DetachVolume step 1 (detach the disk) fails: nothing changes', async () => {
    await failThenSucceed('xm.block-detach', ['detach-volume', vol], /OperationFailed: DetachVolume failed at step 1 of 3 \(vmm-delegate\.DetachDisk\): .*exited with \d+ on [a-z-]+\./);
  });

  it('AttachVolume step 3 (log in) fails: the node record and the export are withdrawn', async () => {
    await failThenSucceed('iscsiadm.login', attach(), /OperationFailed: AttachVolume failed at step 3 of 4 \(vmm-delegate\.LoginTarget\): .*exited with \d+ on [a-z-]+\./);
  });

  /**
   * Arms a fault for a detach past its first step: the detach stops there
   * (`detaching`, the disk already gone from the VM, never attached again) and
   * VBS finishes it once the fault is gone, leaving what a clean detach does.
   */
  async function detachRollsForward(key: string, fault: RegExp): Promise<void> {
    const before = await siteState(site);
    await ok(site, 'detach-volume', vol);
    const detached = await siteState(site);
    await ok(site, ...attach());
    expect(await siteState(site)).toEqual({ ...before, volumes: expect.anything() });
    armFault(site, 'fail', key);
    try {
      const stderr = await fails(site, 'detach-volume', vol);
      expect(stderr).toMatch(fault);
      const now = await siteState(site);
      expect(now.disks).toEqual(detached.disks);
      expect(now.volumes.find((v) => v.volumeId === vol)?.attachments).toMatchObject([{ status: 'detaching' }]);
      expect(await fails(site, 'delete-volume', vol)).toMatch(/VolumeInUse/);
    } finally {
      clearFault(site, 'fail', key);
    }
    // The front retries it (after 2 s, then backing off) and finishes it.
    await eventually(async () => (((await siteState(site)).volumes.find((v) => v.volumeId === vol)?.attachments as unknown[] | undefined)?.length ? undefined : true), 60_000, 250);
    expect(await siteState(site)).toEqual(detached);
    await expectCheckClean(site);
    await ok(site, ...attach());
  }

  it('DetachVolume step 2 (log out) fails: the disk stays detached and VBS finishes the detach', async () => {
    await detachRollsForward('iscsiadm.logout', /ServiceUnavailable: DetachVolume could not finish step 2 of 3 \(vmm-delegate\.LogoutTarget\): .*exited with \d+ on [a-z-]+\./);
    await ok(site, 'detach-volume', vol);
  });

  it('the wedged volume: a read-only detach whose logout works and whose forget fails once is finished, and the volume can then be deleted', async () => {
    const start = await siteState(site);
    const ro = (await ok<Volume>(site, 'create-volume', '1', 'wedge', '--wait')).volumeId;
    const before = await siteState(site);
    await ok(site, 'attach-volume', ro, 'localhost', 'vm1', 'xvdw', '--mode', 'r');
    // Only `iscsiadm -m node ... -o delete` (the forget after the logout) fails, once.
    armFault(site, 'fail', 'iscsiadm.node');
    armFault(site, 'fail', 'iscsiadm.node.count', '1');
    try {
      const first = await site.cli('detach-volume', ro);
      // The delegate may finish the forget itself; if not, VBS does.
      if (first.code !== 0) expect(first.stderr).toMatch(/ServiceUnavailable: DetachVolume could not finish step 2 of 3 \(vmm-delegate\.LogoutTarget\)/);
    } finally {
      clearFault(site, 'fail', 'iscsiadm.node');
      clearFault(site, 'fail', 'iscsiadm.node.count');
    }
    await eventually(async () => (((await siteState(site)).volumes.find((v) => v.volumeId === ro)?.attachments as unknown[] | undefined)?.length ? undefined : true), 60_000, 250);
    const after = await siteState(site);
    expect({ ...after, volumes: [] }).toEqual({ ...before, volumes: [] });
    await expectCheckClean(site);
    // Never wedged: it attaches, detaches and deletes like any volume.
    await ok(site, 'attach-volume', ro, 'localhost', 'vm1', 'xvdw', '--mode', 'r');
    await ok(site, 'detach-volume', ro);
    await ok(site, 'delete-volume', ro, '--wait');
    expect(await siteState(site)).toEqual(start);
  });

  it('AttachVolume step 4 (attach the disk) fails: logged out, unexported', async () => {
    await failThenSucceed('xm.block-attach', attach(), /OperationFailed: AttachVolume failed at step 4 of 4 \(vmm-delegate\.AttachDisk\): .*exited with \d+ on [a-z-]+\./);
    await ok(site, 'detach-volume', vol);
  });

  it('an undo that fails is kept as a leftover and retried until it succeeds', async () => {
    const before = await siteState(site);
    armFault(site, 'fail', 'xm.block-attach');
    armFault(site, 'fail', 'iscsiadm.logout');
    try {
      const stderr = await fails(site, ...attach());
      expect(stderr).toMatch(/AttachVolume failed at step 4 of 4 \(vmm-delegate\.AttachDisk\)/);
      // The metadata and the VM are back; the session the failed logout left is the leftover, and so
      // is the export behind it: the last to leave a host logs it out before the target goes.
      const now = await siteState(site);
      const hostSide = { sessions: [], nodes: [], exports: {}, targets: [] };
      expect({ ...now, ...hostSide }).toEqual({ ...before, ...hostSide });
      expect(now.sessions).toHaveLength(1);
      expect(Object.keys(now.exports)).toHaveLength(1);
      expect(leftovers(site.dir).map((l) => `${l.kind}/${l.step}`)).toEqual([
        'AttachVolume/vmm-delegate.LoginTarget',
        'AttachVolume/vmm-delegate.DiscoverTarget',
        'AttachVolume/volume-delegate.ExportVolume',
      ]);
      const check = await site.cli('admin', 'check');
      expect(check.code).toBe(1);
      expect(check.stdout).toMatch(/leftover/);
    } finally {
      clearFault(site, 'fail', 'iscsiadm.logout');
      clearFault(site, 'fail', 'xm.block-attach');
    }
    // The front retries leftovers every 5 s (with back-off after failed tries).
    await eventually(async () => (leftovers(site.dir).length === 0 ? true : undefined), 60_000, 500);
    expect(await siteState(site)).toEqual(before);
    await expectCheckClean(site);
    await ok(site, ...attach());
    await ok(site, 'detach-volume', vol);
  });

  it('CreateSnapshot step 1 fails (lvcreate -s): no snapshot, no LV', async () => {
    await failThenSucceed('lvcreate.snapshot', ['create-snapshot', vol, 'again', '--wait'], /OperationFailed: CreateSnapshot failed at step 1 of 1 \(volume-delegate\.CreateSnapshot\): .*exited with \d+ on [a-z-]+\./);
  });

  it('DeleteSnapshot step 1 fails (lvremove): the snapshot is completed again', async () => {
    const before = await siteState(site);
    const second = before.snapshots.map((s) => String(s.snapshotId)).find((id) => id !== snap)!;
    await failThenSucceed('lvremove.remove', ['delete-snapshot', second], /OperationFailed: DeleteSnapshot failed at step 1 of 1 \(volume-delegate\.DeleteObject\): .*exited with \d+ on [a-z-]+\./);
  });

  it('CreateVolume from a snapshot fails at its step (the delegate cannot read the VG): no volume', async () => {
    await failThenSucceed('lvs.list', ['create-volume', '1', 'clone', snap, '--wait'], /OperationFailed: CreateVolume failed at step 1 of 1 \(volume-delegate\.CreateVolume\): .*exited with \d+ on [a-z-]+\./);
  });

  it("CreateVolume from a snapshot whose copy's LV cannot be made: the volume is error, no LV is left", async () => {
    const before = await siteState(site);
    armFault(site, 'fail', 'lvcreate.create');
    let failed: Volume;
    try {
      const r = await site.cli('--json', 'create-volume', '1', 'clone', snap, '--wait');
      expect(r.code, r.stderr).toBe(1);
      failed = (await ok<Volume[]>(site, 'describe-volumes')).find((v) => !before.volumes.some((b) => b.volumeId === v.volumeId))!;
      expect(failed).toMatchObject({ status: 'error', statusMessage: expect.stringMatching(/volume\.lvm\.create(\.sim)? exited with 1/) });
    } finally {
      clearFault(site, 'fail', 'lvcreate.create');
    }
    // The copy's temporary LV is gone already; deleting the record leaves everything as before.
    expect((await siteState(site)).lvs).toEqual(before.lvs);
    await ok(site, 'delete-volume', failed.volumeId, '--wait');
    expect(await siteState(site)).toEqual(before);
    await expectCheckClean(site);
    await ok(site, 'create-volume', '1', 'clone', snap, '--wait');
  });

  it('DeleteVolume step 1 fails (lvremove): the volume is available again', async () => {
    const clone = (await siteState(site)).volumes.map((v) => String(v.volumeId)).find((id) => id !== vol)!;
    await failThenSucceed('lvremove.remove', ['delete-volume', clone, '--wait'], /OperationFailed: DeleteVolume failed at step 2 of 2 \(volume-delegate\.DeleteObject\): .*exited with \d+ on [a-z-]+\./);
    await expectCheckClean(site);
  });
});

describe("an operator's commands file whose export and copy patterns fail", { timeout: 150_000 }, () => {
  let work: string;
  let vbs: Vbs | undefined;
  const exportKey = canRunTgtd() ? 'iscsi.tgt.add-target' : 'iscsi.iet.add-target.sim';

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'vbs-ops-'));
  });
  afterAll(async () => {
    await vbs?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  /** Stops the deployment and starts it again on the same folder (nothing is attached across: tgtd goes with it). */
  async function restart(args: string[]): Promise<Site> {
    await vbs!.stop(true);
    vbs = await startVbs(['--backend', 'lvm-iscsi', ...args], vbs!.dir);
    return siteOf(vbs);
  }

  let site: Site;
  let vol: string;
  let snap: string;
  let before: SiteState;

  it('starts with an operator file whose export and dd patterns fail', async () => {
    vbs = await startVbs(['--backend', 'lvm-iscsi']);
    site = siteOf(vbs);
    vol = (await ok<Volume>(site, 'create-volume', '1', 'ops', '--wait')).volumeId;
    snap = (await ok<Snapshot>(site, 'create-snapshot', vol, 'source', '--wait')).snapshotId;
    const commands = operatorCommands(join(work, 'operator.properties'), { [exportKey]: 'false', 'volume.lvm.copy.sim': 'false' });
    site = await restart(['--commands', commands]);
    before = await siteState(site);
  });

  it(`AttachVolume step 1 (export: ${exportKey}) fails: nothing is left`, async () => {
    const fault = new RegExp(`OperationFailed: AttachVolume failed at step 1 of 4 \\(volume-delegate\\.ExportVolume\\): ${exportKey.replace(/\./g, '\\.')} exited with 1`);
    await expectRolledBack(site, before, await fails(site, 'attach-volume', vol, 'localhost', 'vm1', 'xvdb'), fault);
  });

  // The copies run after the request returned: the new snapshot or volume ends in error,
  // its temporary LVs are removed, and deleting the record leaves everything as before.
  it("CreateSnapshot's dd copy fails: the snapshot is error, no LV is left", async () => {
    const r = await site.cli('--json', 'create-snapshot', vol, 'copy fails', '--wait');
    expect(r.code, r.stderr).toBe(1);
    const failed = (await ok<(Snapshot & { statusMessage?: string })[]>(site, 'describe-snapshots')).find((s) => s.snapshotId !== snap)!;
    expect(failed).toMatchObject({ status: 'error', statusMessage: expect.stringMatching(/volume\.lvm\.copy/) });
    expect((await siteState(site)).lvs).toEqual(before.lvs);
    await ok(site, 'delete-snapshot', failed.snapshotId, '--wait');
    expect(await siteState(site)).toEqual(before);
    await expectCheckClean(site);
  });

  it("CreateVolume from a snapshot, its dd copy fails: the volume is error, no LV is left", async () => {
    const r = await site.cli('--json', 'create-volume', '1', 'copy fails', snap, '--wait');
    expect(r.code, r.stderr).toBe(1);
    const failed = (await ok<Volume[]>(site, 'describe-volumes')).find((v) => v.volumeId !== vol)!;
    expect(failed).toMatchObject({ status: 'error', statusMessage: expect.stringMatching(/volume\.lvm\.copy/) });
    expect((await siteState(site)).lvs).toEqual(before.lvs);
    await ok(site, 'delete-volume', failed.volumeId, '--wait');
    expect(await siteState(site)).toEqual(before);
    await expectCheckClean(site);
  });

  it('with the shipped commands on the same folder, the same requests succeed', async () => {
    site = await restart([]);
    await ok(site, 'attach-volume', vol, 'localhost', 'vm1', 'xvdb');
    expect((await siteState(site)).sessions).toHaveLength(1);
    await ok(site, 'create-snapshot', vol, 'copy works', '--wait');
    await ok(site, 'create-volume', '1', 'copy works', snap, '--wait');
    await ok(site, 'detach-volume', vol);
    await expectCheckClean(site);
  });
});

/** The front's delegateTimeoutMs here: far above what a call takes on a loaded machine, far below the hang. */
const FRONT_TIMEOUT_MS = 10_000;

describe('IET exports, a VMM delegate that dies, and one that hangs past the front timeout (vbs serve)', { timeout: 120_000 }, () => {
  let site: ServedSite;
  let vol: string;
  const attach = () => ['attach-volume', vol, 'localhost', 'vm1', 'xvdb'];

  beforeAll(async () => {
    site = await startServedLvmIscsi({ delegateTimeoutMs: FRONT_TIMEOUT_MS });
    expect(backendOf(site.dir).target).toBe('iet');
    vol = (await ok<Volume>(site, 'create-volume', '1', 'served', '--wait')).volumeId;
  });
  afterAll(async () => {
    await site?.stop();
  });

  it('AttachVolume step 1 (export: ietadm --op new) fails: nothing is left', async () => {
    const before = await siteState(site);
    armFault(site, 'fail', 'ietadm.new');
    try {
      await expectRolledBack(site, before, await fails(site, ...attach()), /OperationFailed: AttachVolume failed at step 1 of 4 \(volume-delegate\.ExportVolume\): .*exited with \d+ on [a-z-]+\./);
    } finally {
      clearFault(site, 'fail', 'ietadm.new');
    }
    await ok(site, ...attach());
  });

  it('DetachVolume step 3 (unexport: ietadm --op delete) fails: the disk and session stay gone and VBS finishes the detach', async () => {
    armFault(site, 'fail', 'ietadm.delete');
    let attached: SiteState;
    try {
      attached = await siteState(site);
      const stderr = await fails(site, 'detach-volume', vol);
      expect(stderr).toMatch(/ServiceUnavailable: DetachVolume could not finish step 3 of 3 \(volume-delegate\.UnexportVolume\): .*exited with \d+ on [a-z-]+\./);
      const now = await siteState(site);
      expect(now.disks).toEqual([]);
      expect(now.sessions).toEqual([]);
      expect(now.targets).toEqual(attached.targets);
    } finally {
      clearFault(site, 'fail', 'ietadm.delete');
    }
    await eventually(async () => ((await siteState(site)).targets.length ? undefined : true), 60_000, 250);
    await expectCheckClean(site);
    expect((await siteState(site)).volumes.find((v) => v.volumeId === vol)?.attachments ?? []).toEqual([]);
  });

  it('a VMM delegate that is down: a clear fault, a rollback with nothing left to undo, and the attach works when it is back', async () => {
    const before = await siteState(site);
    await site.vmm.kill();
    const stderr = await fails(site, ...attach());
    expect(stderr).toMatch(/ServiceUnavailable: AttachVolume failed at step 2 of 4 \(vmm-delegate\.DiscoverTarget\)/);
    // The discovery never reached the dead delegate, so it changed nothing there: only the export is undone, and nothing waits.
    expect(await siteState(site)).toEqual(before);
    expect(leftovers(site.dir)).toEqual([]);
    await site.vmm.restart();
    await expectCheckClean(site);
    await ok(site, ...attach());
    await ok(site, 'detach-volume', vol);
  });

  it('a VMM delegate that hangs past the front timeout: a clear fault, a rollback, the blocked undo retried', async () => {
    const before = await siteState(site);
    // The attach command sleeps before doing anything (src/sim/faults.ts), once.
    armFault(site, 'hang', 'xm.block-attach', '300');
    armFault(site, 'hang', 'xm.block-attach.count', '1');
    try {
      const stderr = await fails(site, ...attach());
      expect(stderr).toContain('ServiceUnavailable: AttachVolume failed at step 4 of 4 (vmm-delegate.AttachDisk): VmmDelegate localhost ');
      expect(stderr).toContain(`did not answer within ${FRONT_TIMEOUT_MS} ms`);
      // The export and session stay until the disk is seen gone (checked against \`before\` once the undos ran, below).
      // The delegate runs one disk change at a time per VM, so the undo's detach
      // waits behind the sleeping attach, times out too, and is kept to retry;
      // the session's and the export's undos wait behind it (a disk may remain).
      expect(leftovers(site.dir).map((l) => `${l.kind}/${l.step}`)).toEqual([
        'AttachVolume/vmm-delegate.AttachDisk',
        'AttachVolume/vmm-delegate.LoginTarget',
        'AttachVolume/vmm-delegate.DiscoverTarget',
        'AttachVolume/volume-delegate.ExportVolume',
      ]);
    } finally {
      clearFault(site, 'hang', 'xm.block-attach');
      // The stuck tool finally dies (the delegate's own limit is 120 s): ended here, by its PID.
      for (const pid of childProcesses(site.vmm.pid, 'block-attach')) process.kill(pid, 'SIGKILL');
    }
    await eventually(async () => (leftovers(site.dir).length === 0 ? true : undefined), 60_000, 250);
    expect(await siteState(site)).toEqual(before);
    await expectCheckClean(site);
    await ok(site, ...attach());
    await ok(site, 'detach-volume', vol);
    await expectCheckClean(site);
  });
});
