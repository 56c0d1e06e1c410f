import { beforeAll, describe, expect, it } from 'vitest';
import { VbsError } from '../../src/core/errors.js';
import { availableVolume, makeFront, useEngine } from './fakes.js';
import { ENGINES } from '../setup/engines.js';

/**
 * Issue 16 item 9: an attach's undos withdraw what the disk reads (the iSCSI
 * session, the export) only once the disk is gone. Logging out from under a
 * disk the VM still has leaves the guest a dead disk.
 */
describe.each(ENGINES)('on %s', (engine) => {
  beforeAll(() => useEngine(engine));

  describe('attach compensation withdraws the session and the export only after the disk is gone', () => {
    it('keeps the session and the export while the DetachDisk undo fails, and withdraws them, in order, once it works', async () => {
      const f = makeFront();
      f.storage.exportKind = 'iscsi';
      const vol = await availableVolume(f);
      const iqn = `iqn.2026-11.org.vbs:${vol}`;
      // AttachDisk acted (the disk is on the VM), then its answer was lost: an unknown outcome, so it is undone too.
      f.vmm.failures.set('AttachDisk', new VbsError('ServiceUnavailable', 'AttachDisk: outcome unknown'));
      f.vmm.failures.set('DetachDisk', new VbsError('ServiceUnavailable', 'DetachDisk: the host could not be looked at'));
      const attach = f.call('AttachVolume', { volumeId: vol, vmmHost: 'localhost', vmId: 'vm1', device: 'xvdb' });
      await f.vmm.reached('AttachDisk');
      f.vmm.disks.set('vm1/xvdb', vol);
      await expect(attach).rejects.toThrow(/AttachVolume failed at step 4 of 4/);

      expect(f.vmm.disks.get('vm1/xvdb')).toBe(vol);
      expect([...f.vmm.sessions]).toEqual([iqn]);
      expect([...f.storage.exports]).toEqual([`${vol}@localhost`]);
      expect(f.vmm.calls).not.toContain('LogoutTarget');
      expect(f.storage.calls).not.toContain('UnexportVolume');
      // Every undo is kept, to run once the disk is gone.
      const leftovers = () => (f.db.prepare('SELECT step FROM leftovers ORDER BY id').all() as { step: string }[]).map((l) => l.step);
      expect(leftovers()).toEqual(['vmm-delegate.AttachDisk', 'vmm-delegate.LoginTarget', 'vmm-delegate.DiscoverTarget', 'volume-delegate.ExportVolume']);
      // While the VM may hold the disk, the volume is never shown available: its attachment stays, detaching.
      const state = () => ({
        volume: (f.db.prepare('SELECT status FROM volumes WHERE volume_id = ?').get(vol) as { status: string }).status,
        attachments: f.db.prepare('SELECT vm_id, status FROM attachments WHERE volume_id = ?').all(vol),
      });
      expect(state()).toEqual({ volume: 'in-use', attachments: [{ vm_id: 'vm1', status: 'detaching' }] });

      // A retry while the disk still cannot be detached withdraws nothing either.
      await f.wf.engine.resume({ notDueToo: true });
      expect([...f.vmm.sessions]).toEqual([iqn]);
      expect([...f.storage.exports]).toEqual([`${vol}@localhost`]);

      expect(f.vmm.calls).not.toContain('LogoutTarget');
      f.vmm.failures.delete('DetachDisk');
      const cleared = f.vmm.calls.length;
      await f.wf.engine.resume({ notDueToo: true });
      expect(leftovers()).toEqual([]);
      expect(state()).toEqual({ volume: 'available', attachments: [] });
      expect([...f.vmm.disks.keys()]).toEqual([]);
      expect([...f.vmm.sessions]).toEqual([]);
      expect([...f.storage.exports]).toEqual([]);
      // The first call after the fault cleared is the detach; the logout comes after it.
      expect(f.vmm.calls[cleared]).toBe('DetachDisk');
      expect(f.vmm.calls.indexOf('LogoutTarget')).toBeGreaterThan(cleared);
    });
  });
});
