import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Logger } from '../../src/core/log.js';
import { VbsError } from '../../src/core/errors.js';
import { requestScope } from '../../src/core/request-context.js';
import { createCa, issueCertificate, type KeyAndCert } from '../../src/pki/certificates.js';
import { VBS_SERVICE } from '../../src/services/vbs.js';
import { SoapClient } from '../../src/soap/client.js';
import { createSoapServer, type CallContext, type Handlers } from '../../src/soap/server.js';
import { committedWsdl } from '../../src/tools/write-wsdl.js';
import { opensslIssue } from '../pki/openssl.js';

const ca = createCa('test CA');
const server = issueCertificate(ca, { commonName: 'vbs-front', use: 'server', hosts: ['127.0.0.1'], service: true });
const alice = issueCertificate(ca, { commonName: 'alice', use: 'client' });
const stranger = issueCertificate(createCa('other CA'), { commonName: 'alice', use: 'client' });
/** A service's certificate (the CA's mark), and a user's that claims a service's name. */
const serviceCert = issueCertificate(ca, { commonName: 'vbs-volume-delegate', use: 'server+client', service: true });
const forgedFront = opensslIssue(ca, '/CN=vbs-front/O=Tenant');

/** A stored volume whose comment holds U+FFFF: what the old validator let in. */
const BAD_VOLUME = 'vol-0bad0bad0bad0bad0';
const badRecord = { volumeId: BAD_VOLUME, size: 1, comment: 'broken \uffff comment', status: 'available', createTime: new Date(0), owner: 'alice', attachments: [] };

const seen: { op: string; input: unknown; caller: string; requestId: string }[] = [];
const handlers: Handlers = Object.fromEntries(
  Object.keys(VBS_SERVICE.operations).map((op) => [
    op,
    (input: Record<string, unknown>, ctx: CallContext) => {
      seen.push({ op, input, caller: ctx.caller, requestId: ctx.requestId });
      if (op === 'DeleteVolume') throw new Error('secret internal detail /etc/vbs');
      if (op === 'DescribeSnapshots') throw new VbsError('InvalidSnapshot.NotFound', 'no such snapshot');
      if (op === 'DescribeVolumes') return { volume: (input.volumeId as string[]).includes(BAD_VOLUME) ? [badRecord, { ...badRecord, comment: 'fine' }] : [] };
      return { return: true };
    },
  ]),
) as Handlers;

/** The service log: every line with the logger's fields. */
const logLines: Record<string, unknown>[] = [];
function recordingLogger(base: object = {}): Logger {
  const emit = (level: string) => (msg: string, fields: object = {}) => void logLines.push({ level, msg, ...base, ...fields });
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error'), child: (f) => recordingLogger({ ...base, ...f }) };
}

let url = '';
const srv = createSoapServer({ def: VBS_SERVICE, handlers, tls: { key: server.keyPem, cert: server.certPem, ca: ca.certPem }, log: recordingLogger(), publicUrl: () => url, maxBodyBytes: 64 * 1024 });

beforeAll(async () => {
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  url = `https://127.0.0.1:${(srv.address() as AddressInfo).port}/vbs`;
});
afterAll(() => {
  srv.closeAllConnections();
  srv.close();
});

interface Answer {
  status: number;
  text: string;
  headers: Record<string, string | string[] | undefined>;
}

function post(body: string | Buffer, who: KeyAndCert | null = alice, path = '/vbs', headers: Record<string, string | number> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url.replace('/vbs', '')}${path}`,
      { method: 'POST', ca: ca.certPem, key: who?.keyPem, cert: who?.certPem, agent: false, headers: { 'content-type': 'text/xml', ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const env = (inner: string) =>
  `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:v="urn:vbs:2026:vbs"><soap:Body>${inner}</soap:Body></soap:Envelope>`;
const faultCode = (text: string) => /<faultstring>([^<]*)<\/faultstring>/.exec(text)?.[1];

describe('SOAP service over mutual TLS', () => {
  it('decodes a request, passes the certificate subject as the caller, and answers', async () => {
    const r = await post(env('<v:AttachVolume><v:volumeId>vol-0123456789abcdef0</v:volumeId><v:vmmHost>h</v:vmmHost><v:vmId>vm1</v:vmId><v:device>xvdb</v:device></v:AttachVolume>'));
    expect(r.status).toBe(200);
    expect(seen.at(-1)).toEqual({ op: 'AttachVolume', caller: 'alice', requestId: r.headers['x-vbs-request-id'], input: { volumeId: 'vol-0123456789abcdef0', vmmHost: 'h', vmId: 'vm1', device: 'xvdb' } });
  });

  it('refuses a caller without a client certificate with AuthFailure', async () => {
    const r = await post(env('<v:DescribeVolumes/>'), null);
    expect(faultCode(r.text)).toBe('AuthFailure');
    expect(r.text).toContain('<faultcode>soap:Client</faultcode>');
  });

  it('refuses a certificate from another CA', async () => {
    const r = await post(env('<v:DescribeVolumes/>'), stranger);
    expect(faultCode(r.text)).toBe('AuthFailure');
  });

  it.each([
    ['malformed XML', '<soap:Envelope><soap:Body><v:CreateVolume>'],
    ['a DOCTYPE (entity expansion)', `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>${env('<v:DescribeVolumes/>')}`],
    ['no envelope', '<hello/>'],
  ])('refuses %s with a client fault', async (_what, body) => {
    const r = await post(body);
    expect(r.status).toBe(500);
    expect(faultCode(r.text)).toBe('MalformedRequest');
  });

  it('refuses an unknown operation, unknown elements, repeated and mistyped values', async () => {
    expect(faultCode((await post(env('<v:FormatDisk/>'))).text)).toBe('InvalidParameterValue');
    expect(faultCode((await post(env('<v:DeleteSnapshot><v:snapshotId>s</v:snapshotId><v:force>1</v:force></v:DeleteSnapshot>'))).text)).toBe('InvalidParameterValue');
    expect(faultCode((await post(env('<v:DeleteSnapshot><v:snapshotId>a</v:snapshotId><v:snapshotId>b</v:snapshotId></v:DeleteSnapshot>'))).text)).toBe('InvalidParameterValue');
    expect(faultCode((await post(env('<v:CreateVolume><v:size>notanumber</v:size></v:CreateVolume>'))).text)).toBe('InvalidParameterValue');
    expect(faultCode((await post(env('<v:CreateVolume/>'))).text)).toBe('MissingParameter');
  });

  it('answers a body over the limit with a 413 RequestTooLarge that arrives before the connection closes', async () => {
    // 5 MB with a Content-Length (refused on its header), and again streamed in chunks without one.
    const big = env(`<v:CreateVolume><v:size>1</v:size><v:comment>${'x'.repeat(5_000_000)}</v:comment></v:CreateVolume>`);
    for (let i = 0; i < 3; i++) {
      const r = await post(big, alice, '/vbs', { 'content-length': Buffer.byteLength(big) });
      expect(r.status).toBe(413);
      expect(faultCode(r.text)).toBe('RequestTooLarge');
      expect(r.headers.connection).toBe('close');
    }
    const chunked = await new Promise<Answer>((resolve, reject) => {
      const req = request(url, { method: 'POST', ca: ca.certPem, key: alice.keyPem, cert: alice.certPem, agent: false, headers: { 'content-type': 'text/xml' } }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text, headers: res.headers }));
      });
      req.on('error', reject);
      for (let i = 0; i < 20; i++) req.write('x'.repeat(100_000));
      req.end();
    });
    expect(chunked.status).toBe(413);
    expect(faultCode(chunked.text)).toBe('RequestTooLarge');
  });

  it('never shows an internal error to the caller', async () => {
    const r = await post(env('<v:DeleteVolume><v:volumeId>vol-0123456789abcdef0</v:volumeId></v:DeleteVolume>'));
    expect(faultCode(r.text)).toBe('InternalError');
    expect(r.text).not.toContain('secret');
    expect(r.text).not.toContain('/etc/vbs');
    expect(r.text).toContain('<faultcode>soap:Server</faultcode>');
  });

  it('serves its WSDL with its own address', async () => {
    const text = await new Promise<string>((resolve, reject) => {
      request(`${url}?wsdl`, { ca: ca.certPem, key: alice.keyPem, cert: alice.certPem }, (res) => {
        let t = '';
        res.on('data', (c) => (t += c));
        res.on('end', () => resolve(t));
      })
        .on('error', reject)
        .end();
    });
    expect(text).toContain(`<soap:address location="${url}"/>`);
    expect(text).toContain('<wsdl:operation name="AttachVolume">');
  });

  it('our client maps faults to VbsError codes and sends what the server decodes', async () => {
    const client = new SoapClient({ def: VBS_SERVICE, url, tls: { key: alice.keyPem, cert: alice.certPem, ca: ca.certPem } });
    await expect(client.call('DescribeSnapshots', { snapshotId: ['snap-0123456789abcdef0'] })).rejects.toMatchObject({ code: 'InvalidSnapshot.NotFound', message: 'no such snapshot' });
    expect(await client.call('DescribeVolumes', { volumeId: ['vol-0123456789abcdef0', 'vol-0123456789abcdef1'] })).toEqual({ volume: [] });
    expect(seen.at(-1)!.input).toEqual({ volumeId: ['vol-0123456789abcdef0', 'vol-0123456789abcdef1'] });
    // The stub answers CreateVolume without the required volume record: refused as a broken service.
    await expect(client.call('CreateVolume', { size: 1, comment: 'a <b> & "c"' })).rejects.toMatchObject({ code: 'ServiceUnavailable' });
    expect(seen.at(-1)!.input).toEqual({ size: 1, comment: 'a <b> & "c"' });
    client.close();
  });

  it('an unreachable service is ServiceUnavailable', async () => {
    const client = new SoapClient({ def: VBS_SERVICE, url: 'https://127.0.0.1:1/vbs', tls: { key: alice.keyPem, cert: alice.certPem, ca: ca.certPem } });
    await expect(client.call('DescribeVolumes', {})).rejects.toMatchObject({ code: 'ServiceUnavailable' });
  });
});

describe('committed WSDL', () => {
  it('matches the service tables (run `npm run wsdl` after changing them)', () => {
    for (const { file, text } of committedWsdl()) expect(readFileSync(file, 'utf8'), file).toBe(text);
  });
});
