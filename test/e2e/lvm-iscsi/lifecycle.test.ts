import { openSync, readSync, closeSync, writeSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canRunTgtd } from '../../../src/deploy/tgtd.js';
import { startVbs, type Vbs } from '../harness.js';
import { hostInitiatorName } from '../../../src/core/initiator-name.js';
import {
  backendOf,
  expectCheckClean,
  GiB,
  IQN_PREFIX,
  iscsiLs,
  chapAccountOf,
  lvFile,
  ok,
  simDump,
  targetsOf,
  type BackendConfig,
  type Site,
} from './site.js';

/**
 * The eight operations through the vbs CLI against `vbs up --backend
 * lvm-iscsi`, checking after each one what really exists: LVs of the
 * simulated VG, targets of the target daemon (a real tgtd when vbs up can run
 * one, as in CI; the simulated IET otherwise, and always in the second run),
 * the VMM host's iSCSI sessions and its VMs' disks.
 */
const MODES = [
  { label: canRunTgtd() ? 'a real tgtd started by vbs up' : 'the simulated IET (no tgtd can run here)', target: canRunTgtd() ? 'tgt' : 'iet' },
  { label: 'the simulated IET (vbs up --target iet)', target: 'iet' },
] as const;

interface Volume {
  volumeId: string;
  size: number;
  status: string;
  snapshotId?: string;
  attachments: { vmId: string; vmmHost: string; mode: string; status: string; device: string }[];
}
interface Snapshot {
  snapshotId: string;
  volumeId: string;
  status: string;
  progress: number;
}

/** What really exists on the site, keyed by volume or snapshot id. */
interface RealView {
  /** LV name -> size in GiB. */
  lvs: Record<string, number>;
  /** Volume id -> `<lun>:<backing file>[ <acl>]` of its target. */
  targets: Record<string, string>;
  /** Volume ids the VMM host has a session (and a node record) for. */
  sessions: string[];
  nodes: string[];
  /** `<vm>/<dev>` -> `<mode> <device>`. */
  disks: Record<string, string>;
}

const MARK = Buffer.from(`VBS lifecycle ${process.pid} ${Date.now()}`);

function readMark(file: string): string {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(MARK.length);
    readSync(fd, buf, 0, buf.length, 0);
    return buf.toString();
  } finally {
    closeSync(fd);
  }
}

for (const mode of MODES) {
  describe(`lvm-iscsi lifecycle through the CLI, targets on ${mode.label}`, { timeout: 120_000 }, () => {
    let vbs: Vbs;
    let site: Site;
    let b: BackendConfig;
    let vol: Volume;
    let snap: Snapshot;
    let clone: Volume;

    beforeAll(async () => {
      vbs = await startVbs(['--backend', 'lvm-iscsi', '--target', mode.target]);
      site = { dir: vbs.dir, cli: (...a) => vbs.cli(...a), api: vbs.soap() };
      b = backendOf(vbs.dir);
    });
    afterAll(async () => {
      await vbs?.stop();
    });

    const volumeOfIqn = (iqn: string) => (iqn.startsWith(`${IQN_PREFIX}:`) ? iqn.slice(IQN_PREFIX.length + 1) : `foreign ${iqn}`);
    const byPath = (volumeId: string) => `/dev/disk/by-path/ip-${b.portal}-iscsi-${IQN_PREFIX}:${volumeId}-lun-1`;

    function real(): RealView {
      const dump = simDump(b.simState);
      return {
        lvs: Object.fromEntries(dump.vgs.flatMap((vg) => vg.lvs.map((l) => [l.name, (l.extents * vg.extentSize) / GiB]))),
        targets: Object.fromEntries(
          targetsOf(b, dump).map((t) => [volumeOfIqn(t.iqn), [t.luns.map((l) => `${l.lun}:${l.path}`).join(','), ...(t.acl ?? [])].join(' ')]),
        ),
        sessions: dump.iscsi.sessions.map((s) => (s.portal === b.portal ? volumeOfIqn(s.iqn) : `elsewhere ${s.portal}`)).sort(),
        nodes: dump.iscsi.nodes.map((s) => (s.portal === b.portal ? volumeOfIqn(s.iqn) : `elsewhere ${s.portal}`)).sort(),
        disks: Object.fromEntries(dump.vms.flatMap((vm) => vm.disks.map((d) => [`${vm.name}/${d.dev}`, `${d.mode} ${d.target}`]))),
      };
    }
    /** The target a volume's export should be: LUN 1 on its LV, open to all initiators on tgt. */
    // tgt admits only the initiator of the VMM host the volume is exported to (vbs up's host is localhost).
    const exported = (volumeId: string) => [`1:${lvFile(b, volumeId)}`, ...(b.target === 'tgt' ? [hostInitiatorName('localhost')] : [])].join(' ');

    it('runs on the expected target daemon', () => {
      expect(b.target).toBe(mode.target);
      if (b.target === 'iet') expect(b.portal).toBe('127.0.0.1:3260');
      else expect(b.tgtControlPort).toBeGreaterThan(0);
      expect(real()).toEqual({ lvs: {}, targets: {}, sessions: [], nodes: [], disks: {} });
    });

    it('create-volume: a blank LV of the size asked, exported nowhere', async () => {
      vol = await ok<Volume>(site, 'create-volume', '1', 'lifecycle', '--wait');
      expect(vol).toMatchObject({ size: 1, status: 'available', attachments: [] });
      expect(real()).toEqual({ lvs: { [vol.volumeId]: 1 }, targets: {}, sessions: [], nodes: [], disks: {} });
      // Data the snapshot and its clone must carry.
      const fd = openSync(lvFile(b, vol.volumeId)!, 'r+');
      writeSync(fd, MARK, 0, MARK.length, 0);
      closeSync(fd);
      await expectCheckClean(site);
    });

    it('describe-volumes: the volume alone and among all', async () => {
      expect((await ok<Volume[]>(site, 'describe-volumes', vol.volumeId)).map((v) => [v.volumeId, v.status])).toEqual([[vol.volumeId, 'available']]);
      expect((await ok<Volume[]>(site, 'describe-volumes')).map((v) => v.volumeId)).toEqual([vol.volumeId]);
    });

    it("create-snapshot: a standalone LV with the volume's data, no copy-on-write LV left", async () => {
      snap = await ok<Snapshot>(site, 'create-snapshot', vol.volumeId, 'first', '--wait');
      expect(snap).toMatchObject({ status: 'completed', progress: 100, volumeId: vol.volumeId });
      expect(real().lvs).toEqual({ [vol.volumeId]: 1, [snap.snapshotId]: 1 });
      expect(readMark(lvFile(b, snap.snapshotId)!)).toBe(MARK.toString());
      expect((await ok<Snapshot[]>(site, 'describe-snapshots')).map((s) => [s.snapshotId, s.status])).toEqual([[snap.snapshotId, 'completed']]);
      await expectCheckClean(site);
    });

    it("create-volume from the snapshot: a larger LV holding the snapshot's data", async () => {
      clone = await ok<Volume>(site, 'create-volume', '2', 'clone', snap.snapshotId, '--wait');
      expect(clone).toMatchObject({ size: 2, status: 'available', snapshotId: snap.snapshotId });
      expect(real()).toEqual({ lvs: { [vol.volumeId]: 1, [snap.snapshotId]: 1, [clone.volumeId]: 2 }, targets: {}, sessions: [], nodes: [], disks: {} });
      expect(readMark(lvFile(b, clone.volumeId)!)).toBe(MARK.toString());
      await expectCheckClean(site);
    });

    it('attach-volume read-write: a target on its LV, a session, the LUN on the VM', async () => {
      const a = await ok<{ status: string; mode: string }>(site, 'attach-volume', vol.volumeId, 'localhost', 'vm1', 'xvdb', '--wait');
      expect(a).toMatchObject({ status: 'attached', mode: 'w' });
      const view = real();
      expect(view.targets).toEqual({ [vol.volumeId]: exported(vol.volumeId) });
      expect(view.sessions).toEqual([vol.volumeId]);
      expect(view.nodes).toEqual([vol.volumeId]);
      expect(view.disks).toEqual({ 'vm1/xvdb': `w ${byPath(vol.volumeId)}` });
      if (b.target === 'tgt') {
        // The VMM host's initiator sees it at the portal over iSCSI (the deployment's tgtd really
        // serves it); any other initiator is not shown it.
        // With the CHAP account the front gave that host for this export.
        const ls = iscsiLs(b.portal, hostInitiatorName('localhost'), chapAccountOf(site.dir, vol.volumeId));
        expect(ls).toContain(`Target:${IQN_PREFIX}:${vol.volumeId} Portal:${b.portal}`);
        expect(ls).toMatch(/Lun:1\s+Type:DIRECT_ACCESS/);
        expect(iscsiLs(b.portal, hostInitiatorName('elsewhere'))).not.toContain(`${IQN_PREFIX}:${vol.volumeId}`);
      }
      expect((await ok<Volume[]>(site, 'describe-volumes', vol.volumeId))[0]).toMatchObject({
        status: 'in-use',
        attachments: [expect.objectContaining({ vmId: 'vm1', vmmHost: 'localhost', mode: 'w', status: 'attached' })],
      });
      await expectCheckClean(site);
    });

    it('attach-volume read-only to two VMs: one target and one session serve both', async () => {
      await ok(site, 'attach-volume', clone.volumeId, 'localhost', 'vm2', 'xvdc', '--mode', 'r');
      await ok(site, 'attach-volume', clone.volumeId, 'localhost', 'vm3', 'xvdc', '--mode', 'r');
      const view = real();
      expect(view.targets).toEqual({ [vol.volumeId]: exported(vol.volumeId), [clone.volumeId]: exported(clone.volumeId) });
      expect(view.sessions).toEqual([vol.volumeId, clone.volumeId].sort());
      expect(view.disks).toEqual({
        'vm1/xvdb': `w ${byPath(vol.volumeId)}`,
        'vm2/xvdc': `r ${byPath(clone.volumeId)}`,
        'vm3/xvdc': `r ${byPath(clone.volumeId)}`,
      });
      await expectCheckClean(site);
    });

    it('detach-volume by volume id alone: disk, session, node record and target go', async () => {
      await ok(site, 'detach-volume', vol.volumeId, '--wait');
      const view = real();
      expect(view.targets).toEqual({ [clone.volumeId]: exported(clone.volumeId) });
      expect(view.sessions).toEqual([clone.volumeId]);
      expect(view.nodes).toEqual([clone.volumeId]);
      expect(view.disks).toEqual({ 'vm2/xvdc': `r ${byPath(clone.volumeId)}`, 'vm3/xvdc': `r ${byPath(clone.volumeId)}` });
      expect((await ok<Volume[]>(site, 'describe-volumes', vol.volumeId))[0]).toMatchObject({ status: 'available', attachments: [] });
      await expectCheckClean(site);
    });

    it('detach-volume naming host and VM: the shared target stays until the last VM leaves', async () => {
      await ok(site, 'detach-volume', clone.volumeId, '--vmm-host', 'localhost', '--vm-id', 'vm2');
      let view = real();
      expect(view.targets).toEqual({ [clone.volumeId]: exported(clone.volumeId) });
      expect(view.sessions).toEqual([clone.volumeId]);
      expect(view.disks).toEqual({ 'vm3/xvdc': `r ${byPath(clone.volumeId)}` });
      await ok(site, 'detach-volume', clone.volumeId, '--vmm-host', 'localhost', '--vm-id', 'vm3');
      view = real();
      expect(view).toEqual({ lvs: view.lvs, targets: {}, sessions: [], nodes: [], disks: {} });
      await expectCheckClean(site);
    });

    it('delete-volume and delete-snapshot: their LVs go, and so do the records', async () => {
      await ok(site, 'delete-volume', clone.volumeId, '--wait');
      expect(real().lvs).toEqual({ [vol.volumeId]: 1, [snap.snapshotId]: 1 });
      await ok(site, 'delete-snapshot', snap.snapshotId, '--wait');
      expect(real().lvs).toEqual({ [vol.volumeId]: 1 });
      await ok(site, 'delete-volume', vol.volumeId, '--wait');
      expect(real()).toEqual({ lvs: {}, targets: {}, sessions: [], nodes: [], disks: {} });
      const gone = await site.cli('describe-volumes', vol.volumeId);
      expect(gone.code).toBe(1);
      expect(gone.stderr).toMatch(/InvalidVolume\.NotFound/);
      expect(await ok<Snapshot[]>(site, 'describe-snapshots')).toEqual([]);
      await expectCheckClean(site);
    });
  });
}
