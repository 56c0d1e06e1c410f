import 'reflect-metadata';
import { createPrivateKey, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import type { KeyAndCert } from './certificates.js';
import { normalSerial } from './certificates.js';

/**
 * The VBS CA's certificate revocation list: what `vbs admin user revoke`
 * writes to DIR/pki/ca.crl and every service reloads (src/soap/crl-watch.ts).
 * node-forge cannot make CRLs; @peculiar/x509 does, on node's WebCrypto.
 */
x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const SIGNING = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as const;

export interface RevokedSerial {
  /** Hex, as certificateFacts() gives it. */
  readonly serial: string;
  readonly revokedAt: Date;
}

/**
 * A CRL signed by the CA listing `revoked`. Its next update is the CA's own
 * expiry: services check the CRL as long as the CA lives, and OpenSSL refuses
 * every client against a CRL past its next update, so it must not lapse
 * between two revocations.
 */
export async function buildCrl(ca: KeyAndCert, revoked: readonly RevokedSerial[], thisUpdate = new Date()): Promise<string> {
  const caCert = new x509.X509Certificate(ca.certPem);
  const der = createPrivateKey(ca.keyPem).export({ type: 'pkcs8', format: 'der' });
  const signingKey = await webcrypto.subtle.importKey('pkcs8', der, SIGNING, false, ['sign']);
  const crl = await x509.X509CrlGenerator.create({
    issuer: caCert.subjectName,
    thisUpdate,
    nextUpdate: caCert.notAfter,
    signingAlgorithm: SIGNING,
    signingKey: signingKey as unknown as CryptoKey,
    entries: revoked.map((r) => ({ serialNumber: derSerial(r.serial), revocationDate: r.revokedAt })),
  });
  // OpenSSL and node read "X509 CRL" PEM blocks only.
  return crl.toString('pem').replace(/-----(BEGIN|END) CRL-----/g, '-----$1 X509 CRL-----') + '\n';
}

/**
 * The revoked serials of a CRL, once its signature is checked against the CA.
 * Throws when the text is no CRL or the CA did not sign it: a service then
 * keeps the list it has (a half-written or forged file must not replace it).
 */
export async function revokedSerials(crlPem: string, caCertPem: string | Buffer): Promise<Set<string>> {
  const crl = parseCrl(crlPem);
  const caCert = new x509.X509Certificate(caCertPem.toString());
  if (!(await crl.verify({ publicKey: caCert }))) throw new Error('the CRL is not signed by the VBS CA');
  return serialsOf(crl);
}

/** The revoked serials of a CRL, its signature unchecked (OpenSSL checks it at every handshake). */
export function crlEntries(crlPem: string): Set<string> {
  return serialsOf(parseCrl(crlPem));
}

function parseCrl(pem: string): x509.X509Crl {
  return new x509.X509Crl(pem.replace(/-----(BEGIN|END) X509 CRL-----/g, '-----$1 CRL-----'));
}

function serialsOf(crl: x509.X509Crl): Set<string> {
  return new Set(crl.entries.map((e) => normalSerial(e.serialNumber)));
}

/** Hex of whole bytes with the sign bit clear: a serial DER reads back as the same positive number. */
function derSerial(hex: string): string {
  const even = hex.length % 2 ? `0${hex}` : hex;
  return /^[89a-f]/i.test(even) ? `00${even}` : even;
}
