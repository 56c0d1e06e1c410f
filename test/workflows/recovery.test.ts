import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { availableVolume, FakeDelegate, makeFront, sharedDb, useEngine } from './fakes.js';
import { ENGINES } from '../setup/engines.js';

/**
 * A service that dies mid-workflow is simulated by a delegate call that never
 * answers and its runner stopped; a second front on the same database file
 * then plays the restart.
 */
const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

function dbFile(): string {
  const d = mkdtempSync(join(tmpdir(), 'vbs-recovery-'));
  dirs.push(d);
  return sharedDb(join(d, 'vbs.db'));
}

describe.each(ENGINES)('on %s', (engine) => {
  beforeAll(() => useEngine(engine));

  describe('recovery after a crash mid-workflow', () => {
    it('attach interrupted at the VMM step is rolled back on restart: export and disk undone', async () => {
      const file = dbFile();
      const storage = new FakeDelegate();
      const vmm = new FakeDelegate();
      const before = makeFront(file, storage, vmm);
      const vol = await availableVolume(before);
      vmm.hangs.add('AttachDisk');
      void before.call('AttachVolume', { volumeId: vol, vmmHost: 'localhost', vmId: 'vm1', device: 'xvdb' });
      await vmm.reached('AttachDisk');
      expect(before.meta.attachmentsOf([vol])[0]!.status).toBe('attaching');

      before.wf.engine.stop(); // the crash: its runner is gone

      vmm.hangs.clear();
      const after = makeFront(file, storage, vmm);
      expect(await after.wf.engine.recover()).toBe(1);
      expect(after.meta.allAttachments()).toEqual([]);
      expect(after.meta.volume(vol)!.status).toBe('available');
      expect(storage.exports.size).toBe(0);
      expect(vmm.calls.at(-1)).toBe('DetachDisk');
      await after.call('AttachVolume', { volumeId: vol, vmmHost: 'localhost', vmId: 'vm1', device: 'xvdb' });
      expect(after.meta.volume(vol)!.status).toBe('in-use');
    });

    it('delete interrupted at the delegate step is finished on restart', async () => {
      const file = dbFile();
      const storage = new FakeDelegate();
      const before = makeFront(file, storage);
      const vol = await availableVolume(before);
      storage.hangs.add('DeleteObject');
      void before.call('DeleteVolume', { volumeId: vol });
      await storage.reached('DeleteObject');
      expect(before.meta.volume(vol)!.status).toBe('deleting');

      before.wf.engine.stop(); // the crash: its runner is gone

      storage.hangs.clear();
      const after = makeFront(file, storage);
      await after.wf.engine.recover();
      expect(after.meta.volume(vol)).toBeUndefined();
      expect(storage.objects.has(vol)).toBe(false);
    });

    it('create interrupted at the delegate step is rolled back: no record, no data', async () => {
      const file = dbFile();
      const storage = new FakeDelegate();
      const before = makeFront(file, storage);
      storage.hangs.add('CreateVolume');
      void before.call('CreateVolume', { size: 2 });
      await storage.reached('CreateVolume');
      expect(before.meta.allVolumes().map((v) => v.status)).toEqual(['creating']);

      before.wf.engine.stop(); // the crash: its runner is gone

      storage.hangs.clear();
      const after = makeFront(file, storage);
      await after.wf.engine.recover();
      expect(after.meta.allVolumes()).toEqual([]);
      expect(storage.calls.at(-1)).toBe('DeleteObject');
    });

    it('detach interrupted after the VMM step is finished on restart (detach rolls forward): nothing is attached again', async () => {
      const file = dbFile();
      const storage = new FakeDelegate();
      const vmm = new FakeDelegate();
      const before = makeFront(file, storage, vmm);
      const vol = await availableVolume(before);
      await before.call('AttachVolume', { volumeId: vol, vmmHost: 'localhost', vmId: 'vm1', device: 'xvdb', mode: 'r' });
      storage.hangs.add('UnexportVolume');
      void before.call('DetachVolume', { volumeId: vol });
      await storage.reached('UnexportVolume');
      expect(vmm.disks.size).toBe(0);

      before.wf.engine.stop(); // the crash: its runner is gone

      storage.hangs.clear();
      const after = makeFront(file, storage, vmm);
      await after.wf.engine.recover();
      expect(after.meta.attachmentsOf([vol])).toEqual([]);
      expect(after.meta.volume(vol)!.status).toBe('available');
      expect(vmm.disks.size).toBe(0);
      expect(storage.exports.size).toBe(0);
    });
  });
});
