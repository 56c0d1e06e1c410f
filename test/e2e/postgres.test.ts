import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../../src/db/database.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { removeCluster, startCluster, startServer, stopServer, type PgCluster } from '../setup/postgres-cluster.js';
import { assignVms, eventually, startVbs, VBS_BIN, type Vbs } from './harness.js';

/**
 * Issue 20: `vbs up --db postgres://...` keeps the metadata in PostgreSQL.
 * Through SOAP: a volume's life on it, its rows read back from PostgreSQL
 * itself. Then PostgreSQL stops mid-run: the front answers ServiceUnavailable
 * and starts no host action; when PostgreSQL returns, the front serves again
 * without a restart. This file stops its database, so it has a cluster of its
 * own (not the run's shared one). The URL carries a password (trust
 * authentication ignores it) that must appear in no log and no output.
 */
const PASSWORD = 'pg-secret-0f3c9a';
let cluster: PgCluster;
let url: string;
let vbs: Vbs;
let pg: Db;

const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: { code?: string }) => e.code ?? String(e));
const volumeFiles = () => readdirSync(join(vbs.dir, 'volumes')).sort();

beforeAll(async () => {
  cluster = await startCluster();
  url = `postgres://postgres:${PASSWORD}@127.0.0.1:${cluster.port}/postgres`;
  vbs = await startVbs(['--db', url]);
  pg = openDatabase(url);
  await assignVms(vbs.soap(), 'alice', 'localhost', ['vm1']);
});

afterAll(async () => {
  pg?.close();
  await vbs?.stop();
  if (cluster) removeCluster(cluster);
});

async function statusOf(id: string, user = 'alice'): Promise<string> {
  return String((((await vbs.soap(user).call('DescribeVolumes', { volumeId: [id] })).volume as XmlRecord[])[0] as XmlRecord).status);
}

async function available(size = 1): Promise<string> {
  const id = String(((await vbs.soap('alice').call('CreateVolume', { size })).volume as XmlRecord).volumeId);
  await eventually(async () => ((await statusOf(id)) === 'available' ? true : undefined));
  return id;
}

describe('vbs up --db postgres://', () => {
  it('a volume is created, attached, detached and deleted, and PostgreSQL holds its records', async () => {
    const c = vbs.soap('alice');
    const id = await available(2);
    expect(pg.prepare('SELECT owner, size_gib, status FROM volumes WHERE volume_id = ?').get(id)).toEqual({ owner: 'alice', size_gib: 2, status: 'available' });
    await c.call('AttachVolume', { volumeId: id, vmmHost: 'localhost', vmId: 'vm1', device: 'xvdb' });
    await eventually(async () => ((await statusOf(id)) === 'in-use' ? true : undefined));
    expect(pg.prepare('SELECT vm_id, status FROM attachments WHERE volume_id = ?').get(id)).toEqual({ vm_id: 'vm1', status: 'attached' });
    await c.call('DetachVolume', { volumeId: id, vmmHost: 'localhost', vmId: 'vm1' });
    await eventually(async () => ((await statusOf(id)) === 'available' ? true : undefined));
    await c.call('DeleteVolume', { volumeId: id });
    await eventually(async () => (pg.prepare('SELECT 1 AS x FROM volumes WHERE volume_id = ?').get(id) === undefined ? true : undefined));
    const journal = pg.prepare(`SELECT kind, state FROM workflows WHERE resource_id = ? ORDER BY id`).all(id) as { kind: string; state: string }[];
    expect(journal.map((w) => w.state)).toEqual(journal.map(() => 'done'));
    expect(journal.length).toBeGreaterThanOrEqual(3);
  });

  it('PostgreSQL stopped: ServiceUnavailable and no host action; back: the front serves again', async () => {
    const c = vbs.soap('alice');
    const kept = await available();
    const files = volumeFiles();
    pg.close();
    stopServer(cluster);
    try {
      expect(await code(c.call('DescribeVolumes', {}))).toBe('ServiceUnavailable');
      expect(await code(c.call('CreateVolume', { size: 1 }))).toBe('ServiceUnavailable');
      expect(await code(c.call('AttachVolume', { volumeId: kept, vmmHost: 'localhost', vmId: 'vm1', device: 'xvdc' }))).toBe('ServiceUnavailable');
      expect(volumeFiles()).toEqual(files);
    } finally {
      startServer(cluster);
    }
    await eventually(async () => ((await code(c.call('DescribeVolumes', {}))) === 'ok' ? true : undefined));
    expect(await statusOf(kept)).toBe('available');
    const again = await available();
    expect(again).not.toBe(kept);
    pg = openDatabase(url);
  });

  it('the password in the URL is in no log', () => {
    const logs = readdirSync(join(vbs.dir, 'logs')).map((f) => readFileSync(join(vbs.dir, 'logs', f), 'utf8'));
    expect(logs.length).toBeGreaterThan(0);
    for (const text of logs) expect(text).not.toContain(PASSWORD);
  });

  it('a --db that is not a postgres:// URL naming a host and a database is refused before anything starts', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vbs-bad-db-'));
    try {
      // A plain name is a SQLite file in the data folder (--fronts shares it); a path or anything else is refused.
      for (const bad of ['mysql://h/vbs', 'postgres://h', `postgres://h/vbs\nx`, '../vbs.db', '/etc/vbs.db', '.hidden']) {
        const r = spawnSync(process.execPath, [VBS_BIN, 'up', '--data', dir, '--port', '0', '--db', bad], { encoding: 'utf8', timeout: 30_000 });
        expect(r.status).toBe(2);
        expect(r.stderr).toMatch(/--db must be a SQLite file name in the data folder .* or a postgres:\/\/ URL/);
      }
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
