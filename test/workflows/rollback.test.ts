import { describe, expect, it } from 'vitest';
import { VbsError } from '../../src/core/errors.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { availableVolume, makeFront } from './fakes.js';

const attachArgs = (volumeId: string, extra: XmlRecord = {}) => ({ volumeId, vmmHost: 'localhost', vmId: 'vm1', device: 'xvdb', ...extra });
const fault = (code: 'OperationFailed' | 'ServiceUnavailable' = 'OperationFailed') => new VbsError(code, 'injected failure');

function noTransients(f: ReturnType<typeof makeFront>): void {
  expect(f.meta.allVolumes().filter((v) => v.status === 'deleting')).toEqual([]);
  expect(f.meta.allAttachments().filter((a) => a.status !== 'attached')).toEqual([]);
  expect(f.db.prepare(`SELECT count(*) AS n FROM workflows WHERE state = 'running'`).get()).toEqual({ n: 0 });
}

describe('attach-volume rolls back at every step', () => {
  it('step 1 (export) fails: nothing attached, volume available, the next attach works', async () => {
    const f = makeFront();
    const vol = await availableVolume(f);
    f.storage.failures.set('ExportVolume', fault());
    await expect(f.call('AttachVolume', attachArgs(vol))).rejects.toThrow(/AttachVolume failed at step 1 of 2 \(volume-delegate.ExportVolume\): injected failure/);
    expect(f.meta.volume(vol)!.status).toBe('available');
    expect(f.meta.allAttachments()).toEqual([]);
    expect(f.vmm.calls).toEqual([]);
    noTransients(f);
    f.storage.failures.clear();
    await f.call('AttachVolume', attachArgs(vol));
    expect(f.meta.volume(vol)!.status).toBe('in-use');
  });

  it('step 2 (VMM attach) fails: the export is undone', async () => {
    const f = makeFront();
    const vol = await availableVolume(f);
    f.vmm.failures.set('AttachDisk', fault());
    await expect(f.call('AttachVolume', attachArgs(vol))).rejects.toThrow(/step 2 of 2 \(vmm-delegate.AttachDisk\)/);
    expect(f.storage.exports.size).toBe(0);
    expect(f.vmm.disks.size).toBe(0);
    expect(f.meta.volume(vol)!.status).toBe('available');
    noTransients(f);
  });

  it('step 2 times out (outcome unknown): the VMM attach itself is undone too', async () => {
    const f = makeFront();
    const vol = await availableVolume(f);
    f.vmm.failures.set('AttachDisk', fault('ServiceUnavailable'));
    await expect(f.call('AttachVolume', attachArgs(vol))).rejects.toThrow(/step 2 of 2/);
    expect(f.vmm.calls).toEqual(['AttachDisk', 'DetachDisk']);
    expect(f.storage.exports.size).toBe(0);
    noTransients(f);
  });

  it('an undo that fails is kept as a leftover and retried until it works', async () => {
    const f = makeFront();
    const vol = await availableVolume(f);
    f.vmm.failures.set('AttachDisk', fault());
    f.storage.failures.set('UnexportVolume', fault());
    await expect(f.call('AttachVolume', attachArgs(vol))).rejects.toThrow(/step 2 of 2/);
    expect(f.meta.volume(vol)!.status).toBe('available');
    expect(f.db.prepare('SELECT step FROM leftovers').all()).toEqual([{ step: 'volume-delegate.ExportVolume' }]);
    expect(f.storage.exports.size).toBe(1);
    f.storage.failures.clear();
    f.db.prepare(`UPDATE leftovers SET next_attempt_at = '2000-01-01'`).run();
    expect(await f.wf.engine.retryLeftovers()).toBe(1);
    expect(f.storage.exports.size).toBe(0);
    expect(f.db.prepare('SELECT count(*) AS n FROM leftovers').get()).toEqual({ n: 0 });
  });
});

describe('detach-volume rolls back at every step', () => {
  async function attached() {
    const f = makeFront();
    const vol = await availableVolume(f);
    await f.call('AttachVolume', attachArgs(vol));
    f.storage.calls.length = 0;
    f.vmm.calls.length = 0;
    return { f, vol };
  }

  it('step 1 (VMM detach) fails: still attached', async () => {
    const { f, vol } = await attached();
    f.vmm.failures.set('DetachDisk', fault());
    await expect(f.call('DetachVolume', { volumeId: vol })).rejects.toThrow(/DetachVolume failed at step 1 of 2/);
    expect(f.meta.attachmentsOf([vol])[0]!.status).toBe('attached');
    expect(f.vmm.disks.size).toBe(1);
    expect(f.storage.exports.size).toBe(1);
    noTransients(f);
  });

  it('step 2 (unexport) fails: the disk is attached again and the attachment stays', async () => {
    const { f, vol } = await attached();
    f.storage.failures.set('UnexportVolume', fault());
    await expect(f.call('DetachVolume', { volumeId: vol })).rejects.toThrow(/step 2 of 2 \(volume-delegate.UnexportVolume\)/);
    expect(f.vmm.calls).toEqual(['DetachDisk', 'AttachDisk']);
    expect(f.vmm.disks.size).toBe(1);
    expect(f.meta.attachmentsOf([vol])[0]!.status).toBe('attached');
    expect(f.meta.volume(vol)!.status).toBe('in-use');
    noTransients(f);
    f.storage.failures.clear();
    await f.call('DetachVolume', { volumeId: vol });
    expect(f.meta.volume(vol)!.status).toBe('available');
    expect(f.vmm.disks.size).toBe(0);
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
    await expect(f.call('DeleteVolume', { volumeId: vol })).rejects.toThrow(/DeleteVolume failed at step 1 of 1/);
    expect(f.meta.volume(vol)!.status).toBe('available');
    f.storage.failures.clear();
    await f.call('DeleteVolume', { volumeId: vol });
    expect(f.meta.volume(vol)).toBeUndefined();
    expect(f.storage.objects.has(vol)).toBe(false);
  });
});
