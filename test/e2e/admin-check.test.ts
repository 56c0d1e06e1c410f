import { execFileSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, startVbs, type Vbs } from './harness.js';

/** `vbs admin check` against `vbs up`: real delegates, real files, the simulated hypervisor. */
let vbs: Vbs;
beforeAll(async () => {
  vbs = await startVbs();
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

async function check(...flags: string[]): Promise<{ code: number; clean: boolean; finding: Finding[]; stderr: string }> {
  const r = await vbs.cli('--json', 'admin', 'check', ...flags);
  const out = JSON.parse(r.stdout) as { clean: boolean; finding: Finding[] };
  return { code: r.code, ...out, stderr: r.stderr };
}

async function json<T>(...args: string[]): Promise<T> {
  const r = await vbs.cli('--json', ...args);
  // --wait reports progress on stderr; a fault or failure is a `vbs: ` line.
  expect(r.stderr.includes('vbs: ') ? r.stderr : '', `vbs ${args.join(' ')}`).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as T;
}

const hostsim = (...args: string[]) =>
  execFileSync(process.execPath, [join(ROOT, 'dist', 'sim', 'hostsim.js'), '--state', join(vbs.dir, 'vmm-sim'), ...args], { encoding: 'utf8' });
const volumeFile = (id: string) => join(vbs.dir, 'volumes', `${id}.img`);
const summary = (f: Finding[]) => f.map((x) => `${x.kind} ${x.resource} @${x.location}${x.repaired ? ' repaired' : ''}`);

describe('vbs admin check', () => {
  it('a fresh deployment is clean: exit 0 and a plain-text all-clear', async () => {
    const r = await vbs.cli('admin', 'check');
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toBe('No differences: the metadata matches what every delegate reports.\n');
  });

  it('only administrators may check: another user gets UnauthorizedOperation', async () => {
    await expect(vbs.soap('bob').call('CheckConsistency', {})).rejects.toMatchObject({ code: 'UnauthorizedOperation' });
    await expect(vbs.soap('bob').call('CheckConsistency', { repair: true })).rejects.toMatchObject({ code: 'UnauthorizedOperation' });
  });

  it('a busy deployment is clean, while requests run and after', async () => {
    const base = await json<{ volumeId: string }>('create-volume', '1', 'base', '--wait');
    const shared = await json<{ volumeId: string }>('create-volume', '1', 'shared', '--wait');
    const doomed = await json<{ volumeId: string }>('create-volume', '1', 'doomed', '--wait');
    await json('attach-volume', shared.volumeId, 'localhost', 'vm2', 'xvdc', '--mode', 'r', '--wait');
    const work = Promise.all([
      json('create-volume', '1', 'a', '--wait'),
      json('create-volume', '2', 'b', '--wait'),
      json('create-snapshot', base.volumeId, 'snap', '--wait'),
      json('attach-volume', base.volumeId, 'localhost', 'vm1', 'xvdb', '--wait'),
      json('attach-volume', shared.volumeId, 'localhost', 'vm3', 'xvdc', '--mode', 'r', '--wait').then(() =>
        json('detach-volume', shared.volumeId, '--vmm-host', 'localhost', '--vm-id', 'vm2', '--wait'),
      ),
      json('delete-volume', doomed.volumeId, '--wait'),
    ]);
    // Checks back to back for as long as the requests run (and at least three).
    let finished = false;
    void work.finally(() => (finished = true));
    const during: Awaited<ReturnType<typeof check>>[] = [];
    for (let i = 0; i < 20 && (i < 3 || !finished); i++) during.push(await check());
    await work;
    for (const c of during) expect({ code: c.code, findings: summary(c.finding) }).toEqual({ code: 0, findings: [] });
    expect(await check()).toMatchObject({ code: 0, clean: true, finding: [] });
  });

  it('an orphan file in the volumes folder is reported, never deleted, even with --repair (exit 1)', async () => {
    const orphan = 'vol-00000000000000bad';
    writeFileSync(volumeFile(orphan), Buffer.alloc(4096));
    try {
      const r = await check();
      expect(r.code).toBe(1);
      expect(summary(r.finding)).toEqual([`orphan-object ${orphan} @local`]);
      expect(r.stderr).toMatch(/^vbs: 1 difference .* remains/);
      const repaired = await check('--repair');
      expect(repaired.code).toBe(1);
      expect(summary(repaired.finding)).toEqual([`orphan-object ${orphan} @local`]);
      expect(existsSync(volumeFile(orphan))).toBe(true);
      const table = await vbs.cli('admin', 'check');
      expect(table.code).toBe(1);
      expect(table.stdout).toMatch(new RegExp(`orphan-object\\s+${orphan}\\s+local\\s+no\\s+`));
    } finally {
      rmSync(volumeFile(orphan), { force: true });
    }
    expect((await check()).code).toBe(0);
  });

  it('a volume file removed behind VBS’s back is reported; --repair marks the volume error', async () => {
    const vol = await json<{ volumeId: string }>('create-volume', '1', 'doomed', '--wait');
    rmSync(volumeFile(vol.volumeId));
    const r = await check();
    expect(r.code).toBe(1);
    expect(summary(r.finding)).toEqual([`missing-data ${vol.volumeId} @local`]);
    const repaired = await check('--repair');
    expect(repaired).toMatchObject({ code: 0, clean: true });
    expect(summary(repaired.finding)).toEqual([`missing-data ${vol.volumeId} @local repaired`]);
    const [after] = await json<{ status: string; statusMessage: string }[]>('describe-volumes', vol.volumeId);
    expect(after).toMatchObject({ status: 'error', statusMessage: "its data is missing on volume delegate 'local'" });
    expect((await check()).code).toBe(0);
    await json('delete-volume', vol.volumeId, '--wait');
  });

  it('a VM disk attached behind VBS’s back is an orphan-disk: reported, and left on the VM', async () => {
    const vol = await json<{ volumeId: string }>('create-volume', '1', 'stray', '--wait');
    hostsim('xm', 'block-attach', 'vm1', `file:${volumeFile(vol.volumeId)}`, 'xvdz', 'w');
    try {
      const r = await check('--repair');
      expect(r.code).toBe(1);
      expect(summary(r.finding)).toEqual([`orphan-disk ${vol.volumeId}/vm1 @localhost`]);
      expect(r.finding[0]!.detail).toMatch(/vm1 on 'localhost' has .* as xvdz \(mode w\) but VBS has no attachment for it/);
      const vm1 = (JSON.parse(hostsim('vm', 'list')) as { name: string; disks: { dev: string }[] }[]).find((v) => v.name === 'vm1')!;
      expect(vm1.disks.map((d) => d.dev)).toContain('xvdz');
    } finally {
      hostsim('xm', 'block-detach', 'vm1', 'xvdz');
    }
    expect((await check()).code).toBe(0);
  });
});
