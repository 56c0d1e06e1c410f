import Database from 'better-sqlite3';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startVbs, type Vbs } from './harness.js';

/**
 * Metadata that survives its host (issue 20), through `vbs up` and the CLI:
 * a backup taken while requests run, a restore on the stopped deployment,
 * `vbs admin check --repair` adopting what the hosts gained since, and
 * `vbs admin rebuild` putting every record back from the hosts alone after
 * the database is deleted. One deployment, restarted on the same folder.
 */
let vbs: Vbs;
let dir: string;
beforeAll(async () => {
  vbs = await startVbs();
  dir = vbs.dir;
});
afterAll(async () => {
  await vbs?.stop();
});

interface Finding {
  kind: string;
  resource: string;
  location: string;
  detail: string;
  repaired: boolean;
}
interface VolumeView {
  volumeId: string;
  owner: string;
  size: number;
  snapshotId?: string;
  status: string;
  createTime: unknown;
  availabilityZone?: string;
  attachments?: { vmmHost: string; vmId: string; device: string; mode: string; status: string }[];
}
interface SnapshotView {
  snapshotId: string;
  owner: string;
  volumeId: string;
  size: number;
  status: string;
  createTime: unknown;
}

/** The admin's SOAP client for the front running now (setup and reads go through SOAP: quicker than a CLI process each). */
const admin = () => vbs.soap();
const list = <T>(x: unknown): T[] => (x === undefined ? [] : Array.isArray(x) ? (x as T[]) : [x as T]);

async function volumes(...ids: string[]): Promise<VolumeView[]> {
  return list<VolumeView>((await admin().call('DescribeVolumes', { volumeId: ids })).volume);
}
async function snapshots(...ids: string[]): Promise<SnapshotView[]> {
  return list<SnapshotView>((await admin().call('DescribeSnapshots', { snapshotId: ids })).snapshot);
}

/** Waits for a volume's status (the workflows finish in the background). */
async function volumeIs(id: string, status: string): Promise<void> {
  await eventually(async () => ((await volumes(id))[0]?.status === status ? true : undefined), 60_000);
}

async function createVolume(size: number, snapshotId?: string, as = admin()): Promise<string> {
  const id = String(((await as.call('CreateVolume', { size, snapshotId })).volume as { volumeId: string }).volumeId);
  await volumeIs(id, 'available');
  return id;
}

async function createSnapshot(volumeId: string): Promise<string> {
  const id = String(((await admin().call('CreateSnapshot', { volumeId })).snapshot as { snapshotId: string }).snapshotId);
  await eventually(async () => ((await snapshots(id))[0]?.status === 'completed' ? true : undefined), 60_000);
  return id;
}

async function attach(volumeId: string, vmId: string, device: string, mode = 'w'): Promise<void> {
  await admin().call('AttachVolume', { volumeId, vmmHost: 'localhost', vmId, device, mode });
  await volumeIs(volumeId, 'in-use');
}

async function detach(volumeId: string, vmId: string): Promise<void> {
  await admin().call('DetachVolume', { volumeId, vmmHost: 'localhost', vmId });
  await eventually(async () => ((await volumes(volumeId))[0]?.attachments ?? []).some((a) => a.vmId === vmId) ? undefined : true, 60_000);
}

async function check(...flags: string[]): Promise<{ code: number; finding: Finding[] }> {
  const r = await vbs.cli('--json', 'admin', 'check', ...flags);
  return { code: r.code, finding: (JSON.parse(r.stdout) as { finding: Finding[] }).finding };
}

const summary = (f: Finding[]) => f.map((x) => `${x.kind} ${x.resource}${x.repaired ? ' repaired' : ''}`).sort();

/** Everything a user can see of volumes and snapshots, as comparable records. */
async function everything(): Promise<{ volumes: unknown[]; snapshots: unknown[] }> {
  return {
    volumes: (await volumes())
      .map((v) => ({
        id: v.volumeId,
        owner: v.owner,
        size: v.size,
        snapshotId: v.snapshotId ?? null,
        status: v.status,
        created: String(v.createTime),
        zone: v.availabilityZone,
        attachments: (v.attachments ?? []).map((a) => `${a.vmmHost}/${a.vmId}/${a.device}/${a.mode}/${a.status}`).sort(),
      }))
      .sort((a, b) => a.id.localeCompare(b.id)),
    snapshots: (await snapshots())
      .map((s) => ({ id: s.snapshotId, owner: s.owner, volumeId: s.volumeId, size: s.size, status: s.status, created: String(s.createTime) }))
      .sort((a, b) => a.id.localeCompare(b.id)),
  };
}

const database = () => join(dir, 'vbs.db');

// Each case drives a few CLI processes and restarts: generous on a loaded machine, each well under a minute on a quiet one.
describe('metadata backup, restore, check after restore, rebuild', { timeout: 300_000 }, () => {
  let base: string;
  let snap: string;
  let clone: string;
  let bobVolume: string;
  const backupFile = () => join(dir, 'backup-1.db');

  it('a backup taken while requests run is a whole, consistent VBS database holding everything done before it', async () => {
    base = await createVolume(1);
    snap = await createSnapshot(base);
    clone = await createVolume(1, snap);
    await attach(base, 'vm1', 'xvdb');
    await attach(clone, 'vm2', 'xvdc', 'r');
    bobVolume = await createVolume(2, undefined, vbs.soap('bob'));
    const before = await everything();

    // Requests and a backup at the same time.
    const work = Promise.all([createVolume(1), createVolume(1), createSnapshot(clone)]);
    const r = await vbs.cli('admin', 'backup', backupFile());
    await work;
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/^Backed up the metadata to .*backup-1\.db: schema version \d+, \d+ volumes, \d+ snapshots?, 2 attachments\.\n$/);

    const db = new Database(backupFile(), { readonly: true });
    try {
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      expect(db.pragma('foreign_key_check')).toEqual([]);
      const ids = new Set(db.prepare('SELECT volume_id FROM volumes UNION ALL SELECT snapshot_id FROM snapshots').pluck().all() as string[]);
      for (const v of before.volumes as { id: string }[]) expect(ids.has(v.id)).toBe(true);
      for (const s of before.snapshots as { id: string }[]) expect(ids.has(s.id)).toBe(true);
      // Every row the backup holds is a whole one: its id was issued, every attachment names a volume it holds.
      expect(db.prepare('SELECT count(*) FROM volumes WHERE volume_id NOT IN (SELECT id FROM ids)').pluck().get()).toBe(0);
      expect(db.prepare('SELECT count(*) FROM attachments WHERE volume_id NOT IN (SELECT volume_id FROM volumes)').pluck().get()).toBe(0);
    } finally {
      db.close();
    }
    expect(readFileSync(backupFile()).subarray(0, 16).toString('latin1')).toBe('SQLite format 3\0');
  });

  it('a backup never overwrites a file, and --data backs up the files of the deployment', async () => {
    const again = await vbs.cli('admin', 'backup', backupFile());
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/already exists/);
    const fromFiles = await vbs.cli('--json', 'admin', 'backup', join(dir, 'backup-files.db'), '--data', dir);
    expect(fromFiles.code).toBe(0);
    expect(JSON.parse(fromFiles.stdout)).toMatchObject({ attachments: 2 });
  });

  it('only administrators may back up or rebuild', async () => {
    await expect(vbs.soap('bob').call('BackupMetadata', {})).rejects.toMatchObject({ code: 'UnauthorizedOperation' });
    await expect(vbs.soap('bob').call('RebuildMetadata', {})).rejects.toMatchObject({ code: 'UnauthorizedOperation' });
  });

  it('a restore is refused while the deployment runs, and for a file that is not a VBS database', async () => {
    const running = await vbs.cli('admin', 'restore', backupFile(), '--data', dir);
    expect(running.code).not.toBe(0);
    expect(running.stderr).toMatch(/in use \(is the deployment running\?\)/);
    const junk = join(dir, 'junk.db');
    writeFileSync(junk, 'not a database');
    const notDb = await vbs.cli('admin', 'restore', junk, '--data', dir);
    expect(notDb.stderr).toMatch(/is not an SQLite database/);
    const other = join(dir, 'other.db');
    new Database(other).exec('CREATE TABLE t (a)').close();
    expect((await vbs.cli('admin', 'restore', other, '--data', dir)).stderr).toMatch(/is not a VBS metadata database/);
  });

  let late: string;
  let lateSnap: string;
  it('after a restore, check reports what changed on the hosts since the backup; --repair adopts the recorded data and the disks VMs hold', async () => {
    // After the backup: a new volume (attached) and its snapshot; the read-only clone detached.
    late = await createVolume(3);
    lateSnap = await createSnapshot(late);
    await attach(late, 'vm3', 'xvdd');
    await detach(clone, 'vm2');
    await vbs.stop(true);
    const r = await vbs.cli('admin', 'restore', backupFile(), '--data', dir);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Restored .*vbs\.db from .*\nStart the deployment, then run `vbs admin check`/);
    vbs = await startVbs([], dir);

    const seen = await check();
    expect(seen.code).toBe(1);
    const expected = [`missing-disk ${clone}/vm2`, `orphan-disk ${late}/vm3`, `orphan-object ${late}`, `orphan-object ${lateSnap}`].sort();
    // The volumes and the snapshot created while the backup ran may or may not be in it: those not are orphans too.
    expect(summary(seen.finding).filter((s) => !/^orphan-object/.test(s) || s.includes(late) || s.includes(lateSnap))).toEqual(expected);
    expect(seen.finding.find((f) => f.resource === late)!.detail).toMatch(/its record names owner 'admin', 3 GiB, made .*: --repair adopts it/);
    expect(seen.finding.find((f) => f.resource === lateSnap)!.detail).toMatch(new RegExp(`copied from ${late}`));

    const repaired = await check('--repair');
    expect(repaired.code).toBe(1);
    // The clone's attachment is still recorded but its disk is gone from vm2: reported, left to the operator.
    expect(repaired.finding.filter((f) => !f.repaired).map((f) => `${f.kind} ${f.resource}`)).toEqual([`missing-disk ${clone}/vm2`]);
    const [lateView] = await volumes(late);
    expect(lateView).toMatchObject({ owner: 'admin', size: 3, status: 'in-use', attachments: [{ vmmHost: 'localhost', vmId: 'vm3', device: 'xvdd', mode: 'w', status: 'attached' }] });
    const [lateSnapView] = await snapshots(lateSnap);
    expect(lateSnapView).toMatchObject({ owner: 'admin', volumeId: late, size: 3, status: 'completed' });

    // The operator finishes the detach the backup missed: the VM no longer has it, so it goes through.
    await detach(clone, 'vm2');
    expect(await check()).toEqual({ code: 0, finding: [] });
  });

  it('rebuild: with the database deleted, every volume, snapshot and attachment comes back from the hosts, and check is clean', async () => {
    const before = await everything();
    expect((before.volumes as { attachments: string[] }[]).flatMap((v) => v.attachments).length).toBe(2);
    await vbs.stop(true);
    for (const f of [database(), `${database()}-wal`, `${database()}-shm`]) rmSync(f, { force: true });
    vbs = await startVbs([], dir);
    expect(await volumes()).toEqual([]);

    const r = await vbs.cli('--json', 'admin', 'rebuild');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rebuilt = JSON.parse(r.stdout) as { clean: boolean; finding: Finding[] };
    expect(rebuilt.clean).toBe(true);
    expect(rebuilt.finding.every((f) => f.repaired)).toBe(true);
    expect(rebuilt.finding.filter((f) => f.kind === 'orphan-disk').length).toBe(2);

    expect(await everything()).toEqual(before);
    const [bobs] = await volumes(bobVolume);
    expect(bobs).toMatchObject({ owner: 'bob', size: 2, status: 'available' });
    expect(await check()).toEqual({ code: 0, finding: [] });

    // The rebuilt records work: the base detaches, its snapshot makes a volume.
    await detach(base, 'vm1');
    const again = await createVolume(1, snap);
    expect((await volumes(again))[0]).toMatchObject({ snapshotId: snap });
  });

  it('rebuild refuses metadata that holds anything: adopting beside it is check --repair', async () => {
    const r = await vbs.cli('admin', 'rebuild');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/IncorrectState: The metadata already holds \d+ volumes and snapshots/);
    expect(existsSync(database())).toBe(true);
  });
});
