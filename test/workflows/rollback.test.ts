import { beforeAll, describe, expect, it } from 'vitest';
import { VbsError } from '../../src/core/errors.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { availableVolume, makeFront, unreachable, useEngine } from './fakes.js';
import { ENGINES } from '../setup/engines.js';

const attachArgs = (volumeId: string, extra: XmlRecord = {}) => ({ volumeId, vmmHost: 'localhost', vmId: 'vm1', device: 'xvdb', ...extra });
const fault = (code: 'OperationFailed' | 'ServiceUnavailable' = 'OperationFailed') => new VbsError(code, 'injected failure');

function noTransients(f: ReturnType<typeof makeFront>): void {
  expect(f.meta.allVolumes().filter((v) => v.status === 'deleting')).toEqual([]);
  expect(f.meta.allAttachments().filter((a) => a.status !== 'attached')).toEqual([]);
  expect(f.db.prepare(`SELECT count(*) AS n FROM workflows WHERE state = 'running'`).get()).toEqual({ n: 0 });
}

type FrontFake = ReturnType<typeof makeFront>;

/** What the fake hosts hold for the volume: the state every rollback must restore. */
function hostState(f: FrontFake) {
  return { exports: [...f.storage.exports], nodes: [...f.vmm.nodes], sessions: [...f.vmm.sessions], disks: [...f.vmm.disks.keys()] };
}

const ATTACH_STEPS = [
  { op: 'ExportVolume', on: 'storage', name: 'volume-delegate.ExportVolume' },
  { op: 'DiscoverTarget', on: 'vmm', name: 'vmm-delegate.DiscoverTarget' },
  { op: 'LoginTarget', on: 'vmm', name: 'vmm-delegate.LoginTarget' },
  { op: 'AttachDisk', on: 'vmm', name: 'vmm-delegate.AttachDisk' },
] as const;

describe.each(ENGINES)('on %s', (engine) => {
  beforeAll(() => useEngine(engine));

  describe('attach-volume (iSCSI: export, discover, log in, attach) rolls back at every step', () => {
    for (const [k, step] of ATTACH_STEPS.entries()) {
      for (const code of ['OperationFailed', 'ServiceUnavailable'] as const) {
        it(`step ${k + 1} (${step.op}) fails with ${code}: nothing is left on any host and the next attach works`, async () => {
          const f = makeFront();
          f.storage.exportKind = 'iscsi';
          const vol = await availableVolume(f);
          const before = hostState(f);
          f[step.on].failures.set(step.op, fault(code));
          await expect(f.call('AttachVolume', attachArgs(vol))).rejects.toThrow(
            new RegExp(`AttachVolume failed at step ${k + 1} of 4 \\(${step.name.replace('.', '\\.')}\\): injected failure`),
          );
          expect(hostState(f)).toEqual(before);
          expect(f.meta.volume(vol)!.status).toBe('available');
          expect(f.meta.allAttachments()).toEqual([]);
          expect(f.db.prepare('SELECT count(*) AS n FROM leftovers').get()).toEqual({ n: 0 });
          noTransients(f);
          f[step.on].failures.clear();
          await f.call('AttachVolume', attachArgs(vol));
          expect(f.meta.volume(vol)!.status).toBe('in-use');
          expect(hostState(f).sessions).toHaveLength(1);
        });
      }
    }

    it('a file source needs no discovery or login: the VMM host is asked only to attach', async () => {
      const f = makeFront();
      const vol = await availableVolume(f);
      await f.call('AttachVolume', attachArgs(vol));
      expect(f.vmm.calls).toEqual(['AttachDisk']);
    });

    it('file source, VMM attach fails: the export is undone', async () => {
      const f = makeFront();
      const vol = await availableVolume(f);
      f.vmm.failures.set('AttachDisk', fault());
      await expect(f.call('AttachVolume', attachArgs(vol))).rejects.toThrow(/step 4 of 4 \(vmm-delegate.AttachDisk\)/);
      expect(f.storage.exports.size).toBe(0);
      expect(f.vmm.disks.size).toBe(0);
      expect(f.meta.volume(vol)!.status).toBe('available');
      noTransients(f);
    });

    it('an attach whose outcome is unknown is undone too', async () => {
      const f = makeFront();
      const vol = await availableVolume(f);
      f.vmm.failures.set('AttachDisk', fault('ServiceUnavailable'));
      await expect(f.call('AttachVolume', attachArgs(vol))).rejects.toThrow(/step 4 of 4/);
      expect(f.vmm.calls).toEqual(['AttachDisk', 'DetachDisk']);
      expect(f.storage.exports.size).toBe(0);
      noTransients(f);
    });

    it('an undo that fails is kept as a leftover and retried until it works', async () => {
      const f = makeFront();
      const vol = await availableVolume(f);
      f.vmm.failures.set('AttachDisk', fault());
      f.storage.failures.set('UnexportVolume', fault());
      await expect(f.call('AttachVolume', attachArgs(vol))).rejects.toThrow(/step 4 of 4/);
      expect(f.meta.volume(vol)!.status).toBe('available');
      expect(f.db.prepare('SELECT step FROM leftovers').all()).toEqual([{ step: 'volume-delegate.ExportVolume' }]);
      expect(f.storage.exports.size).toBe(1);
      f.storage.failures.clear();
      expect(await f.wf.engine.resume()).toBe(0); // not due yet: it backs off
      expect(await f.wf.engine.resume({ notDueToo: true })).toBe(1);
      expect(f.storage.exports.size).toBe(0);
      expect(f.db.prepare('SELECT count(*) AS n FROM leftovers').get()).toEqual({ n: 0 });
    });

    it('read-only attachments on one host share the session: a failed second attach keeps the first one connected', async () => {
      const f = makeFront();
      f.storage.exportKind = 'iscsi';
      const vol = await availableVolume(f);
      await f.call('AttachVolume', attachArgs(vol, { mode: 'r' }));
      const first = hostState(f);
      f.vmm.failures.set('AttachDisk', fault());
      await expect(f.call('AttachVolume', attachArgs(vol, { vmId: 'vm2', mode: 'r' }))).rejects.toThrow(/step 4 of 4/);
      expect(hostState(f)).toEqual(first);
      expect(f.meta.attachmentsOf([vol])).toHaveLength(1);
      noTransients(f);
    });
  });

  const DETACH_STEPS = [
    { op: 'DetachDisk', on: 'vmm', name: 'vmm-delegate.DetachDisk' },
    { op: 'LogoutTarget', on: 'vmm', name: 'vmm-delegate.LogoutTarget' },
    { op: 'UnexportVolume', on: 'storage', name: 'volume-delegate.UnexportVolume' },
  ] as const;

  describe('detach-volume (iSCSI: detach, log out, unexport) rolls forward', () => {
    async function attached(kind: 'file' | 'iscsi' = 'iscsi') {
      const f = makeFront();
      f.storage.exportKind = kind;
      const vol = await availableVolume(f);
      await f.call('AttachVolume', attachArgs(vol));
      f.storage.calls.length = 0;
      f.vmm.calls.length = 0;
      return { f, vol };
    }
    const detached = { exports: [], nodes: [], sessions: [], disks: [] };

    for (const [why, error] of [
      ['the hypervisor refused it', fault()],
      ['the VMM host could not be reached', unreachable()],
    ] as const) {
      it(`step 1 (DetachDisk) fails because ${why}: nothing changed, the attachment stays attached, nothing is kept to undo`, async () => {
        const { f, vol } = await attached();
        const before = hostState(f);
        f.vmm.failures.set('DetachDisk', error);
        await expect(f.call('DetachVolume', { volumeId: vol })).rejects.toThrow(/DetachVolume failed at step 1 of 3 \(vmm-delegate\.DetachDisk\)/);
        expect(hostState(f)).toEqual(before);
        expect(f.meta.attachmentsOf([vol])[0]!.status).toBe('attached');
        expect(f.vmm.calls).toEqual(['DetachDisk']); // no re-attach was tried or kept
        expect(f.db.prepare('SELECT count(*) AS n FROM leftovers').get()).toEqual({ n: 0 });
        noTransients(f);
        f.vmm.failures.clear();
        await f.call('DetachVolume', { volumeId: vol });
        expect(hostState(f)).toEqual(detached);
      });
    }

    for (const [k, step] of DETACH_STEPS.entries()) {
      it(`step ${k + 1} (${step.op}) has an unknown outcome or fails after the disk went: it stays detaching, the volume cannot be deleted, and VBS finishes it`, async () => {
        const { f, vol } = await attached();
        f[step.on].failures.set(step.op, k === 0 ? fault('ServiceUnavailable') : fault());
        await expect(f.call('DetachVolume', { volumeId: vol })).rejects.toMatchObject({
          code: 'ServiceUnavailable',
          message: expect.stringMatching(new RegExp(`DetachVolume could not finish step ${k + 1} of 3 \\(${step.name.replace('.', '\\.')}\\)`)),
        });
        expect(f.meta.attachmentsOf([vol])[0]!.status).toBe('detaching');
        expect(f.vmm.calls).not.toContain('AttachDisk');
        await expect(f.call('DeleteVolume', { volumeId: vol })).rejects.toMatchObject({ code: 'VolumeInUse' });
        expect(f.storage.objects.has(vol)).toBe(true);
        f[step.on].failures.clear();
        expect(await f.wf.engine.resume({ notDueToo: true })).toBe(1);
        expect(f.meta.attachmentsOf([vol])).toEqual([]);
        expect(f.meta.volume(vol)!.status).toBe('available');
        expect(hostState(f)).toEqual(detached);
        noTransients(f);
        await f.call('DeleteVolume', { volumeId: vol });
        expect(f.meta.volume(vol)).toBeUndefined();
      });
    }

    it('a second detach request finishes a stalled one instead of being refused', async () => {
      const { f, vol } = await attached();
      f.vmm.failures.set('LogoutTarget', fault());
      await expect(f.call('DetachVolume', { volumeId: vol })).rejects.toMatchObject({ code: 'ServiceUnavailable' });
      // Retried while the host still fails: retryable, not IncorrectState ("is detaching").
      await expect(f.call('DetachVolume', { volumeId: vol })).rejects.toMatchObject({ code: 'ServiceUnavailable' });
      f.vmm.failures.clear();
      // The stalled detach runs first, and the retry is answered by it (README: a second request finishes it), never IncorrectState.
      const r = await f.call('DetachVolume', { volumeId: vol });
      expect(r.attachment).toMatchObject({ volumeId: vol, vmId: 'vm1', status: 'detaching' });
      expect(f.meta.attachmentsOf([vol])).toEqual([]);
      expect(hostState(f)).toEqual(detached);
      expect(f.meta.volume(vol)!.status).toBe('available');
    });

    it('file source: unexport fails after the disk went: the disk is not attached again', async () => {
      const { f, vol } = await attached('file');
      f.storage.failures.set('UnexportVolume', fault());
      await expect(f.call('DetachVolume', { volumeId: vol })).rejects.toThrow(/could not finish step 3 of 3 \(volume-delegate.UnexportVolume\)/);
      expect(f.vmm.calls).toEqual(['DetachDisk']);
      expect(f.vmm.disks.size).toBe(0);
      f.storage.failures.clear();
      await f.wf.engine.resume({ notDueToo: true });
      noTransients(f);
    });

    it('detaching one of two read-only attachments on a host keeps the session and the export', async () => {
      const { f, vol } = await attached();
      await f.call('DetachVolume', { volumeId: vol });
      await f.call('AttachVolume', attachArgs(vol, { mode: 'r' }));
      await f.call('AttachVolume', attachArgs(vol, { vmId: 'vm2', mode: 'r' }));
      await f.call('DetachVolume', { volumeId: vol, vmmHost: 'localhost', vmId: 'vm1' });
      expect(hostState(f)).toMatchObject({ exports: [`${vol}@localhost`], sessions: [`iqn.2026-11.org.vbs:${vol}`], disks: ['vm2/xvdb'] });
    });
  });

  describe('create and delete roll back', () => {
    it('create-volume: a delegate refusal leaves no record', async () => {
      const f = makeFront();
      f.storage.failures.set('CreateVolume', new VbsError('InsufficientCapacity', 'full'));
      await expect(f.call('CreateVolume', { size: 5 })).rejects.toMatchObject({ code: 'InsufficientCapacity' });
      expect(f.meta.allVolumes()).toEqual([]);
      noTransients(f);
    });

    it('create-snapshot: a delegate failure leaves no record', async () => {
      const f = makeFront();
      const vol = await availableVolume(f);
      f.storage.failures.set('CreateSnapshot', fault());
      await expect(f.call('CreateSnapshot', { volumeId: vol })).rejects.toThrow(/CreateSnapshot failed at step 1 of 1/);
      expect(f.meta.allSnapshots()).toEqual([]);
    });

    it('delete-volume: a delegate failure puts the volume back as it was', async () => {
      const f = makeFront();
      const vol = await availableVolume(f);
      f.storage.failures.set('DeleteObject', fault());
      await expect(f.call('DeleteVolume', { volumeId: vol })).rejects.toThrow(/DeleteVolume failed at step 2 of 2/);
      expect(f.meta.volume(vol)!.status).toBe('available');
      f.storage.failures.clear();
      await f.call('DeleteVolume', { volumeId: vol });
      expect(f.meta.volume(vol)).toBeUndefined();
      expect(f.storage.objects.has(vol)).toBe(false);
    });
  });
});
