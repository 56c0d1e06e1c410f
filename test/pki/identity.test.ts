import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createCa, issueCertificate, isServiceCertificate } from '../../src/pki/certificates.js';
import { isReservedServiceName } from '../../src/pki/identity.js';
import { PkiStore } from '../../src/pki/store.js';
import { opensslIssue } from './openssl.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('service identities', () => {
  const ca = createCa('test CA');

  it('the CA marks service certificates, and only them', () => {
    expect(isServiceCertificate(issueCertificate(ca, { commonName: 'vbs-front', use: 'server+client', service: true }).certPem)).toBe(true);
    expect(isServiceCertificate(issueCertificate(ca, { commonName: 'alice', use: 'client' }).certPem)).toBe(false);
  });

  it('refuses to issue a user certificate under a name reserved for services', () => {
    expect(() => issueCertificate(ca, { commonName: 'vbs-front', use: 'client' })).toThrow(/reserved for VBS services/);
    expect(() => issueCertificate(ca, { commonName: 'VBS-Volume-Delegate', use: 'client' })).toThrow(/reserved/);
    expect(isReservedServiceName('vbs-front')).toBe(true);
    expect(isReservedServiceName('alice')).toBe(false);
  });

  it('a store issues reserved names as services and reissues an unmarked service certificate of an older deployment', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vbs-pki-'));
    dirs.push(dir);
    const pki = new PkiStore(dir);
    const caPem = pki.ensureCa();
    // What an older VBS wrote: the front's certificate without the service purpose.
    const old = opensslIssue(caPem, '/CN=vbs-front/O=VBS');
    writeFileSync(pki.files('front').cert, old.certPem);
    writeFileSync(pki.files('front').key, old.keyPem);
    expect(isServiceCertificate(readFileSync(pki.files('front').cert, 'utf8'))).toBe(false);
    pki.ensureIdentity('front', { commonName: 'vbs-front', use: 'server+client', hosts: ['127.0.0.1'] });
    const reissued = readFileSync(pki.files('front').cert, 'utf8');
    expect(isServiceCertificate(reissued)).toBe(true);
    // Kept from then on, and users stay users.
    pki.ensureIdentity('front', { commonName: 'vbs-front', use: 'server+client', hosts: ['127.0.0.1'] });
    expect(readFileSync(pki.files('front').cert, 'utf8')).toBe(reissued);
    pki.ensureIdentity('bob', { commonName: 'bob', use: 'client' });
    expect(isServiceCertificate(readFileSync(pki.files('bob').cert, 'utf8'))).toBe(false);
    // The reissued certificate verifies against the same CA.
    expect(execFileSync('openssl', ['verify', '-CAfile', pki.files('front').ca, pki.files('front').cert], { encoding: 'utf8' })).toContain(': OK');
  });
});
