import { beforeAll, describe, expect, it } from 'vitest';
import { VbsError } from '../../src/core/errors.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { availableVolume, FakeDelegate, makeFront, unreachable, useEngine } from './fakes.js';
import { ENGINES } from '../setup/engines.js';

const attachArgs = (volumeId: string, extra: XmlRecord = {}) => ({ volumeId, vmmHost: 'localhost', vmId: 'vm1', device: 'xvdz', ...extra });
const leftoverCount = (f: ReturnType<typeof makeFront>) => (f.db.prepare('SELECT count(*) AS n FROM leftovers').get() as { n: number }).n;

/** A delegate whose chosen operation waits until the test lets it go, counting the calls. */
class Gated extends FakeDelegate {
  gate?: { op: string; open: Promise<void> };
  override async call(op: string, i: XmlRecord): Promise<XmlRecord> {
    if (this.gate?.op === op) {
      this.note(`${op}:waiting`);
      await this.gate.open;
    }
    return super.call(op, i);
  }
}

describe.each(ENGINES)('on %s', (engine) => {
  beforeAll(() => useEngine(engine));

  describe('the chaos soak sequence: a deleted volume still attached read-write', () => {
    it('detaches that never reached a restarting VMM delegate change nothing and leave nothing to replay after the delete', async () => {
      const f = makeFront();
      const vol = await availableVolume(f);
      await f.call('AttachVolume', attachArgs(vol));
      // The VMM delegate is down (SIGKILL, restarting): every call is refused at connect.
      f.vmm.failures.set('DetachDisk', unreachable());
      f.vmm.failures.set('AttachDisk', unreachable());
      for (let i = 0; i < 3; i++) {
        await expect(f.call('DetachVolume', { volumeId: vol })).rejects.toMatchObject({ code: 'ServiceUnavailable' });
        expect(f.meta.attachmentsOf([vol]).map((a) => a.status)).toEqual(['attached']);
      }
      expect(leftoverCount(f)).toBe(0);
      // Back: the detach works, the delete removes the data, and nothing runs afterwards to attach it again.
      f.vmm.failures.clear();
      await f.call('DetachVolume', { volumeId: vol });
      await f.call('DeleteVolume', { volumeId: vol });
      await f.wf.engine.resume({ notDueToo: true, parkedToo: true });
      expect(f.vmm.disks.size).toBe(0);
      expect(f.storage.objects.has(vol)).toBe(false);
      expect(f.vmm.calls.filter((c) => c === 'AttachDisk')).toHaveLength(1);
    });
  });

  describe('never delete data a VM holds', () => {
    it('a VM that holds the volume without an attachment stops the delete: VolumeInUse, data kept, status back', async () => {
      const f = makeFront();
      const vol = await availableVolume(f);
      await f.call('AttachVolume', attachArgs(vol));
      await f.call('DetachVolume', { volumeId: vol });
      f.vmm.disks.set('vm2/xvdq', vol); // a stray writer VBS has no attachment for
      await expect(f.call('DeleteVolume', { volumeId: vol })).rejects.toMatchObject({
        code: 'VolumeInUse',
        message: expect.stringMatching(/still held by vm2 on 'localhost' \(as xvdq\)/),
      });
      expect(f.storage.objects.has(vol)).toBe(true);
      expect(f.meta.volume(vol)!.status).toBe('available');
      expect(f.storage.calls).not.toContain('DeleteObject');
    });

    it('a VMM host the volume was attached on that does not answer stops the delete; a volume never attached asks no host', async () => {
      const f = makeFront();
      const never = await availableVolume(f);
      const once = await availableVolume(f);
      await f.call('AttachVolume', attachArgs(once));
      await f.call('DetachVolume', { volumeId: once });
      f.vmm.failures.set('ListDisks', unreachable());
      await expect(f.call('DeleteVolume', { volumeId: once })).rejects.toMatchObject({ code: 'ServiceUnavailable', message: expect.stringMatching(/where the volume was attached before/) });
      expect(f.meta.volume(once)!.status).toBe('available');
      await f.call('DeleteVolume', { volumeId: never });
      expect(f.meta.volume(never)).toBeUndefined();
    });
  });

  describe('one runner per piece of unfinished work', () => {
    it('four callers racing to retry one leftover undo run it once', async () => {
      const storage = new Gated();
      const f = makeFront(':memory:', storage);
      const vol = await availableVolume(f);
      f.vmm.failures.set('AttachDisk', new VbsError('OperationFailed', 'no'));
      storage.failures.set('UnexportVolume', new VbsError('OperationFailed', 'target busy'));
      await expect(f.call('AttachVolume', attachArgs(vol))).rejects.toMatchObject({ code: 'OperationFailed' });
      expect(leftoverCount(f)).toBe(1);
      storage.failures.clear();
      let open!: () => void;
      storage.gate = { op: 'UnexportVolume', open: new Promise<void>((r) => (open = r)) };
      storage.calls.length = 0;
      // The timer, a delegate coming back, a repair and a new request on the volume, all at once.
      const racers = [
        f.wf.engine.resume(),
        f.wf.engine.resume({ notDueToo: true }),
        f.wf.engine.resume({ notDueToo: true, parkedToo: true }),
        f.call('AttachVolume', attachArgs(vol)).catch((e: unknown) => e),
      ];
      await storage.reached('UnexportVolume:waiting');
      open();
      const [, , , attached] = await Promise.all(racers);
      expect(storage.calls.filter((c) => c === 'UnexportVolume')).toHaveLength(1);
      expect(leftoverCount(f)).toBe(0);
      // The new attach ran after the old undo, or was refused while it ran: never before it.
      if (attached instanceof Error) expect(attached).toMatchObject({ code: 'ServiceUnavailable' });
      else expect(storage.calls.indexOf('ExportVolume')).toBeGreaterThan(storage.calls.indexOf('UnexportVolume'));
    });
  });

  describe('retries that end', () => {
    it('a delete that cannot finish is given up on past the limit: the volume is in error saying what is left, and a repair resumes it', async () => {
      const f = makeFront(':memory:', new FakeDelegate(), new FakeDelegate(), { giveUpAfterMs: 0 });
      const vol = await availableVolume(f);
      f.storage.failures.set('DeleteObject', new VbsError('ServiceUnavailable', 'timed out'));
      await expect(f.call('DeleteVolume', { volumeId: vol })).rejects.toMatchObject({ code: 'ServiceUnavailable' });
      const v = f.meta.volume(vol)!;
      expect(v.status).toBe('error');
      expect(v.status_message).toMatch(/DeleteVolume could not finish volume-delegate\.DeleteObject on 'local' since .*: timed out .*vbs admin check --repair/);
      // Given up: the timer and a delegate coming back leave it alone.
      f.storage.failures.clear();
      expect(await f.wf.engine.resume({ notDueToo: true })).toBe(0);
      expect(f.meta.volume(vol)!.status).toBe('error');
      // A repair resumes it: the delete is finished.
      expect(await f.wf.engine.resume({ notDueToo: true, parkedToo: true })).toBe(1);
      expect(f.meta.volume(vol)).toBeUndefined();
      expect(f.storage.objects.has(vol)).toBe(false);
    });

    it('retries back off: each failed attempt waits twice as long, up to the cap', async () => {
      const f = makeFront(':memory:', new FakeDelegate(), new FakeDelegate(), { firstDelayMs: 1_000, maxDelayMs: 4_000 });
      const vol = await availableVolume(f);
      f.storage.failures.set('DeleteObject', new VbsError('ServiceUnavailable', 'timed out'));
      await expect(f.call('DeleteVolume', { volumeId: vol })).rejects.toMatchObject({ code: 'ServiceUnavailable' });
      const waits: number[] = [];
      for (let i = 0; i < 4; i++) {
        const w = f.db.prepare(`SELECT next_attempt_at, updated_at FROM workflows WHERE resource_id = ? AND kind = 'DeleteVolume'`).get(vol) as { next_attempt_at: string; updated_at: string };
        waits.push(Math.round((Date.parse(w.next_attempt_at) - Date.parse(w.updated_at)) / 1000));
        await f.wf.engine.resume({ notDueToo: true });
      }
      expect(waits).toEqual([1, 2, 4, 4]);
    });

    it('an undo given up on puts its volume in error; deleting it retries the undo first', async () => {
      const f = makeFront(':memory:', new FakeDelegate(), new FakeDelegate(), { giveUpAfterMs: 0 });
      const vol = await availableVolume(f);
      f.vmm.failures.set('AttachDisk', new VbsError('OperationFailed', 'no'));
      f.storage.failures.set('UnexportVolume', new VbsError('OperationFailed', 'target busy'));
      await expect(f.call('AttachVolume', attachArgs(vol))).rejects.toMatchObject({ code: 'OperationFailed' });
      await f.wf.engine.resume({ notDueToo: true }); // fails again, past the limit
      expect(f.meta.volume(vol)!.status).toBe('error');
      expect(f.meta.volume(vol)!.status_message).toMatch(/the undo of volume-delegate\.ExportVolume \(AttachVolume\) on 'local'.*target busy/);
      f.storage.failures.clear();
      await f.call('DeleteVolume', { volumeId: vol });
      expect(f.meta.volume(vol)).toBeUndefined();
      expect(f.storage.exports.size).toBe(0);
      expect(leftoverCount(f)).toBe(0);
    });
  });

  describe('faults blame the right side', () => {
    for (const code of ['InvalidParameterValue', 'UnauthorizedOperation', 'AuthFailure', 'MissingParameter'] as const) {
      it(`a delegate's ${code} (about the front's request, not the user's) reaches the user as a server-side OperationFailed naming the step`, async () => {
        const f = makeFront();
        const vol = await availableVolume(f);
        f.storage.failures.set('ExportVolume', new VbsError(code, 'Value for parameter source.path is invalid'));
        const err = (await f.call('AttachVolume', attachArgs(vol)).catch((e: unknown) => e)) as VbsError;
        expect(err).toMatchObject({ code: 'OperationFailed', message: expect.stringMatching(/AttachVolume failed at step 1 of 4 \(volume-delegate\.ExportVolume\)/) });
        expect(err.faultBy).toBe('Server');
      });
    }

    it('a capacity refusal keeps its code: it is true of the user request', async () => {
      const f = makeFront();
      f.storage.failures.set('CreateVolume', new VbsError('InsufficientCapacity', 'full'));
      await expect(f.call('CreateVolume', { size: 5 })).rejects.toMatchObject({ code: 'InsufficientCapacity' });
    });
  });

  describe('a resumed detach or delete never takes "not delivered" for "nothing changed"', () => {
    it('a delete whose first attempt lost its answer is not put back when the retry cannot reach the delegate', async () => {
      const f = makeFront();
      const vol = await availableVolume(f);
      // The delete acts, then its answer is lost: unknown outcome, the workflow stalls.
      const lose = new VbsError('ServiceUnavailable', 'socket hang up');
      const real = f.storage.call.bind(f.storage);
      f.storage.call = async (op, i) => {
        const r = await real(op, i);
        if (op === 'DeleteObject' && lose) throw lose;
        return r;
      };
      await expect(f.call('DeleteVolume', { volumeId: vol })).rejects.toMatchObject({ code: 'ServiceUnavailable' });
      expect(f.storage.objects.has(vol)).toBe(false);
      // The retry cannot even connect: still deleting, never available without its data.
      f.storage.call = async () => {
        throw unreachable();
      };
      await f.wf.engine.resume({ notDueToo: true });
      expect(f.meta.volume(vol)!.status).toBe('deleting');
      f.storage.call = real;
      await f.wf.engine.resume({ notDueToo: true });
      expect(f.meta.volume(vol)).toBeUndefined();
    });
  });
});
