import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { VbsError } from '../../src/core/errors.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { availableVolume, FakeDelegate, makeFront, unreachable, sharedDb, useEngine } from './fakes.js';
import { ENGINES } from '../setup/engines.js';

const GiB = 1024 ** 3;
const attach = (volumeId: string, vmId = 'vm1', device = 'xvdb') => ({ volumeId, vmmHost: 'localhost', vmId, device });
const modification = (r: XmlRecord) => r.modification as XmlRecord;

type Front = ReturnType<typeof makeFront>;

function noneRunning(f: Front): void {
  expect(f.db.prepare(`SELECT count(*) AS n FROM workflows WHERE state = 'running'`).get()).toEqual({ n: 0 });
}

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));
function dbFile(): string {
  const d = mkdtempSync(join(tmpdir(), 'vbs-modify-'));
  dirs.push(d);
  return sharedDb(join(d, 'vbs.db'));
}

describe.each(ENGINES)('on %s', (engine) => {
  beforeAll(() => useEngine(engine));

  describe('ModifyVolume: a volume grows', () => {
    it('an available volume grows on its back end and the record is completed; no VM is asked', async () => {
      const f = makeFront();
      const vol = await availableVolume(f);
      const m = modification(await f.call('ModifyVolume', { volumeId: vol, size: 3 }));
      expect(m).toMatchObject({ volumeId: vol, modificationState: 'completed', originalSize: 1, targetSize: 3, progress: 100 });
      expect(m.endTime).toBeInstanceOf(Date);
      expect(m.statusMessage).toBeUndefined();
      expect(f.storage.sizes.get(vol)).toBe(3);
      expect(f.meta.volume(vol)!.size_gib).toBe(3);
      expect(f.meta.volume(vol)!.status).toBe('available');
      expect(f.vmm.calls).not.toContain('ResizeDisk');
      noneRunning(f);
    });

    it('an in-use volume grows and its VM is told the new size in bytes', async () => {
      const f = makeFront();
      const vol = await availableVolume(f);
      await f.call('AttachVolume', attach(vol));
      const m = modification(await f.call('ModifyVolume', { volumeId: vol, size: 2 }));
      expect(m.modificationState).toBe('completed');
      expect(f.vmm.resized.get('vm1/xvdb')).toBe(2 * GiB);
      expect(f.meta.volume(vol)!.status).toBe('in-use');
      expect(f.meta.volume(vol)!.size_gib).toBe(2);
    });

    it('never shrinks, and the same size is no modification: clear faults, nothing runs', async () => {
      const f = makeFront();
      const vol = await availableVolume(f);
      await f.call('ModifyVolume', { volumeId: vol, size: 4 });
      f.storage.calls.length = 0;
      await expect(f.call('ModifyVolume', { volumeId: vol, size: 2 })).rejects.toMatchObject({ code: 'InvalidParameterValue', message: expect.stringMatching(/never shrink/) });
      await expect(f.call('ModifyVolume', { volumeId: vol, size: 4 })).rejects.toMatchObject({ code: 'InvalidParameterValue', message: expect.stringMatching(/already 4 GiB/) });
      for (const size of [0, -1, 'x', 16385]) {
        await expect(f.call('ModifyVolume', { volumeId: vol, size })).rejects.toMatchObject({ code: 'InvalidParameterValue' });
      }
      await expect(f.call('ModifyVolume', { volumeId: vol })).rejects.toMatchObject({ code: 'MissingParameter' });
      await expect(f.call('ModifyVolume', { volumeId: 'vol-../../etc', size: 5 })).rejects.toMatchObject({ code: 'InvalidParameterValue' });
      expect(f.storage.calls).toEqual([]);
      expect(f.meta.volume(vol)!.size_gib).toBe(4);
    });

    it("another user's volume is not found; an administrator may grow it", async () => {
      const f = makeFront();
      const vol = await availableVolume(f, 'bob');
      await expect(f.call('ModifyVolume', { volumeId: vol, size: 2 })).rejects.toMatchObject({ code: 'InvalidVolume.NotFound' });
      await expect(f.call('DescribeVolumesModifications', { volumeId: [vol] })).rejects.toMatchObject({ code: 'InvalidVolume.NotFound' });
      expect(modification(await f.call('ModifyVolume', { volumeId: vol, size: 2 }, 'admin')).modificationState).toBe('completed');
    });

    it("the owner's GiB quota counts the new size, from the moment the growth is asked", async () => {
      const f = makeFront();
      await f.call('SetQuota', { user: 'alice', gib: 5 }, 'admin');
      const vol = await availableVolume(f);
      await expect(f.call('ModifyVolume', { volumeId: vol, size: 6 })).rejects.toMatchObject({ code: 'QuotaExceeded' });
      f.storage.hangs.add('GrowVolume');
      void f.call('ModifyVolume', { volumeId: vol, size: 4 }).catch(() => undefined);
      await f.storage.reached('GrowVolume');
      // While growing: 4 GiB held, so a 2 GiB volume does not fit, a 1 GiB one does.
      await expect(f.call('CreateVolume', { size: 2 })).rejects.toMatchObject({ code: 'QuotaExceeded' });
      expect((await f.call('DescribeQuota', { user: 'alice' }, 'admin')).quota).toMatchObject({ gib: 4 });
    });

    it('one modification at a time; attach, snapshot and delete wait for it', async () => {
      const f = makeFront();
      const vol = await availableVolume(f);
      f.storage.hangs.add('GrowVolume');
      void f.call('ModifyVolume', { volumeId: vol, size: 2 }).catch(() => undefined);
      await f.storage.reached('GrowVolume');
      await expect(f.call('ModifyVolume', { volumeId: vol, size: 3 })).rejects.toMatchObject({ code: 'IncorrectModificationState' });
      await expect(f.call('AttachVolume', attach(vol))).rejects.toMatchObject({ code: 'IncorrectState', message: expect.stringMatching(/being modified/) });
      await expect(f.call('CreateSnapshot', { volumeId: vol })).rejects.toMatchObject({ code: 'IncorrectState' });
      await expect(f.call('DeleteVolume', { volumeId: vol })).rejects.toMatchObject({ code: 'IncorrectState' });
      const listed = (await f.call('DescribeVolumesModifications', { volumeId: [vol] })).modification as XmlRecord[];
      expect(listed).toMatchObject([{ modificationState: 'modifying', originalSize: 1, targetSize: 2, progress: 0 }]);
    });

    it('a volume being attached is not modified until the attach is done', async () => {
      const f = makeFront();
      const vol = await availableVolume(f);
      f.vmm.hangs.add('AttachDisk');
      void f.call('AttachVolume', attach(vol)).catch(() => undefined);
      await f.vmm.reached('AttachDisk');
      await expect(f.call('ModifyVolume', { volumeId: vol, size: 2 })).rejects.toMatchObject({ code: 'IncorrectState', message: expect.stringMatching(/attaching/) });
    });
  });

  describe('ModifyVolume: each step failing leaves a consistent state', () => {
    it('the back end refuses the growth (no space): a fault, the record failed, the size unchanged, no VM told', async () => {
      const f = makeFront();
      const vol = await availableVolume(f);
      await f.call('AttachVolume', attach(vol));
      f.storage.failures.set('GrowVolume', new VbsError('InsufficientCapacity', 'There is not enough free space to grow it.'));
      await expect(f.call('ModifyVolume', { volumeId: vol, size: 5 })).rejects.toMatchObject({ code: 'InsufficientCapacity', message: expect.stringMatching(/ModifyVolume failed at step 1 of 2/) });
      expect(f.meta.volume(vol)!.size_gib).toBe(1);
      expect(f.vmm.calls).not.toContain('ResizeDisk');
      const [m] = (await f.call('DescribeVolumesModifications', {})).modification as XmlRecord[];
      expect(m).toMatchObject({ modificationState: 'failed', originalSize: 1, targetSize: 5, statusMessage: expect.stringMatching(/not enough free space/) });
      noneRunning(f);
      // The quota no longer holds the failed growth, and the next request may go.
      f.storage.failures.clear();
      expect(modification(await f.call('ModifyVolume', { volumeId: vol, size: 5 })).modificationState).toBe('completed');
    });

    it('a delegate that cannot be reached changed nothing: failed, size unchanged', async () => {
      const f = makeFront();
      const vol = await availableVolume(f);
      f.storage.failures.set('GrowVolume', unreachable());
      await expect(f.call('ModifyVolume', { volumeId: vol, size: 2 })).rejects.toMatchObject({ code: 'ServiceUnavailable' });
      expect(f.meta.volume(vol)!.size_gib).toBe(1);
      expect(((await f.call('DescribeVolumesModifications', {})).modification as XmlRecord[])[0]!.modificationState).toBe('failed');
    });

    it('a growth whose outcome is unknown (a timeout) is never turned back: modifying, then finished when the delegate answers', async () => {
      const f = makeFront();
      const vol = await availableVolume(f);
      f.storage.failures.set('GrowVolume', new VbsError('ServiceUnavailable', 'VolumeDelegate did not answer in time.'));
      const m = modification(await f.call('ModifyVolume', { volumeId: vol, size: 3 }));
      expect(m).toMatchObject({ modificationState: 'modifying', targetSize: 3 });
      expect(f.meta.volume(vol)!.size_gib).toBe(1);
      f.storage.failures.clear();
      expect(await f.wf.engine.resume({ notDueToo: true })).toBe(1);
      expect(f.meta.volume(vol)!.size_gib).toBe(3);
      expect(((await f.call('DescribeVolumesModifications', { volumeId: [vol] })).modification as XmlRecord[])[0]).toMatchObject({ modificationState: 'completed' });
      noneRunning(f);
    });

    it("a grown back end whose VM's host fails to be told: completed at the new size, the message names the VM (as EC2: the guest sees it after a rescan)", async () => {
      const f = makeFront();
      const vol = await availableVolume(f);
      await f.call('AttachVolume', attach(vol));
      f.vmm.failures.set('ResizeDisk', new VbsError('OperationFailed', 'virsh: error: internal error'));
      const m = modification(await f.call('ModifyVolume', { volumeId: vol, size: 2 }));
      expect(m).toMatchObject({ modificationState: 'completed', progress: 100, statusMessage: expect.stringMatching(/rescan.*vm1 on localhost \(virsh: error/) });
      expect(f.meta.volume(vol)!.size_gib).toBe(2);
      expect(f.storage.sizes.get(vol)).toBe(2);
      expect(f.meta.volume(vol)!.status).toBe('in-use');
      noneRunning(f);
    });

    it('a VM that no longer holds the disk has nothing to be told', async () => {
      const f = makeFront();
      const vol = await availableVolume(f);
      await f.call('AttachVolume', attach(vol));
      f.vmm.disks.clear(); // the VM lost its disk behind VBS's back
      const m = modification(await f.call('ModifyVolume', { volumeId: vol, size: 2 }));
      expect(m).toMatchObject({ modificationState: 'completed' });
      expect(m.statusMessage).toBeUndefined();
    });
  });

  describe('ModifyVolume: crash recovery rolls forward', () => {
    it('interrupted while the back end grows: finished on restart, never shrunk', async () => {
      const file = dbFile();
      const storage = new FakeDelegate();
      const before = makeFront(file, storage);
      const vol = await availableVolume(before);
      storage.hangs.add('GrowVolume');
      void before.call('ModifyVolume', { volumeId: vol, size: 3 });
      await storage.reached('GrowVolume');
      before.wf.engine.stop(); // the crash: its runner is gone

      storage.hangs.clear();
      const after = makeFront(file, storage);
      expect(await after.wf.engine.recover()).toBe(1);
      expect(after.meta.volume(vol)!.size_gib).toBe(3);
      expect(storage.sizes.get(vol)).toBe(3);
      expect(((await after.call('DescribeVolumesModifications', {})).modification as XmlRecord[])[0]).toMatchObject({ modificationState: 'completed' });
      noneRunning(after);
    });

    it('interrupted while the VMs are told: the volume already shows its new size (optimizing), and recovery tells them', async () => {
      const file = dbFile();
      const storage = new FakeDelegate();
      const vmm = new FakeDelegate();
      const before = makeFront(file, storage, vmm);
      const vol = await availableVolume(before);
      await before.call('AttachVolume', attach(vol));
      vmm.hangs.add('ResizeDisk');
      void before.call('ModifyVolume', { volumeId: vol, size: 2 });
      await vmm.reached('ResizeDisk');
      expect(before.meta.volume(vol)!.size_gib).toBe(2);
      expect(((await before.call('DescribeVolumesModifications', {})).modification as XmlRecord[])[0]).toMatchObject({ modificationState: 'optimizing', progress: 50 });
      before.wf.engine.stop();

      vmm.hangs.clear();
      const after = makeFront(file, storage, vmm);
      await after.wf.engine.recover();
      expect(vmm.resized.get('vm1/xvdb')).toBe(2 * GiB);
      expect(((await after.call('DescribeVolumesModifications', {})).modification as XmlRecord[])[0]).toMatchObject({ modificationState: 'completed' });
      noneRunning(after);
    });
  });

  describe('DescribeVolumesModifications', () => {
    it("each volume's most recent request, or every request; filters and pages; only the caller's own", async () => {
      const f = makeFront();
      const vols: string[] = [];
      for (let i = 0; i < 6; i++) vols.push(await availableVolume(f));
      for (const vol of vols) await f.call('ModifyVolume', { volumeId: vol, size: 2 });
      await f.call('ModifyVolume', { volumeId: vols[0]!, size: 3 });
      const bobs = await availableVolume(f, 'bob');
      await f.call('ModifyVolume', { volumeId: bobs, size: 2 }, 'bob');

      const latest = (await f.call('DescribeVolumesModifications', {})).modification as XmlRecord[];
      expect(latest).toHaveLength(6);
      expect(latest.find((m) => m.volumeId === vols[0])).toMatchObject({ originalSize: 2, targetSize: 3 });
      const all = (await f.call('DescribeVolumesModifications', { allRequests: true })).modification as XmlRecord[];
      expect(all).toHaveLength(7);
      expect(all.every((m) => m.volumeId !== bobs)).toBe(true);

      const filtered = (await f.call('DescribeVolumesModifications', { filter: [{ name: 'targetSize', value: ['3'] }] })).modification as XmlRecord[];
      expect(filtered.map((m) => m.volumeId)).toEqual([vols[0]]);
      await expect(f.call('DescribeVolumesModifications', { filter: [{ name: 'nope', value: ['1'] }] })).rejects.toMatchObject({ code: 'InvalidParameterValue' });

      const first = await f.call('DescribeVolumesModifications', { maxResults: 5 });
      expect(first.modification as XmlRecord[]).toHaveLength(5);
      const second = await f.call('DescribeVolumesModifications', { maxResults: 5, nextToken: first.nextToken });
      expect(second.modification as XmlRecord[]).toHaveLength(1);
      expect(second.nextToken).toBeUndefined();
      await expect(f.call('DescribeVolumesModifications', { maxResults: 5, nextToken: first.nextToken, allRequests: true })).rejects.toMatchObject({ code: 'InvalidParameterValue' });

      expect((await f.call('DescribeVolumesModifications', {}, 'admin')).modification as XmlRecord[]).toHaveLength(7);
    });

    it("a deleted volume's records go with it", async () => {
      const f = makeFront();
      const vol = await availableVolume(f);
      await f.call('ModifyVolume', { volumeId: vol, size: 2 });
      await f.call('DeleteVolume', { volumeId: vol });
      expect((await f.call('DescribeVolumesModifications', { allRequests: true })).modification).toEqual([]);
    });
  });
});
