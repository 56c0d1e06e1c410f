import { describe, expect, it } from 'vitest';
import { VbsError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/log.js';
import { DelegatePool } from '../../src/front/delegates.js';
import { CreationMonitor } from '../../src/front/monitor.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { availableVolume, FakeDelegate, makeFront, type Front } from '../workflows/fakes.js';

/**
 * Issue 16 item 1: nothing a user has seen as available/completed is rolled
 * back. The delegate makes the data, and the create call's answer is held
 * (the test releases it with a failure whose outcome is unknown, as a
 * timeout or a cut connection): meanwhile the creation monitor hears "ready".
 */
class HeldAnswer extends FakeDelegate {
  /** The operations whose answer is held. */
  readonly hold = new Set<string>();
  private release: ((err: VbsError) => void) | undefined;

  /** Fails the held create call as a timed-out one would. */
  timeOut(): void {
    this.release?.(new VbsError('ServiceUnavailable', 'VolumeDelegate did not answer in time.'));
  }

  override async call(op: string, i: XmlRecord): Promise<XmlRecord> {
    const r = await super.call(op, i);
    if (!this.hold.has(op)) return r;
    // The data is made (the fake made it); the answer never comes back in time.
    return new Promise((_, reject) => (this.release = reject));
  }
}

function monitorOf(f: Front): CreationMonitor {
  return new CreationMonitor(f.meta, new DelegatePool(new Map([['local', f.storage]]), new Map([['localhost', f.vmm]])), silentLogger, 3_600_000);
}

describe('a create whose data is made while its call is still pending', () => {
  it('volume: stays creating while the workflow runs, and its rollback never showed it available', async () => {
    const storage = new HeldAnswer();
    storage.hold.add('CreateVolume');
    const f = makeFront(':memory:', storage);
    const monitor = monitorOf(f);
    const create = f.call('CreateVolume', { size: 1 }).then(
      () => undefined,
      (err: unknown) => err,
    );
    await storage.reached('CreateVolume');
    const [row] = f.meta.creationsInProgress();
    const id = row!.id;
    expect(storage.objects.get(id)).toBe('ready');

    // Both ways the front learns of a finished copy: the fallback poll and the long-poll's answer.
    await monitor.pollOnce();
    await monitor.apply('local', [{ id, state: 'ready' }]);
    expect(f.meta.volume(id)!.status).toBe('creating');

    storage.timeOut();
    expect(await create).toMatchObject({ code: 'ServiceUnavailable' });
    expect(f.meta.volume(id)).toBeUndefined();
    expect(storage.objects.has(id)).toBe(false);
  });

  it('snapshot: stays pending while the workflow runs, and its rollback never showed it completed', async () => {
    const storage = new HeldAnswer();
    const f = makeFront(':memory:', storage);
    const monitor = monitorOf(f);
    const vol = await availableVolume(f);
    storage.hold.add('CreateSnapshot');
    const create = f.call('CreateSnapshot', { volumeId: vol }).then(
      () => undefined,
      (err: unknown) => err,
    );
    await storage.reached('CreateSnapshot');
    const [row] = f.meta.creationsInProgress();
    const id = row!.id;
    expect(storage.objects.get(id)).toBe('ready');

    await monitor.pollOnce();
    await monitor.apply('local', [{ id, state: 'ready' }]);
    expect(f.meta.snapshot(id)!.status).toBe('pending');

    storage.timeOut();
    expect(await create).toMatchObject({ code: 'ServiceUnavailable' });
    expect(f.meta.snapshot(id)).toBeUndefined();
    expect(storage.objects.has(id)).toBe(false);
  });

  it('a finished copy held back while its create ran is applied as soon as the create ends still copying', async () => {
    const f = makeFront(':memory:');
    const monitor = monitorOf(f);
    // The delegate answers "creating"; the copy finishes before the workflow commits.
    const storage = f.storage as FakeDelegate;
    const original = storage.call.bind(storage);
    let id = '';
    storage.call = async (op, i) => {
      const r = await original(op, i);
      if (op !== 'CreateVolume') return r;
      id = String(i.volumeId);
      await monitor.apply('local', [{ id, state: 'ready' }]);
      return { accepted: true, state: 'creating' };
    };
    await f.call('CreateVolume', { size: 1 });
    expect(f.meta.volume(id)!.status).toBe('creating');
    await monitor.lookAgainAfterCreate('local');
    expect(f.meta.volume(id)!.status).toBe('available');
  });

  it('a record that moved on anyway (shown available, attached) is not taken back by the rollback', async () => {
    const storage = new HeldAnswer();
    storage.hold.add('CreateVolume');
    const f = makeFront(':memory:', storage);
    const create = f.call('CreateVolume', { size: 1 }).then(
      () => undefined,
      (err: unknown) => err,
    );
    await storage.reached('CreateVolume');
    const id = f.meta.creationsInProgress()[0]!.id;
    // What an older front's monitor did, and the attach the issue describes.
    f.meta.setVolumeStatus(id, ['creating'], 'available');
    f.meta.setVolumeStatus(id, ['available'], 'in-use');
    f.meta.insertAttachment({ volume_id: id, vmm_host: 'localhost', vm_id: 'vm1', device: 'xvdb', mode: 'w', status: 'attached' });
    storage.timeOut();
    expect(await create).toMatchObject({ code: 'ServiceUnavailable' });
    expect(f.meta.volume(id)!.status).toBe('in-use');
    expect(storage.objects.get(id)).toBe('ready');
    expect(f.wf.engine.journal.hasPendingWork(id)).toBe(false);
  });
});

/**
 * Issue 16 item 7: a snapshot holds the data of the moment it was taken, or
 * ends in error. A copy its delegate lost (restarted mid-copy: the delegate
 * reports it absent) is not taken again from the volume as it is now; a
 * clone's copy, whose source does not change, is.
 */
describe('a copy lost by a restart of its volume delegate', () => {
  /** A delegate whose copies are still going on when it answers, and forgets them when told to (a restart). */
  class SlowCopies extends FakeDelegate {
    override async call(op: string, i: XmlRecord): Promise<XmlRecord> {
      const r = await super.call(op, i);
      if (op === 'CreateSnapshot') this.objects.set(String(i.snapshotId), 'creating');
      if (op === 'CreateVolume' && i.snapshotId !== undefined) this.objects.set(String(i.volumeId), 'creating');
      if (op === 'CreateSnapshot' || op === 'CreateVolume') return { accepted: true, state: this.objects.get(String(op === 'CreateSnapshot' ? i.snapshotId : i.volumeId)) };
      return r;
    }
    restart(): void {
      for (const [id, state] of this.objects) if (state === 'creating') this.objects.delete(id);
    }
  }

  it('a snapshot ends in error with a clear message, and nothing is copied again', async () => {
    const storage = new SlowCopies();
    const f = makeFront(':memory:', storage);
    const monitor = monitorOf(f);
    const vol = await availableVolume(f);
    const snap = String(((await f.call('CreateSnapshot', { volumeId: vol })).snapshot as XmlRecord).snapshotId);
    expect(f.meta.snapshot(snap)!.status).toBe('pending');
    storage.restart();
    await monitor.pollOnce();
    expect(f.meta.snapshot(snap)).toMatchObject({ status: 'error', status_message: expect.stringMatching(/restarted while copying this snapshot.*point in time.*lost/) });
    expect(storage.calls.filter((c) => c === 'CreateSnapshot')).toHaveLength(1);
    expect(storage.objects.has(snap)).toBe(false);
  });

  it('a clone of a snapshot is started again and completes', async () => {
    const storage = new SlowCopies();
    const f = makeFront(':memory:', storage);
    const monitor = monitorOf(f);
    const vol = await availableVolume(f);
    const snap = String(((await f.call('CreateSnapshot', { volumeId: vol })).snapshot as XmlRecord).snapshotId);
    storage.objects.set(snap, 'ready');
    await monitor.pollOnce();
    expect(f.meta.snapshot(snap)!.status).toBe('completed');
    const clone = String(((await f.call('CreateVolume', { size: 1, snapshotId: snap })).volume as XmlRecord).volumeId);
    expect(f.meta.volume(clone)!.status).toBe('creating');
    storage.restart();
    await monitor.pollOnce();
    expect(storage.calls.filter((c) => c === 'CreateVolume')).toHaveLength(3); // the volume, the clone, the clone again
    storage.objects.set(clone, 'ready');
    await monitor.pollOnce();
    expect(f.meta.volume(clone)!.status).toBe('available');
  });
});
