import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { eventually, ROOT, startVbs, type Vbs } from './harness.js';

/** The whole lifecycle through the CLI, against `vbs up` (real processes, mutual TLS). */
let vbs: Vbs;
beforeAll(async () => {
  vbs = await startVbs();
});
afterAll(async () => {
  await vbs?.stop();
});

async function json<T>(...args: string[]): Promise<T> {
  const r = await vbs.cli('--json', ...args);
  expect(r.stderr.includes('vbs: ') ? r.stderr : '', `vbs ${args.join(' ')}`).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as T;
}

/** The simulated hypervisor's own view of its VMs' disks. */
function simDisks(): { name: string; disks: { dev: string; mode: string; target: string }[] }[] {
  const out = execFileSync(process.execPath, [join(ROOT, 'dist', 'sim', 'hostsim.js'), '--state', join(vbs.dir, 'vmm-sim'), 'vm', 'list'], { encoding: 'utf8' });
  return JSON.parse(out);
}

interface Volume {
  volumeId: string;
  size: number;
  status: string;
  snapshotId?: string;
  comment: string;
  owner: string;
  attachments: { vmId: string; vmmHost: string; mode: string; status: string; device: string }[];
}

describe('the VBS lifecycle through the vbs CLI', () => {
  let vol: Volume;
  let snapId: string;
  let clone: Volume;

  it('creates a blank volume and waits for it', async () => {
    vol = await json<Volume>('create-volume', '2', 'scratch space', '--wait');
    expect(vol).toMatchObject({ size: 2, status: 'available', comment: 'scratch space', owner: 'admin', attachments: [] });
    const file = join(vbs.dir, 'volumes', `${vol.volumeId}.img`);
    expect(readdirSync(join(vbs.dir, 'volumes'))).toContain(`${vol.volumeId}.img`);
    expect(statSync(file).size).toBe(2 * 1024 ** 3);
  });

  it('describes it, alone and among all', async () => {
    const one = await json<Volume[]>('describe-volumes', vol.volumeId);
    expect(one.map((v) => v.volumeId)).toEqual([vol.volumeId]);
    const all = await json<Volume[]>('describe-volumes');
    expect(all.map((v) => v.volumeId)).toContain(vol.volumeId);
  });

  it('snapshots it and creates a larger volume from the snapshot', async () => {
    const snap = await json<{ snapshotId: string; status: string; progress: number; volumeId: string }>('create-snapshot', vol.volumeId, 'first', '--wait');
    expect(snap).toMatchObject({ status: 'completed', progress: 100, volumeId: vol.volumeId });
    snapId = snap.snapshotId;
    clone = await json<Volume>('create-volume', '3', 'from snapshot', snapId, '--wait');
    expect(clone).toMatchObject({ size: 3, status: 'available', snapshotId: snapId });
  });

  it('attaches read-write, refuses a second attachment, detaches', async () => {
    const a = await json<{ status: string; mode: string }>('attach-volume', vol.volumeId, 'localhost', 'vm1', 'xvdb', '--wait');
    expect(a).toMatchObject({ status: 'attached', mode: 'w' });
    expect(simDisks().find((v) => v.name === 'vm1')!.disks).toEqual([expect.objectContaining({ dev: 'xvdb', mode: 'w' })]);
    const again = await vbs.cli('attach-volume', vol.volumeId, 'localhost', 'vm2', 'xvdb', '--mode', 'r');
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/VolumeInUse/);
    const described = await json<Volume[]>('describe-volumes', vol.volumeId);
    expect(described[0]).toMatchObject({ status: 'in-use', attachments: [expect.objectContaining({ vmId: 'vm1', status: 'attached' })] });
    await json('detach-volume', vol.volumeId, '--wait');
    expect(simDisks().find((v) => v.name === 'vm1')!.disks).toEqual([]);
    expect((await json<Volume[]>('describe-volumes', vol.volumeId))[0]!.status).toBe('available');
  });

  it('shares a volume read-only with many VMs; detaching needs to say which', async () => {
    await json('attach-volume', clone.volumeId, 'localhost', 'vm1', 'xvdc', '--mode', 'r');
    await json('attach-volume', clone.volumeId, 'localhost', 'vm2', 'xvdc', '--mode', 'r');
    const rw = await vbs.cli('attach-volume', clone.volumeId, 'localhost', 'vm3', 'xvdc');
    expect(rw.stderr).toMatch(/VolumeInUse/);
    const ambiguous = await vbs.cli('detach-volume', clone.volumeId);
    expect(ambiguous.code).toBe(1);
    expect(ambiguous.stderr).toMatch(/MissingParameter.*2 attachments/);
    await json('detach-volume', clone.volumeId, '--vmm-host', 'localhost', '--vm-id', 'vm1');
    await json('detach-volume', clone.volumeId);
    expect(simDisks().flatMap((v) => v.disks)).toEqual([]);
  });

  it('deletes snapshots and volumes; they are gone', async () => {
    await json('delete-snapshot', snapId, '--wait');
    await json('delete-volume', clone.volumeId, '--wait');
    await json('delete-volume', vol.volumeId, '--wait');
    const gone = await vbs.cli('describe-volumes', vol.volumeId);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/InvalidVolume\.NotFound/);
    expect(readdirSync(join(vbs.dir, 'volumes')).filter((f) => f.endsWith('.img'))).toEqual([]);
  });

  it('prints a readable table by default', async () => {
    const v = await json<Volume>('create-volume', '1', 'table', '--wait');
    const r = await vbs.cli('describe-volumes', v.volumeId);
    expect(r.stdout).toMatch(/ID\s+SIZE/);
    expect(r.stdout).toContain(v.volumeId);
    expect(r.stdout).toContain('available');
  });
});

describe('faults through SOAP', () => {
  const code = async (p: Promise<unknown>) => p.then(() => 'ok', (e: { code?: string }) => e.code);

  it('unknown ids, bad sizes, wrong states, unknown hosts', async () => {
    const c = vbs.soap();
    expect(await code(c.call('DescribeVolumes', { volumeId: ['vol-00000000000000000'] }))).toBe('InvalidVolume.NotFound');
    expect(await code(c.call('DeleteSnapshot', { snapshotId: 'snap-00000000000000000' }))).toBe('InvalidSnapshot.NotFound');
    expect(await code(c.call('CreateVolume', { size: 0 }))).toBe('InvalidParameterValue');
    expect(await code(c.call('CreateVolume', { size: 100000 }))).toBe('InvalidParameterValue');
    // More than this machine's disk has free: refused before anything is written.
    expect(await code(c.call('CreateVolume', { size: 16000 }))).toBe('InsufficientCapacity');
    const r = await c.call('CreateVolume', { size: 1 });
    const id = String((r.volume as XmlRecord).volumeId);
    await eventually(async () => ((await c.call('DescribeVolumes', { volumeId: [id] })).volume as XmlRecord[])[0]!.status === 'available' || undefined);
    expect(await code(c.call('DetachVolume', { volumeId: id }))).toBe('IncorrectState');
    expect(await code(c.call('AttachVolume', { volumeId: id, vmmHost: 'nowhere', vmId: 'vm1', device: 'xvdb' }))).toBe('InvalidHost.NotFound');
    expect(await code(c.call('AttachVolume', { volumeId: id, vmmHost: 'localhost', vmId: 'vm9', device: 'xvdb' }))).toBe('OperationFailed');
    expect(((await c.call('DescribeVolumes', { volumeId: [id] })).volume as XmlRecord[])[0]).toMatchObject({ status: 'available', attachments: [] });
    expect(await code(c.call('DeleteVolume', { volumeId: id }))).toBe('ok');
  });

  it('hostile strings in every field are refused and run no command', async () => {
    const c = vbs.soap();
    const before = JSON.stringify(simDisks()) + readdirSync(join(vbs.dir, 'volumes')).join();
    const hostile = ['vm1; rm -rf /', '$(reboot)', '../../etc/passwd', '`id`', 'a|b', '-rf', 'x'.repeat(10_000)];
    for (const h of hostile) {
      expect(await code(c.call('CreateVolume', { size: 1, snapshotId: h }))).toBe('InvalidParameterValue');
      expect(await code(c.call('DeleteVolume', { volumeId: h }))).toBe('InvalidParameterValue');
      expect(await code(c.call('AttachVolume', { volumeId: 'vol-00000000000000000', vmmHost: h, vmId: 'vm1', device: 'xvdb' }))).toBe('InvalidParameterValue');
      expect(await code(c.call('AttachVolume', { volumeId: 'vol-00000000000000000', vmmHost: 'localhost', vmId: h, device: 'xvdb' }))).toBe('InvalidParameterValue');
      expect(await code(c.call('AttachVolume', { volumeId: 'vol-00000000000000000', vmmHost: 'localhost', vmId: 'vm1', device: h }))).toBe('InvalidParameterValue');
      expect(await code(c.call('AttachVolume', { volumeId: 'vol-00000000000000000', vmmHost: 'localhost', vmId: 'vm1', device: 'xvdb', mode: h }))).toBe('InvalidParameterValue');
      expect(await code(c.call('CreateSnapshot', { volumeId: h }))).toBe('InvalidParameterValue');
    }
    expect(await code(c.call('CreateVolume', { size: 1, comment: 'x'.repeat(300) }))).toBe('InvalidParameterValue');
    expect(JSON.stringify(simDisks()) + readdirSync(join(vbs.dir, 'volumes')).join()).toBe(before);
  });

  it("another user's volumes and snapshots are invisible and untouchable", async () => {
    const admin = vbs.soap();
    const bob = vbs.soap('bob');
    const r = await admin.call('CreateVolume', { size: 1, comment: 'admin only' });
    const id = String((r.volume as XmlRecord).volumeId);
    await eventually(async () => ((await admin.call('DescribeVolumes', { volumeId: [id] })).volume as XmlRecord[])[0]!.status === 'available' || undefined);
    expect(await code(bob.call('DescribeVolumes', { volumeId: [id] }))).toBe('InvalidVolume.NotFound');
    expect(((await bob.call('DescribeVolumes', {})).volume as XmlRecord[]) ?? []).toEqual([]);
    expect(await code(bob.call('DeleteVolume', { volumeId: id }))).toBe('InvalidVolume.NotFound');
    expect(await code(bob.call('AttachVolume', { volumeId: id, vmmHost: 'localhost', vmId: 'vm3', device: 'xvdd' }))).toBe('InvalidVolume.NotFound');
    expect(await code(bob.call('CreateSnapshot', { volumeId: id }))).toBe('InvalidVolume.NotFound');
    const mine = await bob.call('CreateVolume', { size: 1 });
    expect((mine.volume as XmlRecord).owner).toBe('bob');
    expect(((await admin.call('DescribeVolumes', { volumeId: [id] })).volume as XmlRecord[])[0]).toMatchObject({ status: 'available', owner: 'admin' });
  });

  it('the same client token returns the first volume; other parameters are a mismatch', async () => {
    const c = vbs.soap();
    const a = await c.call('CreateVolume', { size: 1, clientToken: 'tok-1' });
    const b = await c.call('CreateVolume', { size: 1, clientToken: 'tok-1' });
    expect((b.volume as XmlRecord).volumeId).toBe((a.volume as XmlRecord).volumeId);
    expect(await code(c.call('CreateVolume', { size: 2, clientToken: 'tok-1' }))).toBe('IdempotentParameterMismatch');
  });
});
