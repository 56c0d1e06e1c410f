import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KeyAndCert } from '../../src/pki/certificates.js';

/**
 * A certificate issued with the real openssl CLI by the deployment's CA, the
 * way an operator issues a user's: whatever subject is asked for, and no VBS
 * service purpose. The attacker's certificate of the security tests.
 */
export function opensslIssue(ca: KeyAndCert, subject: string): KeyAndCert {
  const dir = mkdtempSync(join(tmpdir(), 'vbs-openssl-'));
  try {
    const f = (n: string) => join(dir, n);
    writeFileSync(f('ca.crt'), ca.certPem);
    writeFileSync(f('ca.key'), ca.keyPem, { mode: 0o600 });
    execFileSync('openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('user.key'), '-out', f('user.csr'), '-subj', subject], { stdio: 'pipe' });
    execFileSync('openssl', ['x509', '-req', '-in', f('user.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '30', '-out', f('user.crt')], { stdio: 'pipe' });
    return { keyPem: readFileSync(f('user.key'), 'utf8'), certPem: readFileSync(f('user.crt'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
