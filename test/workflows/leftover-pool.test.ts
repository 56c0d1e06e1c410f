import { describe, expect, it } from 'vitest';
import { VbsError } from '../../src/core/errors.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { availableVolume, FakeDelegate, makeFront, type Front } from './fakes.js';

/** A fake VMM host whose DetachDisk of chosen volumes never answers: one slow host among many. */
class HangingDetachVmm extends FakeDelegate {
  readonly hangFor = new Set<string>();
  override async call(op: string, i: XmlRecord): Promise<XmlRecord> {
    if (op === 'DetachDisk' && this.hangFor.has(String(i.volumeId))) {
      this.note('DetachDisk(hung)');
      return new Promise(() => {});
    }
    return super.call(op, i);
  }
}

const leftoversOf = (f: Front, vol: string) =>
  (f.db.prepare('SELECT step, attempts FROM leftovers WHERE resource_id = ? ORDER BY id').all(vol) as { step: string; attempts: number }[]);

/** An attach whose disk landed but whose answer was lost, and whose DetachDisk undo fails: four leftovers. */
async function attachLeavingLeftovers(f: Front, vmId: string): Promise<string> {
  const vol = await availableVolume(f);
  const attach = f.call('AttachVolume', { volumeId: vol, vmmHost: 'localhost', vmId, device: 'xvdb' });
  await expect(attach).rejects.toThrow(/AttachVolume failed at step 4 of 4/);
  expect(leftoversOf(f, vol).map((l) => l.step)).toEqual(['vmm-delegate.AttachDisk', 'vmm-delegate.LoginTarget', 'vmm-delegate.DiscoverTarget', 'volume-delegate.ExportVolume']);
  return vol;
}

describe('leftover undos', () => {
  it("are retried in their workflow's order: the later ones wait while an earlier one still fails", async () => {
    const f = makeFront();
    f.storage.exportKind = 'iscsi';
    f.vmm.failures.set('AttachDisk', new VbsError('ServiceUnavailable', 'AttachDisk: outcome unknown'));
    f.vmm.failures.set('DetachDisk', new VbsError('ServiceUnavailable', 'DetachDisk: the host could not be looked at'));
    const vol = await attachLeavingLeftovers(f, 'vm1');

    const before = f.vmm.calls.filter((c) => c === 'DetachDisk').length;
    await f.wf.engine.resume({ notDueToo: true });
    // One try of the first undo; the three behind it were not run only to fail the same way.
    expect(f.vmm.calls.filter((c) => c === 'DetachDisk').length - before).toBe(1);
    expect(leftoversOf(f, vol).map((l) => l.attempts)).toEqual([1, 0, 0, 0]);

    f.vmm.failures.delete('DetachDisk');
    await f.wf.engine.resume({ notDueToo: true });
    expect(leftoversOf(f, vol)).toEqual([]);
    expect([...f.vmm.sessions]).toEqual([]);
    expect([...f.storage.exports]).toEqual([]);
  });

  it('of one resource whose host hangs do not hold back the clean-up of the others', async () => {
    const vmm = new HangingDetachVmm();
    const f = makeFront(':memory:', undefined, vmm);
    f.storage.exportKind = 'iscsi';
    vmm.failures.set('AttachDisk', new VbsError('ServiceUnavailable', 'AttachDisk: outcome unknown'));
    vmm.failures.set('DetachDisk', new VbsError('ServiceUnavailable', 'DetachDisk: the host could not be looked at'));
    // The hanging one is kept first, so a runner that took work in order would wait on it before the rest.
    const slow = await attachLeavingLeftovers(f, 'vm1');
    const quick = [await attachLeavingLeftovers(f, 'vm2'), await attachLeavingLeftovers(f, 'vm3')];

    vmm.failures.delete('DetachDisk');
    vmm.hangFor.add(slow);
    void f.wf.engine.resume({ notDueToo: true });
    await vmm.reached('DetachDisk(hung)');
    for (let k = 0; k < 10_000 && quick.some((v) => leftoversOf(f, v).length); k++) await new Promise((r) => setImmediate(r));

    for (const v of quick) expect(leftoversOf(f, v)).toEqual([]);
    expect(leftoversOf(f, slow).length).toBe(4);
    expect([...f.storage.exports]).toEqual([`${slow}@localhost`]);
  });
});
