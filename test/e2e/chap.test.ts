import Database from 'better-sqlite3';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chapUserName } from '../../src/core/chap.js';
import { hostInitiatorName } from '../../src/core/initiator-name.js';
import { nodeAuthOf, recordFiles } from '../../src/iscsi/node-record.js';
import { simNodesDir } from '../../src/sim/node-records.js';
import { parseTgtAccounts, parseTgtShow } from '../../src/delegates/volume/iscsi-targets.js';
import { createCa, issueCertificate } from '../../src/pki/certificates.js';
import { VBS_SERVICE } from '../../src/services/vbs.js';
import { VOLUME_DELEGATE_SERVICE } from '../../src/services/volume-delegate.js';
import { SoapClient } from '../../src/soap/client.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { Cluster, LVM_TGT } from './crash/cluster.js';
import { Tools } from './crash/matrix.js';
import { backendOf } from './lvm-iscsi/site.js';

/**
 * Per-export CHAP on a real tgtd (issue 17 item 8), through the real
 * services: the front proposes a secret at attach, the volume delegate binds
 * that host's account to the target, and only the VMM delegate that logs in
 * is given it (the simulated open-iscsi host: vbs-iscsi-node-auth puts it in
 * the target's node record, and the login sends it, through libiscsi). A login needs the
 * admitted initiator name AND the secret; an unexport deletes the account.
 * The secret appears in no log (the delegates log every argv they run, at
 * debug level, which this test turns on), no audit line, no fault.
 */
const HOST = 'localhost';
let cluster: Cluster;
let t: Tools;
const savedLevel = process.env.VBS_LOG_LEVEL;

beforeAll(async () => {
  // Every service logs each host command's argv ('run' lines): the secret must be in none of them.
  process.env.VBS_LOG_LEVEL = 'debug';
  cluster = await Cluster.create(['vm1', 'vm2'], LVM_TGT);
  const frontConfig = join(cluster.dir, 'front.json');
  writeFileSync(frontConfig, JSON.stringify({ ...JSON.parse(readFileSync(frontConfig, 'utf8')), auditLog: 'audit.log' }), { mode: 0o600 });
  await cluster.restart('front');
  t = new Tools(cluster);
}, 120_000);

afterAll(async () => {
  if (savedLevel === undefined) delete process.env.VBS_LOG_LEVEL;
  else process.env.VBS_LOG_LEVEL = savedLevel;
  await cluster?.destroy();
});

const tgtadm = (...args: string[]) => execFileSync('tgtadm', ['-C', String(backendOf(cluster.dir).tgtControlPort!), '--lld', 'iscsi', ...args], { encoding: 'utf8' });
const target = (volumeId: string) => parseTgtShow(tgtadm('--op', 'show', '--mode', 'target')).find((x) => x.iqn.endsWith(`:${volumeId}`));
const accounts = () => parseTgtAccounts(tgtadm('--op', 'show', '--mode', 'account'));

/** Logs in to the volume's LUN from outside VBS (libiscsi), as an initiator name with an optional CHAP account; 0 when admitted. */
function loginAs(volumeId: string, initiator: string, chap?: { user: string; secret: string }): number {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.LIBISCSI_CHAP_USERNAME;
  delete env.LIBISCSI_CHAP_PASSWORD;
  if (chap) Object.assign(env, { LIBISCSI_CHAP_USERNAME: chap.user, LIBISCSI_CHAP_PASSWORD: chap.secret });
  try {
    execFileSync('iscsi-inq', ['-i', initiator, `iscsi://${backendOf(cluster.dir).portal}/iqn.2026-11.org.vbs:${volumeId}/1`], { env, stdio: 'ignore', timeout: 20_000 });
    return 0;
  } catch (err) {
    return (err as { status?: number }).status ?? -1;
  }
}

/** The export the front recorded for the attachment (what the VMM delegate was given). */
function recordedSource(volumeId: string, vmId: string): { chapUser?: string; chapSecret?: string } {
  const db = new Database(join(cluster.dir, 'vbs.db'), { readonly: true });
  try {
    const row = db.prepare('SELECT source FROM attachments WHERE volume_id = ? AND vm_id = ?').get(volumeId, vmId) as { source: string | null } | undefined;
    return row?.source ? (JSON.parse(row.source) as { chapUser?: string; chapSecret?: string }) : {};
  } finally {
    db.close();
  }
}

/** The simulated VMM host's open-iscsi node record files of the volume's target. */
function nodeRecordsOf(volumeId: string): string[] {
  return recordFiles(simNodesDir(join(cluster.dir, 'vmm-sim')), `iqn.2026-11.org.vbs:${volumeId}`, backendOf(cluster.dir).portal);
}

/** The volume delegate, called as the front calls it (its certificate). */
function volumeDelegate(): SoapClient {
  const cfg = JSON.parse(readFileSync(join(cluster.dir, 'volume-delegate.json'), 'utf8')) as { listen: { port: number } };
  const pem = (f: string) => readFileSync(join(cluster.dir, 'pki', f));
  return new SoapClient({ def: VOLUME_DELEGATE_SERVICE, url: `https://127.0.0.1:${cfg.listen.port}/volume-delegate`, tls: { key: pem('front.key'), cert: pem('front.crt'), ca: pem('ca.crt') } });
}

/** Every file under the folder, as text (logs, the audit trail). */
function textsUnder(dir: string): string {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => readFileSync(join(dir, e.name), 'utf8'))
    .join('\n');
}

describe('per-export CHAP on a real tgtd', { timeout: 300_000 }, () => {
  const secrets: string[] = [];

  it('a login needs the admitted initiator name and the export secret; a detach withdraws the account', async () => {
    const vol = await t.availableVolume();
    await t.attach(vol, 'vm1', '/dev/sdb', 'r');
    const source = recordedSource(vol, 'vm1');
    const me = { user: chapUserName(vol, HOST), secret: source.chapSecret! };
    secrets.push(me.secret);
    expect(source.chapUser).toBe(me.user);
    expect(me.secret).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(target(vol)?.accounts).toEqual([me.user]);

    // The simulated open-iscsi host logged in with the account its node record holds (vbs-iscsi-node-auth wrote it there, 0600).
    const records = nodeRecordsOf(vol);
    expect(records.length).toBeGreaterThan(0);
    for (const file of records) {
      expect(nodeAuthOf(readFileSync(file, 'utf8'))).toEqual(me);
      expect(statSync(file).mode & 0o077).toBe(0);
    }

    const admitted = hostInitiatorName(HOST);
    expect(loginAs(vol, admitted, me)).toBe(0);
    // The right initiator name, and no secret or a wrong one: refused by tgtd.
    expect(loginAs(vol, admitted)).not.toBe(0);
    expect(loginAs(vol, admitted, { ...me, secret: `${me.secret.slice(1)}x` })).not.toBe(0);
    // The right secret, from a host the ACL does not name: refused.
    expect(loginAs(vol, hostInitiatorName('intruder'), me)).not.toBe(0);

    // A second VM of the host shares the export, and its secret (the host's session uses it).
    await t.attach(vol, 'vm2', '/dev/sdc', 'r');
    expect(recordedSource(vol, 'vm2').chapSecret).toBe(me.secret);
    // Another volume on the same host has its own account; the host reaches both.
    const vol2 = await t.availableVolume();
    await t.attach(vol2, 'vm1', '/dev/sdd', 'w');
    const other = recordedSource(vol2, 'vm1').chapSecret!;
    secrets.push(other);
    expect(other).not.toBe(me.secret);
    expect(loginAs(vol2, admitted, { user: chapUserName(vol2, HOST), secret: other })).toBe(0);
    expect(loginAs(vol2, admitted, { user: me.user, secret: me.secret })).not.toBe(0);
    await t.detach(vol2, 'vm1');
    await t.detach(vol, 'vm1');
    // The other VM of the host still holds the volume: its account stays.
    expect(target(vol)?.accounts).toEqual([me.user]);
    expect(loginAs(vol, admitted, me)).toBe(0);
    await t.detach(vol, 'vm2');
    await t.waitVolume(vol, 'available');
    expect(target(vol)).toBeUndefined();
    expect(accounts()).not.toContain(me.user);
    expect(loginAs(vol, admitted, me)).not.toBe(0);
    // The host's logout forgot the node record, and the secret with it.
    expect(nodeRecordsOf(vol)).toEqual([]);

    // Where the secret is kept is readable only by the service's user.
    expect(statSync(join(cluster.dir, 'vbs.db')).mode & 0o077).toBe(0);
  });

  it("unexporting one host deletes that host's account while the target stays for another", async () => {
    const vol = await t.availableVolume();
    await t.attach(vol, 'vm1', '/dev/sdd', 'w');
    const mine = { user: chapUserName(vol, HOST), secret: recordedSource(vol, 'vm1').chapSecret! };
    secrets.push(mine.secret);
    const delegate = volumeDelegate();
    try {
      // A second host's export, as the front makes it: its own account and secret.
      const proposed = 'Pr0posedSecretForHost2_abcdefgh';
      secrets.push(proposed);
      const other = (await delegate.call('ExportVolume', { volumeId: vol, vmmHost: 'host2', chapSecret: proposed })).export as XmlRecord;
      expect(other).toMatchObject({ chapUser: chapUserName(vol, 'host2'), chapSecret: proposed, initiator: hostInitiatorName('host2') });
      const theirs = { user: String(other.chapUser), secret: proposed };
      // Exported again with another proposal, the secret in use stays: host2 may be logged in with it.
      expect((await delegate.call('ExportVolume', { volumeId: vol, vmmHost: 'host2', chapSecret: 'AnotherProposal_0123456789' })).export).toMatchObject({ chapSecret: proposed });
      expect(target(vol)?.accounts.sort()).toEqual([mine.user, theirs.user].sort());
      expect(loginAs(vol, hostInitiatorName('host2'), theirs)).toBe(0);

      const r = await delegate.call('UnexportVolume', { volumeId: vol, vmmHost: 'host2' });
      expect(r.fenced).toBe(true);
      expect(accounts()).not.toContain(theirs.user);
      expect(target(vol)?.accounts).toEqual([mine.user]);
      // host2's account no longer admits, even from an initiator name the ACL still holds.
      expect(loginAs(vol, hostInitiatorName(HOST), theirs)).not.toBe(0);
      expect(loginAs(vol, hostInitiatorName(HOST), mine)).toBe(0);

      // A proposed secret that is not one is a client fault that does not repeat it.
      const bad = 'bad,secret=with-separators';
      const fault = await delegate.call('ExportVolume', { volumeId: vol, vmmHost: 'host3', chapSecret: bad }).catch((e: unknown) => e as Error);
      expect(String((fault as Error).message)).toMatch(/chapSecret is invalid/);
      expect(String((fault as Error).message)).not.toContain('secret=with');
    } finally {
      delegate.close();
    }
    await t.detach(vol, 'vm1');
    await t.waitVolume(vol, 'available');
  });

  it('no secret is in any log (every argv the delegates ran is logged there), the audit trail, or the journal shown to anyone', () => {
    expect(secrets.length).toBeGreaterThanOrEqual(3);
    const logs = textsUnder(join(cluster.dir, 'logs'));
    // The argv of every host command is there: the account was made, over stdin.
    expect(logs).toMatch(/"key":"iscsi\.tgt\.account-new"/);
    expect(logs).toMatch(/"key":"vmm\.sim\.iscsi\.login"/);
    expect(logs).toMatch(/"key":"vmm\.sim\.iscsi\.auth"/);
    // And the node records the simulated host keeps hold no secret after the detaches.
    const nodes = simNodesDir(join(cluster.dir, 'vmm-sim'));
    const left = existsSync(nodes) ? readdirSync(nodes, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => readFileSync(join(e.parentPath, e.name), 'utf8')).join('\n') : '';
    const audit = readFileSync(join(cluster.dir, 'audit.log'), 'utf8');
    expect(audit).toMatch(/AttachVolume/);
    for (const secret of secrets) {
      expect(left).not.toContain(secret);
      expect(logs).not.toContain(secret);
      expect(audit).not.toContain(secret);
    }
  });
});

describe("the real front's audit trail", { timeout: 120_000 }, () => {
  it('records a request with a certificate signed by another CA: no caller, the name it claims marked unverified (issue 17 item 5)', async () => {
    const mallory = issueCertificate(createCa('Not the VBS CA'), { commonName: 'mallory', use: 'client' });
    const cfg = JSON.parse(readFileSync(join(cluster.dir, 'front.json'), 'utf8')) as { listen: { port: number } };
    const client = new SoapClient({ def: VBS_SERVICE, url: `https://127.0.0.1:${cfg.listen.port}/vbs`, tls: { key: mallory.keyPem, cert: mallory.certPem, ca: readFileSync(join(cluster.dir, 'pki', 'ca.crt')) } });
    try {
      const err = (await client.call('DescribeVolumes', {}).catch((e: unknown) => e)) as { code?: string };
      expect(err.code).toBe('AuthFailure');
    } finally {
      client.close();
    }
    const lines = readFileSync(join(cluster.dir, 'audit.log'), 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.filter((l) => l.unverifiedCaller === 'mallory')).toEqual([expect.objectContaining({ caller: null, unverifiedCaller: 'mallory', operation: null, result: 'AuthFailure' })]);
  });
});
