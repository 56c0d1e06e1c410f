import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';
import { VBS_ADMIN_PURPOSE, VBS_SERVICE_PURPOSE, hasAdminPurpose, hasServicePurpose, isReservedServiceName } from './identity.js';

/**
 * VBS's own certificate authority. node-forge builds and signs the X.509
 * structures; node's crypto makes the keys (forge's pure-JS RSA is ~10x slower).
 */
export interface KeyAndCert {
  readonly keyPem: string;
  readonly certPem: string;
}

export type CertUse = 'server' | 'client' | 'server+client';

const DAY_MS = 24 * 3600 * 1000;

function newRsaKey(): { forgeKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey; pem: string } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(pem) as forge.pki.rsa.PrivateKey;
  const publicKey = forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e);
  return { forgeKey, publicKey, pem };
}

function serial(): string {
  // Positive, 16 bytes: the top bit cleared so DER does not read it as negative.
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  return b.toString('hex');
}

export function createCa(commonName = 'VBS Certificate Authority', days = 3650): KeyAndCert {
  const key = newRsaKey();
  const cert = forge.pki.createCertificate();
  cert.publicKey = key.publicKey;
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + days * DAY_MS);
  const subject = [{ name: 'commonName', value: commonName }, { name: 'organizationName', value: 'VBS' }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(key.forgeKey, forge.md.sha256.create());
  return { keyPem: key.pem, certPem: forge.pki.certificateToPem(cert) };
}

export interface IssueRequest {
  readonly commonName: string;
  readonly use: CertUse;
  /** DNS names and IP addresses the server answers on. */
  readonly hosts?: readonly string[];
  readonly days?: number;
  /**
   * A VBS service's identity (the front, a delegate): marked with the VBS
   * service purpose that delegates require. Names reserved for services
   * (vbs-*) can only be issued this way.
   */
  readonly service?: boolean;
  /** A VBS administrator (`vbs admin user add --admin`, the deployment's `admin`): marked with the VBS administrator purpose. */
  readonly admin?: boolean;
  /** An explicit validity, instead of from a minute ago for `days` (tests issue expired certificates with it). */
  readonly validity?: { readonly notBefore: Date; readonly notAfter: Date };
}

export function issueCertificate(ca: KeyAndCert, req: IssueRequest): KeyAndCert {
  const key = newRsaKey();
  return { keyPem: key.pem, certPem: signPublicKey(ca, key.publicKey, req) };
}

/** A certificate for a key the CA never sees (the public key of a user's signing request). */
export function signPublicKey(ca: KeyAndCert, publicKey: forge.pki.rsa.PublicKey, req: IssueRequest): string {
  if (!req.service && isReservedServiceName(req.commonName)) {
    throw new Error(`${req.commonName} is a name reserved for VBS services; it cannot be a user's`);
  }
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const caKey = forge.pki.privateKeyFromPem(ca.keyPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = serial();
  cert.validity.notBefore = req.validity?.notBefore ?? new Date(Date.now() - 60_000);
  cert.validity.notAfter = req.validity?.notAfter ?? new Date(Date.now() + (req.days ?? 825) * DAY_MS);
  cert.setSubject([{ name: 'commonName', value: req.commonName }, { name: 'organizationName', value: 'VBS' }]);
  cert.setIssuer(caCert.subject.attributes);
  const extensions: object[] = [
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    extendedKeyUsage([
      ...(req.use !== 'client' ? [SERVER_AUTH] : []),
      ...(req.use !== 'server' ? [CLIENT_AUTH] : []),
      ...(req.service ? [VBS_SERVICE_PURPOSE] : []),
      ...(req.admin ? [VBS_ADMIN_PURPOSE] : []),
    ]),
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ];
  if (req.hosts?.length) {
    extensions.push({
      name: 'subjectAltName',
      altNames: req.hosts.map((h) => (isIP(h) ? { type: 7, ip: h } : { type: 2, value: h })),
    });
  }
  cert.setExtensions(extensions);
  cert.sign(caKey, forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

/**
 * The public key of a PKCS#10 request, once its signature proves the
 * requester holds the private key. RSA of 2048 bits or more only (what the
 * CA itself issues; forge reads no other kind). The request's subject is not
 * used: the CA names the certificate after the user it registers.
 */
export class BadCertificateRequest extends Error {}

export function publicKeyOfRequest(csrPem: string): forge.pki.rsa.PublicKey {
  let csr: forge.pki.CertificateSigningRequest;
  try {
    csr = forge.pki.certificationRequestFromPem(csrPem);
  } catch (err) {
    throw new BadCertificateRequest(`not a PEM certificate signing request with an RSA key: ${(err as Error).message}`);
  }
  if (!csr.verify()) throw new BadCertificateRequest('the certificate signing request is not signed by its own key');
  const key = csr.publicKey as forge.pki.rsa.PublicKey | null;
  if (!key?.n || key.n.bitLength() < 2048) throw new BadCertificateRequest('the certificate signing request must hold an RSA key of at least 2048 bits');
  return key;
}

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

/**
 * The extKeyUsage extension, encoded here because forge's encoder takes only
 * 32-bit arcs and the VBS service purpose is a UUID OID (arc 2.25).
 */
function extendedKeyUsage(oids: readonly string[]): object {
  const { asn1 } = forge;
  const seq = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, oids.map((o) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, oidContent(o))));
  return { id: '2.5.29.37', name: 'extKeyUsage', critical: false, value: asn1.toDer(seq).getBytes() };
}

/** The content octets of an OBJECT IDENTIFIER (X.690 8.19), as a binary string. */
function oidContent(oid: string): string {
  const arcs = oid.split('.').map((a) => BigInt(a));
  const subs = [arcs[0]! * 40n + arcs[1]!, ...arcs.slice(2)];
  const bytes: number[] = [];
  for (const sub of subs) {
    const groups = [Number(sub & 0x7fn)];
    for (let n = sub >> 7n; n > 0n; n >>= 7n) groups.unshift(Number(n & 0x7fn) | 0x80);
    bytes.push(...groups);
  }
  return String.fromCharCode(...bytes);
}

/** The common name of a PEM certificate (the user id, for client certificates). */
export function commonNameOf(certPem: string): string | undefined {
  const subject = new X509Certificate(certPem).subject;
  return /^CN=(.*)$/m.exec(subject)?.[1];
}

/** Whether a PEM certificate was issued to a VBS service (carries the VBS service purpose). */
export function isServiceCertificate(certPem: string): boolean {
  return hasServicePurpose(new X509Certificate(certPem).keyUsage);
}

/** Whether a PEM certificate was issued to a VBS administrator (carries the VBS administrator purpose). */
export function isAdminCertificate(certPem: string): boolean {
  return hasAdminPurpose(new X509Certificate(certPem).keyUsage);
}

/** A certificate's serial as VBS writes it everywhere: upper-case hex, no leading zeros (as node's TLS reports it). */
export function normalSerial(hex: string): string {
  return hex.replace(/^0+(?=.)/, '').toUpperCase();
}

/** The serial and validity of a PEM certificate. */
export function certificateFacts(certPem: string): { serial: string; notBefore: Date; notAfter: Date } {
  const c = new X509Certificate(certPem);
  return { serial: normalSerial(c.serialNumber), notBefore: new Date(c.validFrom), notAfter: new Date(c.validTo) };
}
