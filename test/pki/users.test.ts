import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registrableUserName as userName } from '../../src/core/validate.js';
import { ensureDeploymentPki } from '../../src/deploy/all-in-one.js';
import { certificateFacts, createCa, isAdminCertificate, isServiceCertificate } from '../../src/pki/certificates.js';
import { buildCrl, crlEntries, revokedSerials } from '../../src/pki/crl.js';
import { UserExists, UserRegistry, userStatus } from '../../src/pki/users.js';
import { FakeFront, fakeRuntime, run } from '../cli/fakes.js';
import { opensslIssue } from './openssl.js';

/**
 * `vbs admin user` on a data folder, offline: through the CLI (runCli with
 * a captured output) and the registry, checked with the real openssl.
 */
const root = mkdtempSync(join(tmpdir(), 'vbs-users-'));
const data = join(root, 'data');
const URL_ = 'https://127.0.0.1:8443/vbs';
afterAll(() => rmSync(root, { recursive: true, force: true }));

beforeAll(() => {
  ensureDeploymentPki(data);
});

async function vbs(...args: string[]) {
  const runtime = fakeRuntime(new FakeFront(), { cwd: root });
  const code = await run(runtime, ...args);
  return { code, stdout: runtime.stdout.text, stderr: runtime.stderr.text };
}
const add = (name: string, ...more: string[]) => vbs('admin', 'user', 'add', name, '--data', data, '--url', URL_, ...more);
const openssl = (...args: string[]) => execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const verify = (cert: string, withCrl = true) => {
  try {
    return openssl('verify', '-CAfile', join(data, 'pki', 'ca.crt'), ...(withCrl ? ['-crl_check', '-CRLfile', join(data, 'pki', 'ca.crl')] : []), cert);
  } catch (err) {
    return String((err as { stdout?: string }).stdout) + String((err as { stderr?: string }).stderr);
  }
};
const mode = (f: string) => statSync(f).mode & 0o777;
const codeOf = (fn: () => unknown) => {
  try {
    fn();
    return 'accepted';
  } catch (err) {
    return (err as { code?: string }).code;
  }
};

describe('user names', () => {
  it('accepts plain ids and refuses what a subject or a file name would read, reserved names and overlong ones', () => {
    for (const ok of ['alice', 'Bob', 'a.b-c_d@example.org', 'x9', 'a'.repeat(64)]) expect(codeOf(() => userName(ok)), ok).toBe('accepted');
    expect(codeOf(() => userName(''))).toBe('MissingParameter');
    for (const bad of ['a/b', 'a,b', 'a=b', 'a+b', 'a"b', 'a b', ' a', '-a', '.a', 'a\nb', 'a\tb', 'a\u0000b', 'a\u007fb', 'é', 'a'.repeat(65), 'vbs-front', 'VBS-anything', 'admin', 'Admin', '../x']) {
      expect(codeOf(() => userName(bad)), JSON.stringify(bad)).toBe('InvalidParameterValue');
    }
  });

  it('the CLI refuses a bad name with a usage error and writes nothing', async () => {
    const out = join(root, 'bad');
    const r = await add('a,b=c', '--out', out);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/InvalidParameterValue/);
    expect(existsSync(out)).toBe(false);
  });
});

describe('vbs admin user add', () => {
  const out = join(root, 'alice');

  it("writes the user's key (0600), certificate, CA, a PKCS#12 bundle with a 0600 password and client.json", async () => {
    const r = await add('alice', '--out', out);
    expect(r.code, r.stderr).toBe(0);
    expect(mode(join(out, 'alice.key'))).toBe(0o600);
    expect(mode(join(out, 'alice.p12'))).toBe(0o600);
    expect(mode(join(out, 'alice.p12.password'))).toBe(0o600);
    const password = readFileSync(join(out, 'alice.p12.password'), 'utf8').trim();
    expect(password.length).toBeGreaterThanOrEqual(16);
    expect(r.stdout + r.stderr).not.toContain(password);
    expect(readFileSync(join(out, 'ca.crt'), 'utf8')).toBe(readFileSync(join(data, 'pki', 'ca.crt'), 'utf8'));
    expect(verify(join(out, 'alice.crt'))).toContain(': OK');
    expect(openssl('x509', '-in', join(out, 'alice.crt'), '-noout', '-subject')).toMatch(/CN = alice/);
    const cert = readFileSync(join(out, 'alice.crt'), 'utf8');
    expect(isAdminCertificate(cert)).toBe(false);
    expect(isServiceCertificate(cert)).toBe(false);
    // The bundle opens with the password and holds the key, the certificate and the CA.
    const p12 = openssl('pkcs12', '-in', join(out, 'alice.p12'), '-passin', `file:${join(out, 'alice.p12.password')}`, '-nodes');
    expect(p12.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    expect(p12).toContain('BEGIN PRIVATE KEY');
    expect(JSON.parse(readFileSync(join(out, 'client.json'), 'utf8'))).toEqual({ url: URL_, key: 'alice.key', cert: 'alice.crt', ca: 'ca.crt' });
  });

  it('refuses a name that exists (in any case), and never overwrites files in --out', async () => {
    const again = await add('alice', '--out', join(root, 'alice2'));
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/user alice already exists/);
    expect((await add('ALICE', '--out', join(root, 'alice3'))).stderr).toMatch(/user alice already exists/);
    const before = readFileSync(join(out, 'alice.key'), 'utf8');
    const clobber = await add('alice', '--out', out);
    expect(clobber.code).toBe(2);
    expect(clobber.stderr).toMatch(/already exist/);
    expect(readFileSync(join(out, 'alice.key'), 'utf8')).toBe(before);
    expect(new UserRegistry(data).get('alice').certificates).toHaveLength(1);
  });

  it('--admin marks the certificate with the VBS administrator purpose; --days sets its validity; a given PKCS#12 password is used, not written', async () => {
    const pw = join(root, 'pw');
    writeFileSync(pw, 'correct horse battery\n', { mode: 0o600 });
    const r = await add('root-ops', '--admin', '--days', '30', '--p12-password-file', pw, '--out', join(root, 'ops'));
    expect(r.code, r.stderr).toBe(0);
    const cert = readFileSync(join(root, 'ops', 'root-ops.crt'), 'utf8');
    expect(isAdminCertificate(cert)).toBe(true);
    const days = (certificateFacts(cert).notAfter.getTime() - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(29);
    expect(days).toBeLessThanOrEqual(30);
    expect(existsSync(join(root, 'ops', 'root-ops.p12.password'))).toBe(false);
    expect(openssl('pkcs12', '-in', join(root, 'ops', 'root-ops.p12'), '-passin', 'pass:correct horse battery', '-nokeys')).toContain('BEGIN CERTIFICATE');
    expect((await add('x1', '--days', '0', '--out', join(root, 'x1'))).code).toBe(2);
    expect((await add('x1', '--days', '99999', '--out', join(root, 'x1'))).code).toBe(2);
  });

  it("--csr signs the user's own key under the registered name, and writes no key nor bundle", async () => {
    const dir = join(root, 'dave-own');
    mkdirSync(dir);
    // The subject asked for is ignored: the certificate is named after the registered user.
    openssl('req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'dave.key'), '-out', join(dir, 'dave.csr'), '-subj', '/CN=vbs-front/O=evil');
    const out = join(root, 'dave');
    const r = await add('dave', '--csr', join(dir, 'dave.csr'), '--out', out);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(out, 'dave.key'))).toBe(false);
    expect(existsSync(join(out, 'dave.p12'))).toBe(false);
    expect(openssl('x509', '-in', join(out, 'dave.crt'), '-noout', '-subject')).toMatch(/CN = dave/);
    expect(isServiceCertificate(readFileSync(join(out, 'dave.crt'), 'utf8'))).toBe(false);
    expect(openssl('x509', '-in', join(out, 'dave.crt'), '-noout', '-pubkey')).toBe(openssl('req', '-in', join(dir, 'dave.csr'), '-noout', '-pubkey'));
    expect(verify(join(out, 'dave.crt'))).toContain(': OK');
    // Renewed into the same folder: a bundle left there from an earlier key goes (it no longer fits).
    writeFileSync(join(out, 'dave.p12'), 'old bundle');
    writeFileSync(join(out, 'dave.p12.password'), 'old password');
    const renewed = await vbs('admin', 'user', 'renew', 'dave', '--csr', join(dir, 'dave.csr'), '--data', data, '--url', URL_, '--out', out);
    expect(renewed.code, renewed.stderr).toBe(0);
    expect([existsSync(join(out, 'dave.p12')), existsSync(join(out, 'dave.p12.password'))]).toEqual([false, false]);
    expect(verify(join(out, 'dave.crt'))).toContain(': OK');
    // Not a request, or a key VBS does not issue: a usage error, nobody registered.
    writeFileSync(join(dir, 'junk.csr'), 'not a request');
    expect((await add('eve', '--csr', join(dir, 'junk.csr'), '--out', join(root, 'eve'))).code).toBe(2);
    openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'ec.key'), '-out', join(dir, 'ec.csr'), '-subj', '/CN=eve');
    expect((await add('eve', '--csr', join(dir, 'ec.csr'), '--out', join(root, 'eve'))).code).toBe(2);
    expect(new UserRegistry(data).list().map((u) => u.name)).not.toContain('eve');
  });
});

describe('revocation and renewal', () => {
  it('revoke lists every certificate of the user in the CA-signed CRL; others still verify', async () => {
    expect((await add('frank', '--out', join(root, 'frank'))).code).toBe(0);
    expect((await add('grace', '--out', join(root, 'grace'))).code).toBe(0);
    const serial = new UserRegistry(data).get('frank').certificates[0]!.serial;
    const r = await vbs('admin', 'user', 'revoke', 'frank', '--data', data);
    expect(r.code, r.stderr).toBe(0);
    const crl = join(data, 'pki', 'ca.crl');
    expect(openssl('crl', '-in', crl, '-noout', '-CAfile', join(data, 'pki', 'ca.crt'))).toBe('');
    // OpenSSL prints whole bytes (a leading 0 when the serial has an odd number of hex digits).
    expect(openssl('crl', '-in', crl, '-noout', '-text')).toMatch(new RegExp(`Serial Number: 0?${serial}\\n`));
    expect(crlEntries(readFileSync(crl, 'utf8'))).toContain(serial);
    expect(verify(join(root, 'frank', 'frank.crt'))).toMatch(/certificate revoked/);
    expect(verify(join(root, 'grace', 'grace.crt'))).toContain(': OK');
    expect(userStatus(new UserRegistry(data).get('frank'))).toBe('revoked');
    expect((await vbs('admin', 'user', 'revoke', 'nobody', '--data', data)).code).toBe(1);
  });

  it('renew issues a new certificate under the same name and then revokes the old one', async () => {
    const before = new UserRegistry(data).get('grace').certificates[0]!.serial;
    const r = await vbs('admin', 'user', 'renew', 'grace', '--data', data, '--url', URL_, '--out', join(root, 'grace-new'));
    expect(r.code, r.stderr).toBe(0);
    const after = certificateFacts(readFileSync(join(root, 'grace-new', 'grace.crt'), 'utf8')).serial;
    expect(after).not.toBe(before);
    expect(verify(join(root, 'grace-new', 'grace.crt'))).toContain(': OK');
    expect(verify(join(root, 'grace', 'grace.crt'))).toMatch(/certificate revoked/);
    const grace = new UserRegistry(data).get('grace');
    expect(grace.certificates.map((c) => [c.serial, Boolean(c.revokedAt)])).toEqual([
      [before, true],
      [after, false],
    ]);
    expect(userStatus(grace)).toBe('active');
  });

  it('list and show print every user and certificate, as a table or JSON', async () => {
    const list = await vbs('admin', 'user', 'list', '--data', data);
    expect(list.code).toBe(0);
    const lines = list.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+ADMIN\s+STATUS\s+SERIAL\s+EXPIRES\s+CERTIFICATES$/);
    expect(lines.find((l) => l.startsWith('frank '))).toMatch(/^frank\s+no\s+revoked\s+-\s+-\s+1$/);
    expect(lines.find((l) => l.startsWith('root-ops '))).toMatch(/^root-ops\s+yes\s+active\s+[0-9A-F]+\s+\S+\s+1$/);
    const json = JSON.parse((await vbs('admin', 'user', 'list', '--data', data, '--json')).stdout) as { name: string; status: string }[];
    expect(json.map((u) => u.name)).toEqual(['alice', 'dave', 'frank', 'grace', 'root-ops']);
    const show = await vbs('admin', 'user', 'show', 'grace', '--data', data);
    expect(show.stdout).toMatch(/^Name:\s+grace\nAdmin:\s+no\nStatus:\s+active\n/);
    expect(show.stdout.trim().split('\n').filter((l) => /^[0-9A-F]{20,}\s/.test(l))).toHaveLength(2);
    expect(show.stdout).not.toContain('BEGIN CERTIFICATE');
    expect((await vbs('admin', 'user', 'show', 'nobody', '--data', data)).code).toBe(1);
  });
});

describe('the CRL', () => {
  it('lists serials of any length and leading digit exactly as the certificates carry them, and is signed by the CA', async () => {
    const reg = new UserRegistry(data);
    const serials = ['1', '0ABC', '7F', '80', 'FF00', '586A638121491CCFBD201E0000000001'];
    const pem = await buildCrl(reg.pki.load('ca'), serials.map((serial) => ({ serial, revokedAt: new Date() })));
    expect([...crlEntries(pem)].sort()).toEqual(['1', 'ABC', '7F', '80', 'FF00', '586A638121491CCFBD201E0000000001'].sort());
    expect(await revokedSerials(pem, reg.pki.load('ca').certPem)).toEqual(crlEntries(pem));
    await expect(revokedSerials(pem, createCa('another').certPem)).rejects.toThrow(/not signed by the VBS CA/);
  });
});

describe('the registry', () => {
  it('two commands at once: the lock serialises them; one name is added once', async () => {
    const reg = new UserRegistry(data);
    const results = await Promise.allSettled([reg.add('henry', false), reg.add('henry', false), reg.add('iris', false)]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(2);
    expect(results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason)).toEqual([expect.any(UserExists)]);
    expect(reg.get('henry').certificates).toHaveLength(1);
    expect(existsSync(join(data, 'pki', 'users.lock'))).toBe(false);
  });

  it('a lock left by a command that died is taken over', async () => {
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    writeFileSync(join(data, 'pki', 'users.lock'), String(dead));
    await new UserRegistry(data).add('lena', false);
    expect(existsSync(join(data, 'pki', 'users.lock'))).toBe(false);
  });

  it('a delivery that fails registers nothing; an expired certificate shows as expired', async () => {
    const reg = new UserRegistry(data);
    await expect(reg.add('jack', false, { deliver: () => { throw new Error('disk full'); } })).rejects.toThrow('disk full');
    expect(reg.list().map((u) => u.name)).not.toContain('jack');
    const past = { notBefore: new Date(Date.now() - 3 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) };
    const old = await reg.add('kate', false, { validity: past });
    expect(userStatus(old.user)).toBe('expired');
  });

  it("vbs up's admin carries the administrator purpose, reissued when an older deployment's lacks it", () => {
    const dir = join(root, 'older');
    ensureDeploymentPki(dir);
    const pki = new UserRegistry(dir).pki;
    expect(isAdminCertificate(readFileSync(pki.files('admin').cert, 'utf8'))).toBe(true);
    const unmarked = opensslIssue(pki.load('ca'), '/CN=admin/O=VBS');
    writeFileSync(pki.files('admin').cert, unmarked.certPem);
    writeFileSync(pki.files('admin').key, unmarked.keyPem);
    ensureDeploymentPki(dir);
    expect(isAdminCertificate(readFileSync(pki.files('admin').cert, 'utf8'))).toBe(true);
  });
});
