import { describe, expect, it } from 'vitest';
import { VbsError } from '../../src/core/errors.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { attach, checkFront, createVolume, kinds, snapshotOf, type CheckFront } from './helpers.js';

const unavailable = () => new VbsError('ServiceUnavailable', 'VolumeDelegate at 127.0.0.1:1 could not be reached (connect ECONNREFUSED).');
const status = (f: CheckFront, id: string) => f.meta.volume(id)?.status;
const ORPHAN = 'vol-0000000000000abcd';

/** A deployment with one of everything, all consistent. */
async function busyButHealthy() {
  const f = checkFront();
  const plain = await createVolume(f);
  const rw = await createVolume(f);
  await attach(f, rw, 'vm1', 'xvdb', 'w');
  const shared = await createVolume(f);
  await attach(f, shared, 'vm1', '/dev/xvdc', 'r');
  await attach(f, shared, 'vm2', 'xvdc', 'r');
  const snap = await snapshotOf(f, plain);
  const copying = await createVolume(f, 'creating');
  f.storage.objects.set(copying, 'creating'); // the delegate is still copying it
  const failed = await createVolume(f, 'creating');
  f.meta.setVolumeStatus(failed, ['creating'], 'error', 'copy failed');
  f.storage.objects.delete(failed); // an error volume may have no data
  return { f, plain, rw, shared, snap, copying, failed };
}

describe('CheckConsistency: no false positives', () => {
  it('an empty deployment is clean', async () => {
    expect(await checkFront().check()).toEqual({ clean: true, finding: [] });
  });

  it('a deployment with volumes, snapshots, shared and exclusive attachments and a copy in progress is clean', async () => {
    const { f } = await busyButHealthy();
    expect(await f.check()).toEqual({ clean: true, finding: [] });
    expect(await f.check(true)).toEqual({ clean: true, finding: [] });
  });

  it('a file back end (untracked exports) is not compared for exports', async () => {
    const { f } = await busyButHealthy();
    f.storage.exportsTracked = false;
    expect(await f.check()).toEqual({ clean: true, finding: [] });
  });

  it('resources a workflow is working on are skipped, whatever they look like', async () => {
    const f = checkFront();
    const vol = await createVolume(f);
    f.vmm.hangs.add('AttachDisk');
    void attach(f, vol); // exported, attaching, disk not there yet: in flight, not a difference
    await new Promise((r) => setImmediate(r));
    expect(f.meta.allAttachments()[0]!.status).toBe('attaching');
    f.storage.objects.delete(vol);
    expect(await f.check()).toEqual({ clean: true, finding: [] });
  });

  it('a difference seen once and gone when looked at again is not reported', async () => {
    const f = checkFront();
    const vol = await createVolume(f, 'creating'); // the delegate finished; the monitor has not polled yet
    f.onSettle = () => f.meta.setVolumeStatus(vol, ['creating'], 'available'); // ...and now it has
    expect(await f.check()).toEqual({ clean: true, finding: [] });
  });

  it('a difference that appears only on the second look is not reported either (next check will)', async () => {
    const f = checkFront();
    const vol = await createVolume(f, 'creating'); // a first-look difference, so there is a second look
    f.onSettle = () => {
      f.meta.setVolumeStatus(vol, ['creating'], 'available');
      f.storage.objects.set(ORPHAN, 'ready');
    };
    expect(await f.check()).toEqual({ clean: true, finding: [] });
    f.onSettle = () => {};
    expect(kinds(await f.check())).toEqual([`orphan-object ${ORPHAN} @local`]);
  });

  it('a delete that finishes while the delegate is being asked is not an orphan', async () => {
    const f = checkFront();
    const vol = await createVolume(f);
    const real = f.storage.call.bind(f.storage);
    f.storage.call = async (op, input) => {
      const out = await real(op, input);
      if (op === 'DescribeObjects' && f.meta.volume(vol)) {
        // The answer still lists the volume; meanwhile the delete removes its data, then its row.
        f.storage.objects.delete(vol);
        f.meta.deleteVolume(vol);
      }
      return out;
    };
    expect(await f.check()).toEqual({ clean: true, finding: [] });
  });
});

describe('CheckConsistency: volume data', () => {
  it('missing-data: an available volume without data is reported, and marked error by --repair', async () => {
    const f = checkFront();
    const vol = await createVolume(f);
    f.storage.objects.delete(vol);
    const r = await f.check();
    expect(r.clean).toBe(false);
    expect(kinds(r)).toEqual([`missing-data ${vol} @local`]);
    expect(status(f, vol)).toBe('available'); // a check without --repair changes nothing
    const fixed = await f.check(true);
    expect(fixed.clean).toBe(true);
    expect(kinds(fixed)).toEqual([`missing-data ${vol} @local repaired`]);
    expect(f.meta.volume(vol)).toMatchObject({ status: 'error', status_message: "its data is missing on volume delegate 'local'" });
    expect(await f.check()).toEqual({ clean: true, finding: [] });
  });

  it('missing-data of an attached volume is reported and left alone', async () => {
    const f = checkFront();
    const vol = await createVolume(f);
    await attach(f, vol);
    f.storage.objects.delete(vol);
    const r = await f.check(true);
    expect(kinds(r)).toEqual([`missing-data ${vol} @local`]);
    expect(r.clean).toBe(false);
    expect(status(f, vol)).toBe('in-use');
    expect(f.vmm.disks.size).toBe(1);
  });

  it('missing-data of a completed snapshot: marked error', async () => {
    const f = checkFront();
    const snap = await snapshotOf(f, await createVolume(f));
    f.storage.objects.delete(snap);
    expect(kinds(await f.check(true))).toEqual([`missing-data ${snap} @local repaired`]);
    expect(f.meta.snapshot(snap)!.status).toBe('error');
  });

  it('orphan-object: data no row owns is reported, never deleted, and the check is not clean', async () => {
    const f = checkFront();
    await createVolume(f);
    f.storage.objects.set(ORPHAN, 'ready');
    f.storage.objects.set('snap-0000000000000abcd', 'ready');
    const r = await f.check(true);
    expect(r.clean).toBe(false);
    expect(kinds(r)).toEqual([`orphan-object snap-0000000000000abcd @local`, `orphan-object ${ORPHAN} @local`]);
    expect(r.finding[0]!.detail).toMatch(/no volume or snapshot owns it; reported only, never deleted/);
    expect(f.storage.objects.get(ORPHAN)).toBe('ready');
    expect(f.storage.calls).not.toContain('DeleteObject');
  });

  it('state-mismatch: creating but ready / error / absent on the delegate; repaired to what the delegate proves', async () => {
    const f = checkFront();
    const ready = await createVolume(f, 'creating');
    const failed = await createVolume(f, 'creating');
    f.storage.objects.set(failed, 'error');
    const lost = await createVolume(f, 'creating');
    f.storage.objects.delete(lost);
    const r = await f.check();
    expect(kinds(r).sort()).toEqual([`state-mismatch ${failed} @local`, `state-mismatch ${lost} @local`, `state-mismatch ${ready} @local`].sort());
    expect(r.finding.find((x) => x.resource === ready)!.detail).toBe(`metadata says creating; volume delegate 'local' reports ready`);
    const fixed = await f.check(true);
    expect(fixed.clean).toBe(true);
    expect([status(f, ready), status(f, failed), status(f, lost)]).toEqual(['available', 'error', 'error']);
  });

  it('state-mismatch: a pending snapshot whose copy is done is completed', async () => {
    const f = checkFront();
    const vol = await createVolume(f);
    const r = await f.call('CreateSnapshot', { volumeId: vol });
    const snap = String((r.snapshot as XmlRecord).snapshotId);
    expect(kinds(await f.check(true))).toEqual([`state-mismatch ${snap} @local repaired`]);
    expect(f.meta.snapshot(snap)).toMatchObject({ status: 'completed', progress: 100 });
  });

  it('state-mismatch: an available volume in error on its delegate is marked error', async () => {
    const f = checkFront();
    const vol = await createVolume(f);
    f.storage.objects.set(vol, 'error');
    expect(kinds(await f.check(true))).toEqual([`state-mismatch ${vol} @local repaired`]);
    expect(status(f, vol)).toBe('error');
  });

  it('state-mismatch: in-use without attachments becomes available only when no VM holds it', async () => {
    const f = checkFront();
    const vol = await createVolume(f);
    f.meta.setVolumeStatus(vol, ['available'], 'in-use');
    f.vmm.disks.set('vm3/xvdq', vol); // a stray writer
    const r = await f.check(true);
    expect(kinds(r)).toEqual([`orphan-disk ${vol}/vm3 @localhost`, `state-mismatch ${vol} @metadata`]);
    expect(status(f, vol)).toBe('in-use');
    f.vmm.disks.clear();
    expect(kinds(await f.check(true))).toEqual([`state-mismatch ${vol} @metadata repaired`]);
    expect(status(f, vol)).toBe('available');
  });

  it('state-mismatch: available with an attachment becomes in-use', async () => {
    const f = checkFront();
    const vol = await createVolume(f);
    await attach(f, vol);
    f.meta.setVolumeStatus(vol, ['in-use'], 'available');
    expect(kinds(await f.check(true))).toEqual([`state-mismatch ${vol} @metadata repaired`]);
    expect(status(f, vol)).toBe('in-use');
  });
});

describe('CheckConsistency: stuck states', () => {
  it('a volume deleting with no delete in flight: back to available while its data is there', async () => {
    const f = checkFront();
    const vol = await createVolume(f);
    f.meta.setVolumeStatus(vol, ['available'], 'deleting');
    expect(kinds(await f.check())).toEqual([`stuck-state ${vol} @local`]);
    expect(kinds(await f.check(true))).toEqual([`stuck-state ${vol} @local repaired`]);
    expect(status(f, vol)).toBe('available');
    expect(f.storage.objects.get(vol)).toBe('ready');
  });

  it('a volume deleting whose data is gone: the delete is finished', async () => {
    const f = checkFront();
    const vol = await createVolume(f);
    f.meta.setVolumeStatus(vol, ['available'], 'deleting');
    f.storage.objects.delete(vol);
    expect(kinds(await f.check(true))).toEqual([`stuck-state ${vol} @local repaired`]);
    expect(f.meta.volume(vol)).toBeUndefined();
  });

  it('a snapshot deleting: completed again while its data is there', async () => {
    const f = checkFront();
    const snap = await snapshotOf(f, await createVolume(f));
    f.meta.setSnapshotStatus(snap, ['completed'], 'deleting');
    expect(kinds(await f.check(true))).toEqual([`stuck-state ${snap} @local repaired`]);
    expect(f.meta.snapshot(snap)!.status).toBe('completed');
  });

  it('an attachment attaching whose disk is on the VM: attached', async () => {
    const f = checkFront();
    const vol = await createVolume(f);
    await attach(f, vol);
    f.meta.setAttachmentStatus(vol, 'localhost', 'vm1', 'attached', 'attaching');
    f.meta.setAttachmentSource(vol, 'localhost', 'vm1', null);
    expect(kinds(await f.check())).toEqual([`stuck-state ${vol}/vm1 @localhost`]);
    expect(kinds(await f.check(true))).toEqual([`stuck-state ${vol}/vm1 @localhost repaired`]);
    expect(f.meta.allAttachments()[0]).toMatchObject({ status: 'attached', source: JSON.stringify({ kind: 'file', path: `/vols/${vol}.img` }) });
    expect(await f.check()).toEqual({ clean: true, finding: [] });
  });

  it('an attachment detaching whose disk is gone: removed, the volume available, its export withdrawn', async () => {
    const f = checkFront();
    const vol = await createVolume(f);
    await attach(f, vol);
    f.meta.setAttachmentStatus(vol, 'localhost', 'vm1', 'attached', 'detaching');
    f.vmm.disks.clear();
    expect(kinds(await f.check(true))).toEqual([`stuck-state ${vol}/vm1 @localhost repaired`]);
    expect(f.meta.allAttachments()).toEqual([]);
    expect(status(f, vol)).toBe('available');
    expect(f.storage.exports.size).toBe(0);
    expect(await f.check()).toEqual({ clean: true, finding: [] });
  });

  it('an iSCSI attachment detaching whose disk is gone: the session is logged out and the target withdrawn', async () => {
    const f = checkFront();
    f.storage.exportKind = 'iscsi';
    const vol = await createVolume(f);
    await attach(f, vol);
    expect(f.vmm.sessions.size).toBe(1);
    f.meta.setAttachmentStatus(vol, 'localhost', 'vm1', 'attached', 'detaching');
    f.vmm.disks.clear();
    expect(kinds(await f.check(true))).toEqual([`stuck-state ${vol}/vm1 @localhost repaired`]);
    expect(f.vmm.sessions.size).toBe(0);
    expect(f.storage.exports.size).toBe(0);
    expect(await f.check()).toEqual({ clean: true, finding: [] });
  });

  it('a stuck attachment whose volume another VM on the host holds keeps the shared export', async () => {
    const f = checkFront();
    const vol = await createVolume(f);
    await attach(f, vol, 'vm1', 'xvdb', 'r');
    await attach(f, vol, 'vm2', 'xvdb', 'r');
    f.meta.setAttachmentStatus(vol, 'localhost', 'vm1', 'attached', 'detaching');
    f.vmm.disks.delete('vm1/xvdb');
    expect(kinds(await f.check(true))).toEqual([`stuck-state ${vol}/vm1 @localhost repaired`]);
    expect(f.meta.allAttachments().map((a) => a.vm_id)).toEqual(['vm2']);
    expect(status(f, vol)).toBe('in-use');
    expect([...f.storage.exports]).toEqual([`${vol}@localhost`]);
    expect(await f.check()).toEqual({ clean: true, finding: [] });
  });

  it('a stuck attachment on a host that does not answer is reported and left', async () => {
    const f = checkFront();
    const vol = await createVolume(f);
    await attach(f, vol);
    f.meta.setAttachmentStatus(vol, 'localhost', 'vm1', 'attached', 'detaching');
    f.vmm.failures.set('ListDisks', unavailable());
    const r = await f.check(true);
    expect(kinds(r)).toEqual([`stuck-state ${vol}/vm1 @localhost`, 'unreachable localhost @localhost']);
    expect(f.meta.allAttachments()[0]!.status).toBe('detaching');
  });
});

describe('CheckConsistency: exports', () => {
  it('orphan-export: an export no attachment needs is withdrawn by --repair', async () => {
    const f = checkFront();
    const vol = await createVolume(f);
    f.storage.exports.add(`${vol}@localhost`);
    expect(kinds(await f.check())).toEqual([`orphan-export ${vol} @local`]);
    expect(kinds(await f.check(true))).toEqual([`orphan-export ${vol} @local repaired`]);
    expect(f.storage.exports.size).toBe(0);
  });

  it('orphan-export used by a VM (a stray disk) is not withdrawn', async () => {
    const f = checkFront();
    const vol = await createVolume(f);
    f.storage.exports.add(`${vol}@localhost`);
    f.vmm.disks.set('vm2/xvdz', vol);
    const r = await f.check(true);
    expect(kinds(r)).toEqual([`orphan-disk ${vol}/vm2 @localhost`, `orphan-export ${vol} @local`]);
    expect(r.finding[1]!.detail).toMatch(/not withdrawn: vm2 on 'localhost' uses it/);
    expect(f.storage.exports.size).toBe(1);
  });

  it('an attach that starts while an orphan export is withdrawn gets its export back', async () => {
    const f = checkFront();
    const vol = await createVolume(f);
    f.storage.exports.add(`${vol}@localhost`);
    const real = f.storage.call.bind(f.storage);
    f.storage.call = async (op, input) => {
      const out = await real(op, input);
      if (op === 'UnexportVolume') {
        // An attach took the volume just before the export went (it exported first, idempotently).
        f.meta.insertAttachment({ volume_id: vol, vmm_host: 'localhost', vm_id: 'vm1', device: 'xvdb', mode: 'w', status: 'attaching' });
      }
      return out;
    };
    const r = await f.check(true);
    expect(kinds(r)).toEqual([`orphan-export ${vol} @local`]);
    expect(r.finding[0]!.detail).toMatch(/not repaired: it changed while the check ran/);
    expect([...f.storage.exports]).toEqual([`${vol}@localhost`]);
  });

  it('missing-export: the export of an attached volume is restored', async () => {
    const f = checkFront();
    const vol = await createVolume(f);
    await attach(f, vol);
    f.storage.exports.clear();
    expect(kinds(await f.check())).toEqual([`missing-export ${vol}/vm1 @local`]);
    expect(kinds(await f.check(true))).toEqual([`missing-export ${vol}/vm1 @local repaired`]);
    expect([...f.storage.exports]).toEqual([`${vol}@localhost`]);
  });
});

describe('CheckConsistency: VM disks', () => {
  it('missing-disk: reported, never re-attached', async () => {
    const f = checkFront();
    const vol = await createVolume(f);
    await attach(f, vol);
    f.vmm.disks.clear();
    const r = await f.check(true);
    expect(kinds(r)).toEqual([`missing-disk ${vol}/vm1 @localhost`]);
    expect(r.clean).toBe(false);
    expect(f.vmm.calls).not.toContain('DetachDisk');
    expect(f.vmm.calls.filter((c) => c === 'AttachDisk')).toHaveLength(1);
  });

  it('orphan-disk: a VBS volume on a VM without an attachment is reported and left attached', async () => {
    const f = checkFront();
    const vol = await createVolume(f);
    f.vmm.disks.set('vm1/xvdz', vol);
    f.storage.objects.set(ORPHAN, 'ready'); // no record, but its data is there: someone's work
    f.vmm.disks.set('vm2/xvdy', ORPHAN);
    const r = await f.check(true);
    expect(kinds(r)).toEqual([`orphan-disk ${ORPHAN}/vm2 @localhost`, `orphan-disk ${vol}/vm1 @localhost`, `orphan-object ${ORPHAN} @local`]);
    expect(r.finding[0]!.detail).toMatch(/nor such a volume, but its data is still there/);
    expect(f.vmm.disks.size).toBe(2);
    expect(f.vmm.calls).not.toContain('DetachDisk');
  });

  it('orphan-disk of a deleted volume whose data is gone (a stray writer): --repair detaches it', async () => {
    const f = checkFront();
    f.vmm.disks.set('vm2/xvdy', ORPHAN);
    const report = await f.check(false);
    expect(kinds(report)).toEqual([`orphan-disk ${ORPHAN}/vm2 @localhost`]);
    expect(report.finding[0]!.detail).toMatch(/the volume and its data are gone/);
    expect(f.vmm.disks.size).toBe(1);
    const r = await f.check(true);
    expect(kinds(r)).toEqual([`orphan-disk ${ORPHAN}/vm2 @localhost repaired`]);
    expect(r.finding[0]!.detail).toMatch(/repaired: detached from vm2/);
    expect(f.vmm.disks.size).toBe(0);
  });

  it('mode-mismatch and device-mismatch are reported', async () => {
    const f = checkFront();
    const a = await createVolume(f);
    await attach(f, a, 'vm1', 'xvdb', 'w');
    f.vmm.diskModes.set('vm1/xvdb', 'r');
    const b = await createVolume(f);
    await attach(f, b, 'vm2', 'xvdc', 'w');
    f.vmm.disks.delete('vm2/xvdc');
    f.vmm.disks.set('vm2/xvdd', b);
    const r = await f.check(true);
    expect(kinds(r)).toEqual([`device-mismatch ${b}/vm2 @localhost`, `mode-mismatch ${a}/vm1 @localhost`]);
    expect(r.clean).toBe(false);
  });
});

describe('CheckConsistency: leftovers and unreachable delegates', () => {
  async function withLeftover() {
    const f = checkFront();
    const vol = await createVolume(f);
    f.vmm.failures.set('AttachDisk', new VbsError('OperationFailed', 'no such VM'));
    f.storage.failures.set('UnexportVolume', unavailable());
    await expect(attach(f, vol)).rejects.toThrow(/AttachDisk/);
    f.vmm.failures.clear();
    return { f, vol };
  }

  it('leftover: an undo not done yet is reported (with the export it left)', async () => {
    const { f, vol } = await withLeftover();
    const r = await f.check();
    expect(kinds(r)).toEqual([`leftover ${vol} @local`, `orphan-export ${vol} @local`]);
    expect(r.finding[0]!.detail).toMatch(/undo of volume-delegate.ExportVolume \(AttachVolume\) is still pending/);
  });

  it('leftover: --repair retries it now; once it works the export is gone too', async () => {
    const { f, vol } = await withLeftover();
    f.storage.failures.clear();
    const r = await f.check(true);
    expect(kinds(r)).toEqual([`leftover ${vol} @local repaired`]);
    expect(r.clean).toBe(true);
    expect(f.storage.exports.size).toBe(0);
    expect(f.db.prepare('SELECT count(*) AS n FROM leftovers').get()).toEqual({ n: 0 });
  });

  it('leftover: a retry that fails again stays reported (and the export is not withdrawn under it)', async () => {
    const { f, vol } = await withLeftover();
    const r = await f.check(true);
    expect(kinds(r)).toEqual([`leftover ${vol} @local`, `orphan-export ${vol} @local`]);
    expect(r.clean).toBe(false);
  });

  it('unreachable: a delegate that fails is reported, its resources are not called missing', async () => {
    const { f } = await busyButHealthy();
    f.storage.failures.set('DescribeObjects', unavailable());
    const r = await f.check(true);
    expect(kinds(r)).toEqual(['unreachable local @local']);
    expect(r.clean).toBe(false);
    expect(r.finding[0]!.detail).toMatch(/^volume delegate 'local' did not answer: DescribeObjects: ServiceUnavailable: /);
  });

  it('unreachable: a delegate that hangs is reported after the call timeout', async () => {
    const f = checkFront({ checkCallTimeoutMs: 20 });
    await createVolume(f);
    f.vmm.hangs.add('ListDisks');
    const r = await f.check();
    expect(kinds(r)).toEqual(['unreachable localhost @localhost']);
    expect(r.finding[0]!.detail).toMatch(/ListDisks: ServiceUnavailable: it did not answer within 20 ms/);
  });

  it('findings never carry internal errors', async () => {
    const f = checkFront();
    f.storage.call = async () => {
      throw new Error('EACCES: /var/lib/secret/path at Object.openSync (node:fs:573:3)');
    };
    const r = await f.check();
    expect(JSON.stringify(r)).not.toMatch(/secret|node:fs|EACCES/);
    expect(kinds(r)).toEqual(['unreachable local @local']);
    expect(r.finding[0]!.detail).toMatch(/the call failed/);
  });
});

describe('CheckConsistency: who may call it', () => {
  it('only callers named in admins; anyone else gets UnauthorizedOperation', async () => {
    const f = checkFront({ admins: ['ops'] });
    await expect(f.call('CheckConsistency', {}, 'admin')).rejects.toMatchObject({ code: 'UnauthorizedOperation' });
    await expect(f.call('CheckConsistency', { repair: true }, 'bob')).rejects.toMatchObject({ code: 'UnauthorizedOperation' });
    expect(await f.call('CheckConsistency', {}, 'ops')).toEqual({ clean: true, finding: [] });
    expect(f.storage.calls).toEqual(['DescribeObjects', 'ListExports']);
  });

  it('the default administrator is admin', async () => {
    const f = checkFront();
    await expect(f.call('CheckConsistency', {}, 'alice')).rejects.toMatchObject({ code: 'UnauthorizedOperation' });
    expect((await f.call('CheckConsistency', {}, 'admin')).clean).toBe(true);
  });
});
