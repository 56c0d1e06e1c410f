import type { AddressInfo } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/log.js';
import { createCa, issueCertificate } from '../../src/pki/certificates.js';
import { VBS_SERVICE } from '../../src/services/vbs.js';
import { createSoapServer, type CallContext, type Handlers } from '../../src/soap/server.js';
import { envelope } from '../../src/soap/xml.js';
import { renegotiateAs } from './renegotiate.js';

/**
 * The TLS side of "identity is the certificate verified for this request"
 * (issue 17 items 1 and 6), on a SOAP server as every VBS service makes it.
 */
const ca = createCa('test CA');
const server = issueCertificate(ca, { commonName: 'vbs-front', use: 'server', hosts: ['127.0.0.1'], service: true });
const alice = issueCertificate(ca, { commonName: 'alice', use: 'client' });
const selfMadeAdmin = issueCertificate(createCa('attacker'), { commonName: 'admin', use: 'client', admin: true });

const callers: string[] = [];
const handlers: Handlers = Object.fromEntries(
  Object.keys(VBS_SERVICE.operations).map((op) => [
    op,
    (_input: unknown, ctx: CallContext) => {
      callers.push(`${ctx.caller}${ctx.admin ? ' (admin)' : ''}`);
      return op === 'DescribeVolumes' ? { volume: [] } : { return: true };
    },
  ]),
) as Handlers;

let url = '';
const ANONYMOUS_CAP = 3;
const srv = createSoapServer({ def: VBS_SERVICE, handlers, tls: { key: server.keyPem, cert: server.certPem, ca: ca.certPem }, log: silentLogger, publicUrl: () => url, maxAnonymousConnections: ANONYMOUS_CAP });

beforeAll(async () => {
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  url = `https://127.0.0.1:${(srv.address() as AddressInfo).port}/vbs`;
});
afterAll(() => {
  srv.closeAllConnections();
  srv.close();
});

const describeVolumes = envelope(VBS_SERVICE.namespace, '<tns:DescribeVolumes/>');

/** A TLS connection that completed its handshake, or the error that ended it. */
function tlsOpen(opts: { key?: string; cert?: string; ciphers?: string; maxVersion?: 'TLSv1.2' }): Promise<TLSSocket> {
  const port = Number(new URL(url).port);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca: ca.certPem, ...opts }, () => resolve(socket));
    socket.once('error', reject);
  });
}

describe('renegotiation', () => {
  it('a user who renegotiates presenting another certificate is refused, and never served as that certificate', async () => {
    const probe = await renegotiateAs(url, ca.certPem, alice, selfMadeAdmin, describeVolumes);
    // Today's bug: served as the self-made `admin` (Node kept `authorized` from the first handshake).
    expect(callers.filter((c) => c.startsWith('admin'))).toEqual([]);
    expect(probe.renegotiated).toBe(false);
    expect(probe.answer ?? '').not.toMatch(/^HTTP\/1\.1 200/);
  });

  it('renegotiating with the same certificate is refused too (no renegotiation at all)', async () => {
    const probe = await renegotiateAs(url, ca.certPem, alice, alice, describeVolumes);
    expect(probe.renegotiated).toBe(false);
  });
});

describe('cipher suites', () => {
  it('a TLS 1.2 client offering only RSA key exchange (no forward secrecy) fails the handshake', async () => {
    await expect(tlsOpen({ ...pem(alice), maxVersion: 'TLSv1.2', ciphers: 'AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA256' })).rejects.toThrow(/handshake failure|no shared cipher|alert/i);
  });

  it('a TLS 1.2 client offering ECDHE is served', async () => {
    const socket = await tlsOpen({ ...pem(alice), maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' });
    expect(socket.getCipher().name).toBe('ECDHE-RSA-AES128-GCM-SHA256');
    socket.destroy();
  });
});

describe('connections without a certificate', () => {
  it('are capped: the excess is closed at once, and users with a certificate are still served', async () => {
    const held = await Promise.all(Array.from({ length: ANONYMOUS_CAP }, () => tlsOpen({})));
    try {
      // One more: its handshake completes, then the server closes it without a word.
      const excess = await tlsOpen({});
      const data: Buffer[] = [];
      excess.on('data', (d: Buffer) => data.push(d));
      excess.on('error', () => {});
      await new Promise((r) => excess.once('close', r));
      expect(Buffer.concat(data).length).toBe(0);
      // The held ones are still open, and a user gets an answer.
      expect(held.every((s) => !s.destroyed)).toBe(true);
      const user = await tlsOpen(pem(alice));
      const answer = await rawPost(user, describeVolumes);
      expect(answer).toMatch(/^HTTP\/1\.1 200/);
      user.destroy();
    } finally {
      for (const s of held) s.destroy();
    }
  });
});

function pem(k: { keyPem: string; certPem: string }) {
  return { key: k.keyPem, cert: k.certPem };
}

/** One POST on an open socket; the raw answer once the server closes (Connection: close). */
function rawPost(socket: TLSSocket, body: string): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    socket.setEncoding('utf8').on('data', (d: string) => (text += d));
    socket.once('close', () => resolve(text));
    socket.on('error', () => {});
    socket.write(`POST /vbs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  });
}

describe('the identity of a request', () => {
  it('is the certificate verified at the handshake: a connection whose certificate has changed since is refused and closed', async () => {
    const { ConnectionIdentities } = await import('../../src/soap/tls-guard.js');
    const { X509Certificate } = await import('node:crypto');
    const asPeer = (pemText: string) => {
      const x = new X509Certificate(pemText);
      return { fingerprint256: x.fingerprint256, subject: { CN: /CN=([^\n]*)/.exec(x.subject)?.[1] }, valid_from: x.validFrom, valid_to: x.validTo, ext_key_usage: x.keyUsage ?? [], serialNumber: x.serialNumber };
    };
    let presented = asPeer(alice.certPem);
    let destroyed = false;
    const socket = { authorized: true, authorizationError: null, getPeerCertificate: () => presented, once() {}, destroy: () => void (destroyed = true) } as never;
    const identities = new ConnectionIdentities(1, silentLogger);
    identities.bind(socket);
    expect(identities.identify(socket, undefined)).toEqual({ peer: { name: 'alice', service: false, admin: false } });
    // What a renegotiation would do under Node: `authorized` stays, the certificate changes.
    presented = asPeer(selfMadeAdmin.certPem);
    expect(identities.identify(socket, undefined)).toEqual({ refusal: expect.stringMatching(/certificate/), claimed: 'admin' });
    expect(destroyed).toBe(true);
  });
});
