import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { KeyAndCert } from '../../src/pki/certificates.js';

const run = promisify(execFile);
/** Debian's python3, which has python3-openssl (scripts/install-deps.sh). */
const PYTHON = '/usr/bin/python3';
const SCRIPT = join(import.meta.dirname, 'renegotiate.py');

export interface RenegotiationProbe {
  /** Whether the server went through a renegotiation. */
  readonly renegotiated: boolean;
  /** Where the probe was stopped, if it was. */
  readonly error: string | null;
  /** The raw HTTP answer to the request sent after renegotiating, if any. */
  readonly answer: string | null;
}

/**
 * Connects to `url` over TLS 1.2 as `first`, renegotiates presenting `second`
 * (any certificate at all, self-signed included), then POSTs `body` there.
 */
export async function renegotiateAs(url: string, caPem: string, first: KeyAndCert, second: KeyAndCert, body: string): Promise<RenegotiationProbe> {
  const dir = mkdtempSync(join(tmpdir(), 'vbs-reneg-'));
  try {
    const f = (name: string, text: string) => {
      writeFileSync(join(dir, name), text, { mode: 0o600 });
      return join(dir, name);
    };
    const u = new URL(url);
    const args = [SCRIPT, u.hostname, u.port, f('ca.crt', caPem), f('a.crt', first.certPem), f('a.key', first.keyPem), f('b.crt', second.certPem), f('b.key', second.keyPem), u.pathname, f('body.xml', body)];
    const { stdout } = await run(PYTHON, args, { timeout: 60_000 });
    return JSON.parse(stdout) as RenegotiationProbe;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
