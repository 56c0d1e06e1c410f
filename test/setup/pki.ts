import { cpSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { inject } from 'vitest';

/**
 * A deployment's certificates, made once per run. `vbs up` and the crash
 * cluster make a CA and five identities for every deployment they start
 * (six RSA key pairs, about 1.3 s of CPU); the tests start about a hundred.
 * The global setup (test/setup/global.ts) makes one set of them, the way
 * `vbs up` does, and each new deployment folder gets a copy, which its
 * services then find and keep (first start creates, restarts reuse). Tests
 * may revoke, add and replace certificates freely: each has its own copy.
 *
 * That `vbs up` makes a missing PKI itself is still tested: by test/pki and
 * by every start in a folder given by its test (startVbs's `dir`).
 */
declare module 'vitest' {
  export interface ProvidedContext {
    pkiTemplate: string;
  }
}

/** Copies the run's deployment PKI into `dir`/pki unless a PKI is there already. */
export function seedDeploymentPki(dir: string): void {
  const target = join(dir, 'pki');
  if (existsSync(target)) return;
  const template = inject('pkiTemplate');
  if (!template || !existsSync(join(template, 'ca.key'))) return; // no global setup (made by the service itself, as before)
  cpSync(template, target, { recursive: true });
}
