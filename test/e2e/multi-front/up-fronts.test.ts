import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VBS_SERVICE } from '../../../src/services/vbs.js';
import { SoapClient } from '../../../src/soap/client.js';
import type { Record as XmlRecord } from '../../../src/soap/xml.js';
import { freshPostgresUrl } from '../../setup/engines.js';
import { seedDeploymentPki } from '../../setup/pki.js';
import { eventually, startVbs, VBS_BIN, type Vbs } from '../harness.js';

const run = promisify(execFile);

/**
 * `vbs up --fronts N` (issue 20): N fronts on one database, all named in
 * client.json, each serving: two on the default SQLite file, and the
 * README's three on one PostgreSQL (a schema of the run's cluster).
 */
let vbs: Vbs;
let fronts: string[];
const clients: SoapClient[] = [];

afterAll(async () => {
  for (const c of clients) c.close();
  await vbs?.stop();
});

function soap(url: string): SoapClient {
  const pki = (f: string) => readFileSync(join(vbs.dir, 'pki', f));
  const c = new SoapClient({ def: VBS_SERVICE, url, tls: { key: pki('admin.key'), cert: pki('admin.crt'), ca: pki('ca.crt') } });
  clients.push(c);
  return c;
}

async function up(...args: string[]): Promise<void> {
  for (const c of clients.splice(0)) c.close();
  await vbs?.stop();
  vbs = await startVbs(args);
  fronts = (JSON.parse(readFileSync(vbs.clientConfig, 'utf8')) as { fronts: string[] }).fronts;
}

const availableThrough = (url: string, vol: string) =>
  eventually(async () => {
    const v = ((await soap(url).call('DescribeVolumes', { volumeId: [vol] })).volume as XmlRecord[])[0];
    return v?.status === 'available' ? true : undefined;
  });

/** The PID of one of `vbs up`'s fronts (`front`, `front-2`, …): its child whose command line names that front's config. */
function frontPid(name: string): number {
  const config = join(vbs.dir, `${name}.json`);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== vbs.process.pid) continue;
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').includes(config)) return Number(entry);
    } catch {
      // a process that ended while we looked
    }
  }
  throw new Error(`no ${name} process under vbs up (PID ${vbs.process.pid})`);
}

describe('vbs up --fronts 2', () => {
  beforeAll(() => up('--fronts', '2'), 90_000);

  it('starts two fronts on one database: client.json names both, the first is the banner\'s, a volume made through one is seen through the other', async () => {
    expect(fronts).toHaveLength(2);
    expect(fronts[0]).toBe(vbs.url);
    expect(new Set(fronts).size).toBe(2);
    const vol = String(((await soap(fronts[1]!).call('CreateVolume', { size: 1, clientToken: 'up-fronts' })).volume as XmlRecord).volumeId);
    await availableThrough(fronts[0]!, vol);
    const r = await vbs.cli('--json', 'describe-volumes', vol);
    expect(r.code).toBe(0);
  });

  it('refuses a number of fronts out of range, and a database URL that is not PostgreSQL\'s', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vbs-up-args-'));
    seedDeploymentPki(dir);
    const up = async (...args: string[]) => {
      try {
        await run(process.execPath, [VBS_BIN, 'up', '--data', dir, '--port', '0', ...args], { timeout: 60_000 });
        return { code: 0, stderr: '' };
      } catch (err) {
        const e = err as { code?: number; stderr?: string };
        return { code: e.code, stderr: e.stderr ?? '' };
      }
    };
    try {
      expect(await up('--fronts', '0')).toMatchObject({ code: 2, stderr: expect.stringContaining('--fronts must be') });
      expect(await up('--fronts', '9')).toMatchObject({ code: 2, stderr: expect.stringContaining('--fronts must be') });
      expect(await up('--fronts', '2x')).toMatchObject({ code: 2 });
      // A URL that is not PostgreSQL's is refused before anything starts, without echoing its password.
      const other = await up('--db', 'mysql://vbs:secret@127.0.0.1/vbs');
      expect(other).toMatchObject({ code: 2, stderr: expect.stringContaining('postgres://') });
      expect(other.stderr).not.toContain('secret');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('vbs up --fronts 3 --db postgres://… (the README\'s example)', () => {
  beforeAll(() => up('--fronts', '3', '--db', freshPostgresUrl()), 90_000);

  it('starts three fronts on one PostgreSQL: client.json names all three, a volume made through one is seen through the other two', async () => {
    expect(fronts).toHaveLength(3);
    expect(fronts[0]).toBe(vbs.url);
    expect(new Set(fronts).size).toBe(3);
    const vol = String(((await soap(fronts[2]!).call('CreateVolume', { size: 1, clientToken: 'up-three' })).volume as XmlRecord).volumeId);
    await Promise.all(fronts.map((f) => availableThrough(f, vol)));
  });

  it('the CLI goes to the next front when the first is killed, and the first serves again once the supervisor restarts it', async () => {
    // The supervisor held still (SIGSTOP) so it does not restart the front at once; then the first front SIGKILLed.
    const supervisor = vbs.process.pid!;
    const first = frontPid('front');
    process.kill(supervisor, 'SIGSTOP');
    let created: { code: number; stdout: string; stderr: string };
    try {
      process.kill(first, 'SIGKILL');
      created = await vbs.cli('--json', 'create-volume', '1', '--wait');
    } finally {
      process.kill(supervisor, 'SIGCONT');
    }
    expect(created.stderr).toContain(`${fronts[0]} did not answer`);
    expect(created.code).toBe(0);
    const vol = (JSON.parse(created.stdout) as { volumeId: string }).volumeId;
    // Restarted on its port, the first front sees the volume the others made.
    await eventually(() => soap(fronts[0]!).call('DescribeVolumes', {}).then(() => true, () => undefined), 60_000);
    expect(frontPid('front')).not.toBe(first);
    await Promise.all(fronts.map((f) => availableThrough(f, vol)));
    const r = await vbs.cli('--json', 'admin', 'check');
    expect(JSON.parse(r.stdout)).toMatchObject({ finding: [] });
  });
});
