import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { VbsError } from '../../src/core/errors.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { availableVolume, FakeDelegate, makeFront, useEngine } from './fakes.js';
import { ENGINES } from '../setup/engines.js';

/**
 * A delegate that does the work and then loses the answer (it was killed
 * between the two): the front cannot tell whether the step took effect.
 */
class AnswerLost extends FakeDelegate {
  readonly lose = new Set<string>();
  override async call(op: string, i: XmlRecord): Promise<XmlRecord> {
    const r = await super.call(op, i);
    if (this.lose.has(op)) throw new VbsError('ServiceUnavailable', 'VolumeDelegate could not be reached (socket hang up).');
    return r;
  }
}

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

describe.each(ENGINES)('on %s', (engine) => {
  beforeAll(() => useEngine(engine));

  describe('a delete whose delegate step has an unknown outcome', () => {
    it('is not rolled back (the data may be gone): it stays deleting and is finished when the delegate answers', async () => {
      const storage = new AnswerLost();
      const f = makeFront(':memory:', storage);
      const vol = await availableVolume(f);
      storage.lose.add('DeleteObject');
      await expect(f.call('DeleteVolume', { volumeId: vol })).rejects.toMatchObject({ code: 'ServiceUnavailable', message: expect.stringMatching(/finishes it when the host answers/) });
      expect(storage.objects.has(vol)).toBe(false);
      expect(f.meta.volume(vol)!.status).toBe('deleting');

      // Still unreachable: nothing changes, nothing is lost.
      await f.wf.engine.resume({ notDueToo: true });
      expect(f.meta.volume(vol)!.status).toBe('deleting');

      storage.lose.clear();
      await f.wf.engine.resume({ notDueToo: true });
      expect(f.meta.volume(vol)).toBeUndefined();
    });

    it('found by recovery after a restart is resumed the same way', async () => {
      const d = mkdtempSync(join(tmpdir(), 'vbs-unknown-'));
      dirs.push(d);
      const storage = new AnswerLost();
      const before = makeFront(join(d, 'vbs.db'), storage);
      const vol = await availableVolume(before);
      const snap = String(((await before.call('CreateSnapshot', { volumeId: vol })).snapshot as XmlRecord).snapshotId);
      before.meta.setSnapshotStatus(snap, ['pending'], 'completed', null, 100);
      storage.hangs.add('DeleteObject');
      void before.call('DeleteSnapshot', { snapshotId: snap });
      await storage.reached('DeleteObject');

      before.wf.engine.stop(); // the crash: its runner is gone, so the restarted front takes its work at once
      storage.hangs.clear();
      storage.lose.add('DeleteObject');
      const after = makeFront(join(d, 'vbs.db'), storage);
      await after.wf.engine.recover();
      expect(after.meta.snapshot(snap)!.status).toBe('deleting');
      storage.lose.clear();
      await after.wf.engine.resume({ notDueToo: true });
      expect(after.meta.snapshot(snap)).toBeUndefined();
      expect(storage.objects.has(snap)).toBe(false);
    });

    it('that failed cleanly (the delegate refused) is put back as it was', async () => {
      const storage = new FakeDelegate();
      const f = makeFront(':memory:', storage);
      const vol = await availableVolume(f);
      storage.failures.set('DeleteObject', new VbsError('OperationFailed', 'rm: Permission denied'));
      await expect(f.call('DeleteVolume', { volumeId: vol })).rejects.toMatchObject({ code: 'OperationFailed' });
      expect(f.meta.volume(vol)!.status).toBe('available');
      expect(f.db.prepare(`SELECT count(*) AS n FROM workflows WHERE state = 'running'`).get()).toEqual({ n: 0 });
    });
  });

  describe('an undo left to retry (a leftover)', () => {
    it('is retried before a new operation on the same volume, so it cannot undo that operation afterwards', async () => {
      const vmm = new AnswerLost();
      const f = makeFront(':memory:', new FakeDelegate(), vmm);
      const vol = await availableVolume(f);
      const attach = () => f.call('AttachVolume', { volumeId: vol, vmmHost: 'localhost', vmId: 'vm1', device: 'xvdb' });
      // The disk is attached but the answer is lost, and the VMM host is gone before the undo (detach).
      vmm.lose.add('AttachDisk');
      vmm.failures.set('DetachDisk', new VbsError('ServiceUnavailable', 'VmmDelegate could not be reached.'));
      await expect(attach()).rejects.toMatchObject({ code: 'ServiceUnavailable' });
      // The VM may hold the disk: the attachment stays, detaching, until the undo has seen it gone.
      expect(f.meta.attachmentsOf([vol]).map((a) => a.status)).toEqual(['detaching']);
      expect(vmm.disks.size).toBe(1);

      // Still down: the retry is refused rather than run with a stale undo pending.
      vmm.lose.clear();
      await expect(attach()).rejects.toMatchObject({ code: 'ServiceUnavailable', message: expect.stringMatching(/is not finished \(the undo of vmm-delegate.AttachDisk/) });

      // Back: the pending undo runs first, then the attach; the disk stays attached.
      vmm.failures.clear();
      await attach();
      await f.wf.engine.resume({ notDueToo: true });
      expect(f.meta.attachmentsOf([vol]).map((a) => a.status)).toEqual(['attached']);
      expect([...vmm.disks]).toEqual([['vm1/xvdb', vol]]);
    });
  });
});
