import { constants } from 'node:crypto';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { now } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import { hasAdminPurpose, hasServicePurpose } from '../pki/identity.js';

/**
 * The TLS policy every VBS listener shares, and the per-request answer to
 * "who is calling": identity is the certificate verified for this request.
 *
 * - No renegotiation. Node keeps `socket.authorized` from the first handshake
 *   while `getPeerCertificate()` returns whatever a renegotiation presented,
 *   unchecked; so OpenSSL refuses renegotiation outright, and each request
 *   also checks that the certificate it sees is the one verified when the
 *   connection (or the session it resumed) was set up.
 * - Validity is checked per request against the service clock: a keep-alive
 *   connection or a resumed session (its ticket carries the certificate)
 *   never outlives its certificate.
 * - TLS 1.2 only with ECDHE key exchange (forward secrecy); TLS 1.3 suites
 *   always have it.
 */
export const SERVER_TLS_POLICY = {
  minVersion: 'TLSv1.2' as const,
  ciphers: [
    'TLS_AES_256_GCM_SHA384',
    'TLS_CHACHA20_POLY1305_SHA256',
    'TLS_AES_128_GCM_SHA256',
    'ECDHE-ECDSA-AES256-GCM-SHA384',
    'ECDHE-RSA-AES256-GCM-SHA384',
    'ECDHE-ECDSA-CHACHA20-POLY1305',
    'ECDHE-RSA-CHACHA20-POLY1305',
    'ECDHE-ECDSA-AES128-GCM-SHA256',
    'ECDHE-RSA-AES128-GCM-SHA256',
  ].join(':'),
  honorCipherOrder: true,
  secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
};

/** Connections without a valid certificate held open at once, by default; more are closed at once. */
export const DEFAULT_MAX_ANONYMOUS_CONNECTIONS = 64;

/** Who called, from the client certificate the VBS CA issued. */
export interface Peer {
  /** The certificate's common name. */
  readonly name: string;
  /** Whether the CA issued it to a VBS service (src/pki/identity.ts). */
  readonly service: boolean;
  /** Whether the CA issued it to a VBS administrator (src/pki/identity.ts). */
  readonly admin: boolean;
}

/** The answer for one request: an identity, or why there is none (and what the certificate claimed, unverified). */
export type Identification = { readonly peer: Peer } | { readonly refusal: string; readonly claimed?: string };

/** What the handshake verified, kept for the life of the connection. */
interface Binding {
  readonly authorized: boolean;
  readonly reason: string | undefined;
  readonly cert: PeerCertificate | undefined;
}

/** A revocation list, as far as this needs one. */
export interface RevocationCheck {
  isRevoked(serial: string | undefined): boolean;
}

/**
 * Binds each TLS connection to the certificate verified at its handshake and
 * caps the connections that presented none the CA vouches for.
 */
export class ConnectionIdentities {
  private readonly bindings = new WeakMap<TLSSocket, Binding>();
  private anonymous = 0;

  constructor(
    private readonly maxAnonymous: number,
    private readonly log: Logger,
  ) {}

  /** The server's 'secureConnection': remembers what was verified; closes an anonymous connection over the cap. */
  bind(socket: TLSSocket): void {
    const cert = certOf(socket);
    this.bindings.set(socket, { authorized: socket.authorized, reason: socket.authorizationError as unknown as string | undefined, cert });
    if (socket.authorized) return;
    if (this.anonymous >= this.maxAnonymous) {
      // Without a certificate a caller can only be told AuthFailure; holding
      // thousands of such connections open costs us and tells it nothing more.
      this.log.warn('connection without a valid certificate closed: too many open', { max: this.maxAnonymous });
      socket.destroy();
      return;
    }
    this.anonymous++;
    socket.once('close', () => this.anonymous--);
  }

  /** Who this request comes from, checked now: the bound certificate, unchanged, valid at this moment, not revoked. */
  identify(socket: TLSSocket, crl: RevocationCheck | undefined): Identification {
    const bound = this.bindings.get(socket);
    if (!bound) return { refusal: REQUIRED };
    const current = certOf(socket);
    if (bound.cert?.fingerprint256 !== current?.fingerprint256) {
      // Renegotiation is refused, so this cannot happen; if it ever did, the new certificate was never verified.
      socket.destroy();
      return { refusal: REQUIRED, ...claim(current) };
    }
    const cert = bound.cert;
    if (!bound.authorized || !cert) return { refusal: reasonText(bound.reason), ...claim(cert) };
    if (crl?.isRevoked(cert.serialNumber)) return { refusal: REVOKED, ...claim(cert) };
    const t = now();
    if (t >= Date.parse(cert.valid_to)) return { refusal: EXPIRED, ...claim(cert) };
    if (t < Date.parse(cert.valid_from)) return { refusal: NOT_YET_VALID, ...claim(cert) };
    const name = cert.subject?.CN;
    if (typeof name !== 'string' || !name) return { refusal: REQUIRED, ...claim(cert) };
    return { peer: { name, service: hasServicePurpose(cert.ext_key_usage), admin: hasAdminPurpose(cert.ext_key_usage) } };
  }
}

const REQUIRED = 'A client certificate issued by the VBS certificate authority is required.';
const REVOKED = 'This certificate has been revoked by the VBS certificate authority.';
const EXPIRED = 'This certificate has expired; ask an administrator for a new one (vbs admin user renew).';
const NOT_YET_VALID = 'This certificate is not valid yet.';

/** A refusal's text as a metric's reason (src/core/metrics.ts). */
export function refusalReason(refusal: string): 'no_certificate' | 'expired' | 'not_yet_valid' | 'revoked' {
  return refusal === REVOKED ? 'revoked' : refusal === EXPIRED ? 'expired' : refusal === NOT_YET_VALID ? 'not_yet_valid' : 'no_certificate';
}

/** Why the handshake did not verify: what the caller can fix, nothing more. */
function reasonText(reason: string | undefined): string {
  if (reason === 'CERT_REVOKED') return REVOKED;
  if (reason === 'CERT_HAS_EXPIRED') return EXPIRED;
  if (reason === 'CERT_NOT_YET_VALID') return NOT_YET_VALID;
  return REQUIRED;
}

/** The peer certificate, or undefined when none was presented (Node gives an empty object then). */
function certOf(socket: TLSSocket): PeerCertificate | undefined {
  const cert = socket.getPeerCertificate();
  return cert && cert.fingerprint256 ? cert : undefined;
}

/** What a refused certificate claims to be (for the audit log, marked unverified there); bounded. */
function claim(cert: PeerCertificate | undefined): { claimed?: string } {
  const cn = cert?.subject?.CN as string | string[] | undefined;
  if (cn === undefined) return {};
  const text = Array.isArray(cn) ? cn.join(' + ') : cn;
  return text ? { claimed: text.slice(0, 256) } : {};
}
