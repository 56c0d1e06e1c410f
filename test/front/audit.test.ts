import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/log.js';
import { AuditFile, AuditTrail, type AuditEntry } from '../../src/front/audit.js';
import { createCa, issueCertificate, type KeyAndCert } from '../../src/pki/certificates.js';
import { VBS_SERVICE } from '../../src/services/vbs.js';
import { createSoapServer, type Handlers } from '../../src/soap/server.js';
import { envelope } from '../../src/soap/xml.js';
import { opensslIssue } from '../pki/openssl.js';

/**
 * The front's audit log (issue 17 item 5): the id a create made, what a
 * refused certificate claims (marked unverified), and a line for every
 * answer: foreign certificates, other paths and methods, bodies that never
 * arrived. The SOAP server and the audit trail wired as the front wires them.
 */
const ca = createCa('test CA');
const server = issueCertificate(ca, { commonName: 'vbs-front', use: 'server', hosts: ['127.0.0.1'], service: true });
const alice = issueCertificate(ca, { commonName: 'alice', use: 'client' });
const expired = issueCertificate(ca, { commonName: 'olga', use: 'client', validity: { notBefore: new Date(Date.now() - 3 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) } });
const serverOnly = issueCertificate(ca, { commonName: 'sam', use: 'server', hosts: ['127.0.0.1'] });
const foreign = issueCertificate(createCa('someone else'), { commonName: 'fred', use: 'client' });
const twoNames = opensslIssue(ca, '/CN=alice/CN=admin');

const SNAP = 'snap-0123456789abcdef0';
const VOL = 'vol-0123456789abcdef0';
const handlers = Object.fromEntries(
  Object.keys(VBS_SERVICE.operations).map((op) => [op, () => (op === 'CreateSnapshot' ? { snapshot: { snapshotId: SNAP, volumeId: VOL, status: 'pending', startTime: new Date(0), progress: 0, owner: 'alice' } } : { return: true })]),
) as unknown as Handlers;

const dir = mkdtempSync(join(tmpdir(), 'vbs-audit-'));
const audit = new AuditTrail(new AuditFile(join(dir, 'audit.log')));
const BODY_TIMEOUT_MS = 1_000;
let url = '';
const srv = createSoapServer({ def: VBS_SERVICE, handlers, tls: { key: server.keyPem, cert: server.certPem, ca: ca.certPem }, log: silentLogger, publicUrl: () => url, beforeAnswer: (o) => audit.record(o), bodyTimeoutMs: BODY_TIMEOUT_MS });

beforeAll(async () => {
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  url = `https://127.0.0.1:${(srv.address() as AddressInfo).port}/vbs`;
});
afterAll(() => {
  srv.closeAllConnections();
  srv.close();
  audit.close();
  rmSync(dir, { recursive: true, force: true });
});

const lines = () => readFileSync(join(dir, 'audit.log'), 'utf8').trimEnd().split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditEntry);
const lineOf = (requestId: string | undefined) => lines().find((e) => e.requestId === requestId);

function send(who: KeyAndCert, opts: { method?: string; path?: string; body?: string } = {}): Promise<{ status: number; requestId?: string; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url.replace('/vbs', '')}${opts.path ?? '/vbs'}`, { method: opts.method ?? 'POST', ca: ca.certPem, key: who.keyPem, cert: who.certPem, agent: false, headers: { 'content-type': 'text/xml' } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, requestId: res.headers['x-vbs-request-id'] as string | undefined, text }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}
const op = (name: string, inner = '') => envelope(VBS_SERVICE.namespace, `<tns:${name}>${inner}</tns:${name}>`);

describe('the audit log', () => {
  it("records the snapshot a CreateSnapshot made, not its source volume", async () => {
    const r = await send(alice, { body: op('CreateSnapshot', `<tns:volumeId>${VOL}</tns:volumeId>`) });
    expect(r.status).toBe(200);
    expect(lineOf(r.requestId)).toMatchObject({ caller: 'alice', operation: 'CreateSnapshot', result: 'ok', resource: SNAP });
  });

  it.each([
    ['expired', expired, 'olga'],
    ['not issued for clients', serverOnly, 'sam'],
    ['signed by another CA', foreign, 'fred'],
    ['with two common names', twoNames, 'alice + admin'],
  ])('records a certificate refused as %s, with the name it claims marked unverified', async (_what, who, claimed) => {
    const r = await send(who, { body: op('DeleteVolume', `<tns:volumeId>${VOL}</tns:volumeId>`) });
    expect(r.text).toContain('<faultstring>AuthFailure</faultstring>');
    expect(lineOf(r.requestId)).toEqual({ time: expect.any(String), requestId: r.requestId, caller: null, unverifiedCaller: claimed, admin: false, operation: null, result: 'AuthFailure' });
  });

  it('records answers to another path and another method', async () => {
    const notFound = await send(alice, { path: '/elsewhere', body: op('DescribeVolumes') });
    expect(notFound.status).toBe(404);
    expect(lineOf(notFound.requestId)).toMatchObject({ caller: 'alice', operation: null, result: 'HTTP 404' });
    const wrongMethod = await send(alice, { method: 'PUT', body: op('DescribeVolumes') });
    expect(wrongMethod.status).toBe(405);
    expect(lineOf(wrongMethod.requestId)).toMatchObject({ caller: 'alice', operation: null, result: 'HTTP 405' });
  });

  it('records a request whose body does not arrive in time, answers it RequestTimeout and closes the connection', async () => {
    const port = Number(new URL(url).port);
    const socket = connect({ host: '127.0.0.1', port, ca: ca.certPem, key: alice.keyPem, cert: alice.certPem });
    let answer = '';
    socket.setEncoding('utf8').on('data', (d: string) => (answer += d));
    const closed = new Promise((r) => socket.once('close', r));
    // Headers promise 1,000 bytes; 10 come, then nothing.
    socket.write(`POST /vbs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\nContent-Length: 1000\r\n\r\n<soap:Env>`);
    await closed;
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
    expect(answer).toContain('<faultstring>RequestTimeout</faultstring>');
    const requestId = /x-vbs-request-id: *(\S+)/i.exec(answer)?.[1];
    expect(lineOf(requestId)).toMatchObject({ caller: 'alice', operation: null, result: 'RequestTimeout' });
  });
});
