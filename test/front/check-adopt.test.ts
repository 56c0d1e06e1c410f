import { describe, expect, it } from 'vitest';
import { currentGeneration } from '../../src/db/generations.js';
import { checkFront, createVolume, kinds, type CheckFront } from './helpers.js';

/**
 * Adoption (issue 20): data the metadata never issued an id for, whose volume
 * delegate recorded its owner and size beside it, comes back as rows; the
 * disks VMs hold of such volumes come back as attachments. Through the
 * front's CheckConsistency and RebuildMetadata over fake delegates.
 */
const VOL = (n: number) => `vol-${n.toString(16).padStart(17, '0')}`;
const SNAP = (n: number) => `snap-${n.toString(16).padStart(17, '0')}`;
const CREATED = '2026-12-01T08:00:00.000Z';

function stored(f: CheckFront, id: string, record: Record<string, unknown> | undefined): void {
  f.storage.objects.set(id, 'ready');
  if (record) f.storage.records.set(id, { owner: 'alice', createdAt: CREATED, ...record });
}

function disk(f: CheckFront, volumeId: string, vmId: string, device: string, mode: 'r' | 'w'): void {
  f.vmm.disks.set(`${vmId}/${device}`, volumeId);
  f.vmm.diskModes.set(`${vmId}/${device}`, mode);
}

describe('check --repair adopts recorded data', () => {
  it('a recorded snapshot and the volume made from it come back with owner, size, lineage and time; the check is clean after', async () => {
    const f = checkFront();
    stored(f, SNAP(1), { sizeGiB: 4, volumeId: VOL(9) });
    stored(f, VOL(2), { sizeGiB: 6, snapshotId: SNAP(1), zone: 'vbs-1a', owner: 'bob' });
    const seen = await f.check();
    expect(kinds(seen)).toEqual([`orphan-object ${SNAP(1)} @local`, `orphan-object ${VOL(2)} @local`]);
    expect(seen.finding[1]!.detail).toMatch(/its record names owner 'bob', 6 GiB, created from snap-0+1, made 2026-12-01T08:00:00.000Z: --repair adopts it; never deleted/);
    expect(f.meta.volume(VOL(2))).toBeUndefined();

    const fixed = await f.check(true);
    expect(fixed.clean).toBe(true);
    expect(kinds(fixed)).toEqual([`orphan-object ${SNAP(1)} @local repaired`, `orphan-object ${VOL(2)} @local repaired`]);
    expect(f.meta.snapshot(SNAP(1))).toMatchObject({ owner: 'alice', size_gib: 4, volume_id: VOL(9), status: 'completed', progress: 100, delegate: 'local', create_time: CREATED });
    expect(f.meta.volume(VOL(2))).toMatchObject({ owner: 'bob', size_gib: 6, snapshot_id: SNAP(1), status: 'available', delegate: 'local', create_time: CREATED, availability_zone: 'vbs-1a' });
    // Above any generation a delegate saw: the next call on them is not refused as stale.
    expect(currentGeneration(f.db, VOL(2))).toBeGreaterThan(1_000_000_000_000);
    expect(await f.check()).toEqual({ clean: true, finding: [] });
  });

  it('is not adopted: data without a record, a record without an owner or size, an id the metadata issued and deleted', async () => {
    const f = checkFront();
    const deleted = await createVolume(f);
    f.meta.deleteVolume(deleted); // its id stays issued
    stored(f, deleted, { sizeGiB: 1 });
    stored(f, VOL(3), undefined);
    stored(f, VOL(4), { owner: '../root', sizeGiB: 1 });
    f.storage.objects.set(VOL(5), 'creating');
    f.storage.records.set(VOL(5), { owner: 'alice', sizeGiB: 1, createdAt: CREATED });
    const r = await f.check(true);
    expect(r.clean).toBe(false);
    expect(kinds(r)).toEqual([`orphan-object ${deleted} @local`, `orphan-object ${VOL(3)} @local`, `orphan-object ${VOL(4)} @local`, `orphan-object ${VOL(5)} @local`].sort());
    expect(r.finding.find((x) => x.resource === deleted)!.detail).toMatch(/issued its id and deleted it since: not adopted/);
    for (const id of [deleted, VOL(3), VOL(4), VOL(5)]) expect(f.meta.volume(id)).toBeUndefined();
    expect(f.storage.calls).not.toContain('DeleteObject');
  });

  it("the disks VMs hold of an adopted volume become its attachments, within the rules: one read-write holder; a known volume's stray disk stays reported", async () => {
    const f = checkFront();
    stored(f, VOL(6), { sizeGiB: 1 });
    disk(f, VOL(6), 'vm1', 'xvdb', 'w');
    disk(f, VOL(6), 'vm2', 'xvdb', 'w'); // a second writer: cannot be recorded beside the first
    const known = await createVolume(f);
    disk(f, known, 'vm3', 'xvdc', 'w');
    const r = await f.check(true);
    expect(kinds(r)).toEqual(
      [`orphan-object ${VOL(6)} @local repaired`, `orphan-disk ${VOL(6)}/vm1 @localhost repaired`, `orphan-disk ${VOL(6)}/vm2 @localhost`, `orphan-disk ${known}/vm3 @localhost`].sort(),
    );
    expect(r.finding.find((x) => x.resource === `${VOL(6)}/vm2`)!.detail).toMatch(/not repaired: the volume has another attachment a read-write one cannot share/);
    expect(f.meta.volume(VOL(6))!.status).toBe('in-use');
    expect(f.meta.allAttachments().map((a) => `${a.volume_id}/${a.vm_id}/${a.device}/${a.mode}/${a.status}`)).toEqual([`${VOL(6)}/vm1/xvdb/w/attached`]);
    expect(f.meta.volume(known)!.status).toBe('available');
    expect(f.vmm.calls).not.toContain('DetachDisk');
  });
});

describe('RebuildMetadata', () => {
  it('on empty metadata adopts everything recorded and every disk of it; refused once the metadata holds anything', async () => {
    const f = checkFront();
    stored(f, VOL(7), { sizeGiB: 2 });
    stored(f, SNAP(7), { sizeGiB: 2, volumeId: VOL(7) });
    disk(f, VOL(7), 'vm1', 'xvdb', 'r');
    disk(f, VOL(7), 'vm2', 'xvdb', 'r');
    const r = await f.call('RebuildMetadata', {});
    expect(r.clean).toBe(true);
    expect(f.meta.allAttachments().map((a) => `${a.vm_id}/${a.mode}`).sort()).toEqual(['vm1/r', 'vm2/r']);
    expect(f.meta.snapshot(SNAP(7))).toMatchObject({ volume_id: VOL(7), size_gib: 2 });
    await expect(f.call('RebuildMetadata', {})).rejects.toMatchObject({ code: 'IncorrectState' });
    await expect(f.call('RebuildMetadata', {}, 'bob')).rejects.toMatchObject({ code: 'UnauthorizedOperation' });
    expect(await f.check()).toEqual({ clean: true, finding: [] });
    // The adopted volume works like any: it detaches through VBS.
    await f.call('DetachVolume', { volumeId: VOL(7), vmmHost: 'localhost', vmId: 'vm1' });
    expect(f.meta.allAttachments().map((a) => a.vm_id)).toEqual(['vm2']);
  });
});
