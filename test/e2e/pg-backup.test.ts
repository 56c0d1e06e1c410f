import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresDb } from '../../src/db/postgres.js';
import { freshPostgresUrl } from '../setup/engines.js';
import { eventually, startVbs, type Vbs } from './harness.js';

/**
 * Issue 20: metadata on PostgreSQL survives its host. `vbs up --db
 * postgres://…` (a schema of the run's cluster, test/setup/postgres.ts):
 * `vbs admin backup` through the front (pg_dump) while requests run, and
 * with --data from the deployment's files; `vbs admin restore` refused while
 * the front runs, then on the stopped deployment; `vbs admin check` reports
 * every difference the hosts show, `--repair` adopts what it safely can; and
 * `vbs admin rebuild` on an emptied schema. The URL's password (trust
 * authentication ignores it) appears in no output and no log.
 */
const PASSWORD = 'pg-backup-5ecret-77';
let vbs: Vbs;
let dir: string;
let url: string;

beforeAll(async () => {
  url = freshPostgresUrl().replace('postgres@', `postgres:${PASSWORD}@`);
  vbs = await startVbs(['--db', url]);
  dir = vbs.dir;
}, 90_000);
afterAll(async () => {
  await vbs?.stop();
});

interface Finding {
  kind: string;
  resource: string;
  repaired: boolean;
}
interface VolumeView {
  volumeId: string;
  owner: string;
  size: number;
  status: string;
  attachments?: { vmId: string; status: string }[];
}
const list = <T>(x: unknown): T[] => (x === undefined ? [] : Array.isArray(x) ? (x as T[]) : [x as T]);
const volumes = async (...ids: string[]) => list<VolumeView>((await vbs.soap().call('DescribeVolumes', { volumeId: ids })).volume);
const volumeIs = (id: string, status: string) => eventually(async () => ((await volumes(id))[0]?.status === status ? true : undefined), 60_000);

async function createVolume(size = 1): Promise<string> {
  const id = String(((await vbs.soap().call('CreateVolume', { size })).volume as { volumeId: string }).volumeId);
  await volumeIs(id, 'available');
  return id;
}
async function attach(volumeId: string, vmId: string, device: string): Promise<void> {
  await vbs.soap().call('AttachVolume', { volumeId, vmmHost: 'localhost', vmId, device });
  await volumeIs(volumeId, 'in-use');
}
async function detach(volumeId: string, vmId: string): Promise<void> {
  await vbs.soap().call('DetachVolume', { volumeId, vmmHost: 'localhost', vmId });
  await volumeIs(volumeId, 'available');
}
async function check(...flags: string[]): Promise<{ code: number; finding: Finding[] }> {
  const r = await vbs.cli('--json', 'admin', 'check', ...flags);
  return { code: r.code, finding: (JSON.parse(r.stdout) as { finding: Finding[] }).finding };
}
const summary = (f: Finding[]) => f.map((x) => `${x.kind} ${x.resource}${x.repaired ? ' repaired' : ''}`).sort();

/** Every output a test saw, searched for the password at the end. */
const outputs: string[] = [];
async function cli(...args: string[]) {
  const r = await vbs.cli(...args);
  outputs.push(r.stdout, r.stderr);
  return r;
}

describe('metadata backup and restore on PostgreSQL', { timeout: 300_000 }, () => {
  let kept: string;
  let attached: string;
  const backupFile = () => join(dir, 'backup-1.dump');

  it('a backup through the front, taken while requests run, is a pg_dump of this deployment\'s metadata holding everything done before it', async () => {
    kept = await createVolume(2);
    attached = await createVolume(1);
    await attach(attached, 'vm1', 'xvdb');
    const work = Promise.all([createVolume(), createVolume(), createVolume()]);
    const r = await cli('--json', 'admin', 'backup', backupFile());
    await work;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout) as { volumes: number; attachments: number; schemaVersion: number };
    expect(info.volumes).toBeGreaterThanOrEqual(2);
    expect(info.attachments).toBe(1);
    expect(readFileSync(backupFile()).subarray(0, 5).toString('latin1')).toBe('PGDMP');
    expect(statSync(backupFile()).mode & 0o777).toBe(0o600);

    // From the deployment's files (front.json names the database), the front still running.
    const fromFiles = await cli('--json', 'admin', 'backup', join(dir, 'backup-files.dump'), '--data', dir);
    expect(fromFiles.code).toBe(0);
    expect(JSON.parse(fromFiles.stdout)).toMatchObject({ attachments: 1, schemaVersion: info.schemaVersion });
    const again = await cli('admin', 'backup', backupFile());
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/already exists/);
  });

  let late: string;
  it('a restore is refused while the front runs; on the stopped deployment it puts the backup back, and check reports what the hosts changed since', async () => {
    const running = await cli('admin', 'restore', backupFile(), '--data', dir);
    expect(running.code).not.toBe(0);
    expect(running.stderr).toMatch(/in use by \d+ VBS connections? \(is the deployment running\?\)/);

    // After the backup: a new volume, attached; the attached one detached.
    late = await createVolume(3);
    await attach(late, 'vm2', 'xvdc');
    await detach(attached, 'vm1');
    await vbs.stop(true);
    const r = await cli('admin', 'restore', backupFile(), '--data', dir);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Restored postgres:\/\/.* from .*\nStart the deployment, then run `vbs admin check`/);
    vbs = await startVbs(['--db', url], dir);

    const seen = await check();
    expect(seen.code).toBe(1);
    // The volumes created while the backup ran may or may not be in it: those not are orphans too.
    expect(summary(seen.finding).filter((s) => !/^orphan-object/.test(s) || s.includes(late))).toEqual([`missing-disk ${attached}/vm1`, `orphan-disk ${late}/vm2`, `orphan-object ${late}`].sort());
    expect((await volumes(kept))[0]).toMatchObject({ size: 2, status: 'available' });

    const repaired = await check('--repair');
    expect(repaired.finding.filter((f) => !f.repaired).map((f) => `${f.kind} ${f.resource}`)).toEqual([`missing-disk ${attached}/vm1`]);
    expect((await volumes(late))[0]).toMatchObject({ owner: 'admin', size: 3, status: 'in-use', attachments: [{ vmId: 'vm2', status: 'attached' }] });
    // The operator finishes the detach the backup missed; then nothing differs.
    await detach(attached, 'vm1');
    expect(await check()).toEqual({ code: 0, finding: [] });
  });

  it('rebuild: with the schema emptied, every volume and attachment comes back from the hosts', async () => {
    const before = (await volumes()).map((v) => `${v.volumeId} ${v.owner} ${v.size} ${v.status} ${(v.attachments ?? []).map((a) => a.vmId).join(',')}`).sort();
    await vbs.stop(true);
    const schema = /search_path=(\w+)/.exec(decodeURIComponent(new URL(url).search))![1]!;
    const admin = new PostgresDb(url);
    try {
      admin.exec(`DROP SCHEMA ${schema} CASCADE; CREATE SCHEMA ${schema}`);
    } finally {
      admin.close();
    }
    vbs = await startVbs(['--db', url], dir);
    expect(await volumes()).toEqual([]);
    const r = await cli('--json', 'admin', 'rebuild');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect((await volumes()).map((v) => `${v.volumeId} ${v.owner} ${v.size} ${v.status} ${(v.attachments ?? []).map((a) => a.vmId).join(',')}`).sort()).toEqual(before);
    expect(await check()).toEqual({ code: 0, finding: [] });
  });

  it('the password is in no output and no log of the deployment', () => {
    for (const o of outputs) expect(o).not.toContain(PASSWORD);
    for (const f of readdirSync(dir, { recursive: true, withFileTypes: true })) {
      if (!f.isFile() || !/\.(log|txt)$/.test(f.name)) continue;
      expect(readFileSync(join(f.parentPath, f.name), 'utf8'), f.name).not.toContain(PASSWORD);
    }
  });
});
