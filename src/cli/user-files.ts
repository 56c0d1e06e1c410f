import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import forge from 'node-forge';
import { writeAtomic } from '../pki/store.js';
import type { Issued } from '../pki/users.js';

/**
 * What an administrator hands a user, in one folder: the key (when VBS made
 * it), the certificate, the CA certificate, a PKCS#12 bundle of the three
 * with its password beside it (both 0600), and client.json for the CLI.
 */
export interface UserFiles {
  readonly key: string;
  readonly cert: string;
  readonly ca: string;
  readonly p12: string;
  readonly p12Password: string;
  readonly clientConfig: string;
}

export function userFiles(outDir: string, name: string): UserFiles {
  const f = (n: string) => join(outDir, n);
  return { key: f(`${name}.key`), cert: f(`${name}.crt`), ca: f('ca.crt'), p12: f(`${name}.p12`), p12Password: f(`${name}.p12.password`), clientConfig: f('client.json') };
}

/** The files of `userFiles` that already exist in the folder (an add never overwrites someone's key). */
export function existingUserFiles(outDir: string, name: string): string[] {
  return Object.values(userFiles(outDir, name)).filter((f) => existsSync(f));
}

/**
 * Writes the user's folder. `p12PasswordFile`: the bundle's password, read
 * from the administrator's file; without it one is generated and written
 * beside the bundle. Never printed.
 */
export function writeUserFiles(outDir: string, issued: Issued, frontUrls: string | readonly string[], p12PasswordFile?: string): UserFiles {
  const urls = typeof frontUrls === 'string' ? [frontUrls] : frontUrls;
  const name = issued.user.name;
  const files = userFiles(outDir, name);
  mkdirSync(outDir, { recursive: true, mode: 0o700 });
  if (issued.keyPem) writeAtomic(files.key, issued.keyPem, 0o600);
  writeAtomic(files.cert, issued.certPem, 0o644);
  writeAtomic(files.ca, issued.caPem, 0o644);
  if (issued.keyPem) {
    const password = p12PasswordFile ? readPassword(p12PasswordFile) : randomBytes(18).toString('base64url');
    if (!p12PasswordFile) writeAtomic(files.p12Password, `${password}\n`, 0o600);
    writeAtomic(files.p12, pkcs12(issued, password), 0o600);
  }
  // A renewal into the same folder leaves nothing of the previous certificate's that no longer fits.
  if (!issued.keyPem) rmSync(files.p12, { force: true });
  if (!issued.keyPem || p12PasswordFile) rmSync(files.p12Password, { force: true });
  // Paths relative to client.json: the folder can be handed over as a whole.
  // Several fronts (`vbs up --fronts N`): all of them, the CLI going to the next when one does not answer.
  const config = { url: urls[0], ...(urls.length > 1 ? { fronts: [...urls] } : {}), key: `${name}.key`, cert: `${name}.crt`, ca: 'ca.crt' };
  writeAtomic(files.clientConfig, `${JSON.stringify(config, null, 2)}\n`, 0o644);
  return files;
}

export function readPassword(file: string): string {
  const password = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  if (password.length < 8) throw new Error(`the PKCS#12 password in ${file} is shorter than 8 characters`);
  return password;
}

/**
 * A PKCS#12 bundle (key, certificate, CA) encrypted with 3DES and a SHA-1
 * MAC: what OpenSSL 3 (without its legacy provider), Python's cryptography,
 * Java and browsers all import.
 */
function pkcs12(issued: Issued, password: string): Buffer {
  const key = forge.pki.privateKeyFromPem(issued.keyPem!);
  const chain = [asIs(issued.certPem), asIs(issued.caPem)];
  const asn1 = forge.pkcs12.toPkcs12Asn1(key, chain, password, { algorithm: '3des', friendlyName: issued.user.name, generateLocalKeyId: true });
  return Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary');
}

/**
 * A certificate as forge's PKCS#12 writer takes it, without forge reading its
 * extensions (it cannot read the VBS purposes' UUID OIDs): the to-be-signed
 * part is kept as parsed ASN.1, so the bag holds the certificate's own bytes
 * (checked).
 */
function asIs(certPem: string): forge.pki.Certificate {
  const der = forge.pem.decode(certPem)[0]!.body;
  const [tbs, algorithm, signature] = forge.asn1.fromDer(der).value as forge.asn1.Asn1[];
  const oid = forge.asn1.derToOid((algorithm!.value as forge.asn1.Asn1[])[0]!.value as string);
  const stub = { tbsCertificate: tbs, signatureOid: oid, signatureParameters: {}, signature: (signature!.value as string).slice(1) } as unknown as forge.pki.Certificate;
  if (forge.asn1.toDer(forge.pki.certificateToAsn1(stub)).getBytes() !== der) throw new Error('the certificate does not re-encode to its own bytes');
  return stub;
}
