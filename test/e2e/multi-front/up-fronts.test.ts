import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VBS_SERVICE } from '../../../src/services/vbs.js';
import { SoapClient } from '../../../src/soap/client.js';
import type { Record as XmlRecord } from '../../../src/soap/xml.js';
import { seedDeploymentPki } from '../../setup/pki.js';
import { eventually, startVbs, VBS_BIN, type Vbs } from '../harness.js';

const run = promisify(execFile);

/** `vbs up --fronts 2` (issue 20): two fronts on one database, both named in client.json, each serving. */
let vbs: Vbs;
let fronts: string[];
const clients: SoapClient[] = [];

beforeAll(async () => {
  vbs = await startVbs(['--fronts', '2']);
  fronts = (JSON.parse(readFileSync(vbs.clientConfig, 'utf8')) as { fronts: string[] }).fronts;
}, 90_000);

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

describe('vbs up --fronts 2', () => {
  it('starts two fronts on one database: client.json names both, the first is the banner\'s, a volume made through one is seen through the other', async () => {
    expect(fronts).toHaveLength(2);
    expect(fronts[0]).toBe(vbs.url);
    expect(new Set(fronts).size).toBe(2);
    const vol = String(((await soap(fronts[1]!).call('CreateVolume', { size: 1, clientToken: 'up-fronts' })).volume as XmlRecord).volumeId);
    await eventually(async () => {
      const v = ((await soap(fronts[0]!).call('DescribeVolumes', { volumeId: [vol] })).volume as XmlRecord[])[0];
      return v?.status === 'available' ? true : undefined;
    });
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
