import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCa, isAdminCertificate, isServiceCertificate, issueCertificate, type IssueRequest, type KeyAndCert } from './certificates.js';
import { isReservedServiceName } from './identity.js';

/**
 * A folder of PEM files: ca.crt/ca.key and <name>.crt/<name>.key per identity.
 * Keys are written 0600 and atomically, so a crash never leaves half a key.
 */
export interface IdentityFiles {
  readonly key: string;
  readonly cert: string;
  readonly ca: string;
}

export class PkiStore {
  constructor(readonly dir: string) {}

  files(name: string): IdentityFiles {
    return { key: join(this.dir, `${name}.key`), cert: join(this.dir, `${name}.crt`), ca: join(this.dir, 'ca.crt') };
  }

  hasCa(): boolean {
    return existsSync(join(this.dir, 'ca.crt')) && existsSync(join(this.dir, 'ca.key'));
  }

  /** Creates the CA on first use; later calls load it. */
  ensureCa(): KeyAndCert {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    if (!this.hasCa()) this.save('ca', createCa());
    return this.load('ca');
  }

  /**
   * Issues `name` unless it already exists (first start creates, restarts reuse).
   * A reserved service name (vbs-*) is issued as a service identity; one
   * issued before services were marked is issued again, so a deployment
   * folder from an older VBS keeps working with delegates that require the mark.
   * The same holds for the administrator mark (`admin: true`).
   */
  ensureIdentity(name: string, req: IssueRequest): IdentityFiles {
    const files = this.files(name);
    const service = req.service ?? isReservedServiceName(req.commonName);
    const exists = existsSync(files.cert) && existsSync(files.key);
    const unmarked = () => {
      const pem = readFileSync(files.cert, 'utf8');
      return (service && !isServiceCertificate(pem)) || (req.admin === true && !isAdminCertificate(pem));
    };
    if (!exists || unmarked()) {
      this.save(name, issueCertificate(this.ensureCa(), { ...req, service }));
    }
    return files;
  }

  load(name: string): KeyAndCert {
    return {
      keyPem: readFileSync(join(this.dir, `${name}.key`), 'utf8'),
      certPem: readFileSync(join(this.dir, `${name}.crt`), 'utf8'),
    };
  }

  private save(name: string, kc: KeyAndCert): void {
    writeAtomic(join(this.dir, `${name}.key`), kc.keyPem, 0o600);
    writeAtomic(join(this.dir, `${name}.crt`), kc.certPem, 0o644);
  }
}

export function writeAtomic(file: string, content: string | Buffer, mode = 0o644): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, content, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, file);
}
