import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { registrableUserName } from '../core/validate.js';
import { certificateFacts, issueCertificate, publicKeyOfRequest, signPublicKey, type KeyAndCert } from './certificates.js';
import { buildCrl } from './crl.js';
import { withFileLock } from './lock.js';
import { PkiStore, writeAtomic } from './store.js';

/**
 * The users of a deployment, kept in its data folder beside the CA
 * (DIR/pki/users/<name>.json): every certificate ever issued to each, and
 * which are revoked. Users' private keys are never kept here: `add` hands the
 * key to the caller (or signs the user's own request). Every change runs
 * under DIR/pki/users.lock and ends with DIR/pki/ca.crl rewritten, which the
 * running services reload.
 */
const CertificateEntry = z.object({
  serial: z.string(),
  issuedAt: z.string(),
  notAfter: z.string(),
  revokedAt: z.string().optional(),
  certPem: z.string(),
});
const UserRecordSchema = z.object({
  name: z.string(),
  admin: z.boolean(),
  createdAt: z.string(),
  certificates: z.array(CertificateEntry),
});
export type UserCertificate = z.infer<typeof CertificateEntry>;
export type UserRecord = z.infer<typeof UserRecordSchema>;

export const DEFAULT_USER_DAYS = 365;
export const MAX_USER_DAYS = 3650;

export interface IssueOptions {
  /** Validity in days (default 365). */
  readonly days?: number;
  /** The user's own PKCS#10 request (PEM): VBS signs its key and makes none. */
  readonly csrPem?: string;
  /** Tests only: an explicit validity (an expired certificate). */
  readonly validity?: { readonly notBefore: Date; readonly notAfter: Date };
  /**
   * Hands the new certificate (and key) over before it is recorded: if this
   * throws (the user's folder cannot be written), nothing is registered and
   * the command can simply be run again.
   */
  readonly deliver?: (issued: Issued) => void;
}

/** What an issuance gives the caller to hand over: the key only when VBS made it. */
export interface Issued {
  readonly user: UserRecord;
  readonly certPem: string;
  readonly keyPem?: string;
  readonly caPem: string;
}

/** The user's state, from its certificates. */
export function userStatus(user: UserRecord, now = new Date()): 'active' | 'revoked' | 'expired' {
  const current = currentCertificate(user);
  if (!current) return 'revoked';
  return new Date(current.notAfter) <= now ? 'expired' : 'active';
}

/** The newest certificate not revoked, if any. */
export function currentCertificate(user: UserRecord): UserCertificate | undefined {
  return user.certificates.filter((c) => !c.revokedAt).at(-1);
}

export class UserNotFound extends Error {}
export class UserExists extends Error {}

export class UserRegistry {
  readonly pki: PkiStore;
  private readonly usersDir: string;
  private readonly lockFile: string;
  readonly crlFile: string;

  constructor(dataDir: string) {
    this.pki = new PkiStore(join(dataDir, 'pki'));
    this.usersDir = join(this.pki.dir, 'users');
    this.lockFile = join(this.pki.dir, 'users.lock');
    this.crlFile = crlPath(this.pki.dir);
  }

  list(): UserRecord[] {
    if (!existsSync(this.usersDir)) return [];
    return readdirSync(this.usersDir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => this.read(join(this.usersDir, f)))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Throws UserNotFound. */
  get(name: string): UserRecord {
    const file = this.file(registrableUserName(name));
    if (!existsSync(file)) throw new UserNotFound(`no user ${name} in ${this.usersDir}`);
    return this.read(file);
  }

  /** Registers a new user and issues its first certificate; throws UserExists. */
  add(name: string, admin: boolean, opts: IssueOptions = {}): Promise<Issued> {
    const n = registrableUserName(name);
    return this.locked(async () => {
      const clash = this.list().find((u) => u.name.toLowerCase() === n.toLowerCase());
      if (clash) throw new UserExists(`user ${clash.name} already exists; \`vbs admin user renew ${clash.name}\` issues a new certificate`);
      const ca = this.pki.ensureCa();
      const user: UserRecord = { name: n, admin, createdAt: new Date().toISOString(), certificates: [] };
      const issued = this.issue(ca, user, opts);
      this.write(issued.user);
      // A folder no `vbs up` has run on yet: its services will find a CRL.
      if (!existsSync(this.crlFile)) await this.writeCrl();
      return issued;
    });
  }

  /**
   * A new certificate under the same name (and admin mark). The certificates
   * issued before are revoked once the new one is written: a renewal replaces
   * a lost or compromised key, so the old one must stop working.
   */
  renew(name: string, opts: IssueOptions = {}): Promise<Issued> {
    return this.locked(async () => {
      const user = this.get(name);
      const ca = this.pki.ensureCa();
      const before = user.certificates.filter((c) => !c.revokedAt);
      const issued = this.issue(ca, user, opts);
      const now = new Date().toISOString();
      const renewed: UserRecord = {
        ...issued.user,
        certificates: issued.user.certificates.map((c) => (before.includes(c) ? { ...c, revokedAt: now } : c)),
      };
      this.write(renewed);
      await this.writeCrl();
      return { ...issued, user: renewed };
    });
  }

  /** Revokes every certificate of the user; the services refuse it within a second or two. */
  revoke(name: string): Promise<UserRecord> {
    return this.locked(async () => {
      const user = this.get(name);
      const now = new Date().toISOString();
      const revoked: UserRecord = { ...user, certificates: user.certificates.map((c) => (c.revokedAt ? c : { ...c, revokedAt: now })) };
      this.write(revoked);
      await this.writeCrl();
      return revoked;
    });
  }

  /** DIR/pki/ca.crl from the registry: every revoked certificate of every user. */
  async writeCrl(): Promise<void> {
    const revoked = this.list().flatMap((u) => u.certificates.filter((c) => c.revokedAt).map((c) => ({ serial: c.serial, revokedAt: new Date(c.revokedAt!) })));
    writeAtomic(this.crlFile, await buildCrl(this.pki.ensureCa(), revoked), 0o644);
  }

  /** Creates the empty CRL when there is none yet (a new deployment, or one from before revocation). */
  async ensureCrl(): Promise<string> {
    if (!existsSync(this.crlFile)) await this.locked(() => (existsSync(this.crlFile) ? Promise.resolve() : this.writeCrl()));
    return this.crlFile;
  }

  /** A new certificate for `user`, delivered; the caller records the user it returns. */
  private issue(ca: KeyAndCert, user: UserRecord, opts: IssueOptions): Issued {
    const req = { commonName: user.name, use: 'client' as const, admin: user.admin, days: opts.days ?? DEFAULT_USER_DAYS, validity: opts.validity };
    let certPem: string;
    let keyPem: string | undefined;
    if (opts.csrPem !== undefined) {
      certPem = signPublicKey(ca, publicKeyOfRequest(opts.csrPem), req);
    } else {
      ({ certPem, keyPem } = issueCertificate(ca, req));
    }
    const facts = certificateFacts(certPem);
    const entry: UserCertificate = { serial: facts.serial, issuedAt: new Date().toISOString(), notAfter: facts.notAfter.toISOString(), certPem };
    const issued: Issued = { user: { ...user, certificates: [...user.certificates, entry] }, certPem, keyPem, caPem: ca.certPem };
    opts.deliver?.(issued);
    return issued;
  }

  private locked<T>(run: () => Promise<T>): Promise<T> {
    mkdirSync(this.usersDir, { recursive: true, mode: 0o700 });
    return withFileLock(this.lockFile, run);
  }

  private file(name: string): string {
    return join(this.usersDir, `${name}.json`);
  }

  private read(file: string): UserRecord {
    return UserRecordSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
  }

  private write(user: UserRecord): void {
    writeAtomic(this.file(user.name), `${JSON.stringify(user, null, 2)}\n`, 0o600);
  }
}

export function crlPath(pkiDir: string): string {
  return join(pkiDir, 'ca.crl');
}
