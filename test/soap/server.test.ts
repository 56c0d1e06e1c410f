import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
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
    // Repeated fields arrive as lists, an absent one as an empty list.
    expect(seen.at(-1)!.input).toEqual({ volumeId: ['vol-0123456789abcdef0', 'vol-0123456789abcdef1'], filter: [] });
    // The stub answers CreateVolume without the required volume record: refused as a broken service.
    await expect(client.call('CreateVolume', { size: 1, comment: 'a <b> & "c"' })).rejects.toMatchObject({ code: 'ServiceUnavailable' });
    expect(seen.at(-1)!.input).toEqual({ size: 1, comment: 'a <b> & "c"', tag: [] });
    client.close();
  });

  it('an unreachable service is ServiceUnavailable, named by its configured name; the address is only in the cause, for the log', async () => {
    const client = new SoapClient({ def: VBS_SERVICE, url: 'https://127.0.0.1:1/vbs', name: 'VmmDelegate localhost', tls: { key: alice.keyPem, cert: alice.certPem, ca: ca.certPem } });
    const err = (await client.call('DescribeVolumes', {}).catch((e: unknown) => e)) as VbsError;
    expect(err).toMatchObject({ code: 'ServiceUnavailable', message: 'VmmDelegate localhost could not be reached.' });
    expect((err.cause as Error).message).toContain('https://127.0.0.1:1/vbs');
    client.close();
  });

  it('a service that does not answer in time is named the same way', async () => {
    let release = () => {};
    const held = new Promise<void>((r) => (release = r));
    const slowHandlers = Object.fromEntries(Object.keys(VBS_SERVICE.operations).map((op) => [op, async () => (await held, { volume: [] })])) as Handlers;
    const slow = createSoapServer({ def: VBS_SERVICE, handlers: slowHandlers, tls: { key: server.keyPem, cert: server.certPem, ca: ca.certPem }, log: recordingLogger(), publicUrl: () => '' });
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', () => r()));
    const slowUrl = `https://127.0.0.1:${(slow.address() as AddressInfo).port}/vbs`;
    const client = new SoapClient({ def: VBS_SERVICE, url: slowUrl, name: 'VolumeDelegate store-1', timeoutMs: 200, tls: { key: alice.keyPem, cert: alice.certPem, ca: ca.certPem } });
    try {
      const err = (await client.call('DescribeVolumes', {}).catch((e: unknown) => e)) as VbsError;
      expect(err).toMatchObject({ code: 'ServiceUnavailable', message: 'VolumeDelegate store-1 did not answer within 200 ms.' });
      expect((err.cause as Error).message).toContain(slowUrl);
    } finally {
      release();
      client.close();
      slow.closeAllConnections();
      slow.close();
    }
  });
});

const faultcodeOf = (text: string) => /<faultcode>([^<]*)<\/faultcode>/.exec(text)?.[1];
const messageOf = (text: string) => /<tns:message>([^<]*)<\/tns:message>/.exec(text)?.[1];
const detachBody = (inner: string) => env(`<v:DetachVolume><v:volumeId>vol-0123456789abcdef0</v:volumeId>${inner}</v:DetachVolume>`);

describe('XML to the letter', () => {
  it('decodes numeric character references, decimal and hex, and the five predefined entities, once', async () => {
    const r = await post(env('<v:CreateVolume><v:size>1</v:size><v:comment>&#65;&#x42;&#x1F600; &lt;&amp;&gt;&quot;&apos; &amp;#67;</v:comment></v:CreateVolume>'));
    expect(r.status).toBe(200);
    expect(seen.at(-1)!.input).toEqual({ size: 1, comment: 'AB\u{1F600} <&>"\' &#67;', tag: [] });
  });

  it('reads CDATA as text, and ignores comments', async () => {
    await post(env('<v:CreateVolume><v:size>1</v:size><!-- a note --><v:comment><![CDATA[<b>&amp;</b>]]></v:comment></v:CreateVolume>'));
    expect(seen.at(-1)!.input).toEqual({ size: 1, comment: '<b>&amp;</b>', tag: [] });
  });

  it.each([
    ['an undeclared entity', '<v:CreateVolume><v:size>1</v:size><v:comment>&nbsp;</v:comment></v:CreateVolume>', /entity &amp;nbsp; is not declared/],
    ['a bare ampersand', '<v:CreateVolume><v:size>1</v:size><v:comment>a & b</v:comment></v:CreateVolume>', /bare &amp;/],
    ['an undeclared namespace prefix', '<v:CreateVolume><x:size>1</x:size></v:CreateVolume>', /prefix x is not declared|not well-formed/],
  ])('refuses %s with MalformedRequest', async (_what, inner, why) => {
    const before = seen.length;
    const r = await post(env(inner));
    expect(faultCode(r.text)).toBe('MalformedRequest');
    expect(messageOf(r.text)).toMatch(why);
    expect(seen.length).toBe(before);
  });

  it('refuses a character XML 1.0 cannot carry in any string field, raw or as a reference, before the handler runs', async () => {
    const before = seen.length;
    for (const comment of ['broken \uffff', 'broken \ufffe', 'broken &#xFFFF;', 'broken &#xFFFE;', 'nul &#0;', 'half &#xD800;']) {
      const r = await post(env(`<v:CreateVolume><v:size>1</v:size><v:comment>${comment}</v:comment></v:CreateVolume>`));
      expect(faultCode(r.text), comment).toBe('InvalidParameterValue');
      expect(messageOf(r.text)).toMatch(/parameter comment .*XML 1\.0/);
    }
    const r = await post(detachBody('<v:vmmHost>host&#xFFFF;</v:vmmHost>'));
    expect(faultCode(r.text)).toBe('InvalidParameterValue');
    expect(seen.length).toBe(before);
  });

  it('writes a stored value XML cannot carry with U+FFFD and logs it, so the rest of the listing still answers', async () => {
    const r = await post(env(`<v:DescribeVolumes><v:volumeId>${BAD_VOLUME}</v:volumeId></v:DescribeVolumes>`));
    expect(r.status).toBe(200);
    expect(r.text).toContain('<tns:comment>broken \ufffd comment</tns:comment>');
    expect(r.text).toContain('<tns:comment>fine</tns:comment>');
    expect(logLines.find((l) => l.requestId === r.headers['x-vbs-request-id'] && l.field === 'comment' && l.level === 'error')).toBeDefined();
  });

  it('decodes a body in the encoding it declares, or that its Content-Type names', async () => {
    const latin1 = Buffer.from(
      `<?xml version="1.0" encoding="ISO-8859-1"?>${env('<v:CreateVolume><v:size>1</v:size><v:comment>caf\u00e9 \u00bd</v:comment></v:CreateVolume>')}`,
      'latin1',
    );
    await post(latin1);
    expect(seen.at(-1)!.input).toEqual({ size: 1, comment: 'caf\u00e9 \u00bd', tag: [] });
    await post(Buffer.from(env('<v:CreateVolume><v:size>1</v:size><v:comment>\u00fcber</v:comment></v:CreateVolume>'), 'latin1'), alice, '/vbs', { 'content-type': 'text/xml; charset=ISO-8859-1' });
    expect(seen.at(-1)!.input).toEqual({ size: 1, comment: '\u00fcber', tag: [] });
    const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(env('<v:CreateVolume><v:size>1</v:size><v:comment>\u65e5\u672c</v:comment></v:CreateVolume>'), 'utf16le')]);
    await post(utf16);
    expect(seen.at(-1)!.input).toEqual({ size: 1, comment: '\u65e5\u672c', tag: [] });
  });

  it('refuses a body that is not valid in its encoding, or in an encoding it cannot decode, never mangling it', async () => {
    const before = seen.length;
    const r1 = await post(Buffer.concat([Buffer.from(env('').replace('</soap:Body></soap:Envelope>', '')), Buffer.from('<v:CreateVolume><v:size>1</v:size><v:comment>caf'), Buffer.from([0xe9]), Buffer.from('</v:comment></v:CreateVolume></soap:Body></soap:Envelope>')]));
    expect(faultCode(r1.text)).toBe('MalformedRequest');
    expect(messageOf(r1.text)).toMatch(/not valid utf-8/);
    const r2 = await post(`<?xml version="1.0" encoding="x-klingon"?>${env('<v:DescribeVolumes/>')}`);
    expect(faultCode(r2.text)).toBe('MalformedRequest');
    expect(messageOf(r2.text)).toMatch(/encoding x-klingon is not supported; send UTF-8/);
    expect(seen.length).toBe(before);
  });

  it('refuses a SOAPAction that names another operation than the body, and accepts the WSDL\'s or none', async () => {
    const before = seen.length;
    const r = await post(env('<v:DescribeVolumes/>'), alice, '/vbs', { soapaction: '"urn:vbs:2026:vbs/DeleteVolume"' });
    expect(faultCode(r.text)).toBe('MalformedRequest');
    expect(messageOf(r.text)).toMatch(/SOAPAction .* names another operation/);
    expect(seen.length).toBe(before);
    for (const action of ['"urn:vbs:2026:vbs/DescribeVolumes"', '""', 'DescribeVolumes']) {
      expect((await post(env('<v:DescribeVolumes/>'), alice, '/vbs', { soapaction: action })).status, action).toBe(200);
    }
  });

  it('answers a SOAP 1.2 envelope with a VersionMismatch fault', async () => {
    const soap12 = '<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope" xmlns:v="urn:vbs:2026:vbs"><e:Body><v:DescribeVolumes/></e:Body></e:Envelope>';
    const r = await post(soap12, alice, '/vbs', { 'content-type': 'application/soap+xml; charset=utf-8' });
    expect(faultcodeOf(r.text)).toBe('soap:VersionMismatch');
    expect(faultCode(r.text)).toBe('VersionMismatch');
  });

  it('answers a mustUnderstand header it does not know with a MustUnderstand fault; optional headers are ignored', async () => {
    const withHeader = (attrs: string) =>
      `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:v="urn:vbs:2026:vbs" xmlns:h="urn:example:tx"><soap:Header><h:Transaction ${attrs}>5</h:Transaction></soap:Header><soap:Body><v:DescribeVolumes/></soap:Body></soap:Envelope>`;
    const before = seen.length;
    const r = await post(withHeader('soap:mustUnderstand="1"'));
    expect(faultcodeOf(r.text)).toBe('soap:MustUnderstand');
    expect(messageOf(r.text)).toMatch(/Transaction \(urn:example:tx\)/);
    expect(seen.length).toBe(before);
    expect((await post(withHeader('soap:mustUnderstand="0"'))).status).toBe(200);
    expect((await post(withHeader('soap:mustUnderstand="1" soap:actor="urn:someone-else"'))).status).toBe(200);
  });

  it('decodes an optional field sent as xsi:nil="true" as absent, and a required one as missing', async () => {
    const xsi = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"';
    await post(detachBody(`<v:vmmHost ${xsi} xsi:nil="true"/><v:vmId ${xsi} xsi:nil="1"></v:vmId>`));
    expect(seen.at(-1)!.input).toEqual({ volumeId: 'vol-0123456789abcdef0' });
    const r = await post(env(`<v:DeleteVolume><v:volumeId ${xsi} xsi:nil="true"/></v:DeleteVolume>`));
    expect(faultCode(r.text)).toBe('MissingParameter');
    // An empty element is an empty string, not absent.
    await post(detachBody('<v:vmmHost/>'));
    expect(seen.at(-1)!.input).toEqual({ volumeId: 'vol-0123456789abcdef0', vmmHost: '' });
  });

  it('refuses an operation element outside the service namespace', async () => {
    const r = await post('<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><DescribeVolumes xmlns="urn:other"/></soap:Body></soap:Envelope>');
    expect(faultCode(r.text)).toBe('InvalidParameterValue');
  });
});

describe('request ids', () => {
  it('every answer carries one: in a header, in the fault detail, in the handler context and on its log lines', async () => {
    const ok = await post(env('<v:DescribeVolumes/>'));
    const id = ok.headers['x-vbs-request-id'] as string;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(seen.at(-1)!.requestId).toBe(id);
    const fault = await post(env('<v:DeleteVolume><v:volumeId>vol-0123456789abcdef0</v:volumeId></v:DeleteVolume>'));
    const faultId = fault.headers['x-vbs-request-id'] as string;
    expect(faultId).not.toBe(id);
    expect(fault.text).toContain(`<tns:requestId>${faultId}</tns:requestId>`);
    expect(logLines.find((l) => l.requestId === faultId && l.msg === 'internal error')).toBeDefined();
    const refused = await post(env('<v:DescribeVolumes/>'), null);
    expect(refused.text).toContain(`<tns:requestId>${refused.headers['x-vbs-request-id']}</tns:requestId>`);
  });

  it('our client reports the id with a fault, and forwards the id of the request it serves', async () => {
    const client = new SoapClient({ def: VBS_SERVICE, url, tls: { key: alice.keyPem, cert: alice.certPem, ca: ca.certPem } });
    const err = (await client.call('DescribeSnapshots', {}).catch((e: unknown) => e)) as VbsError;
    expect(err.requestId).toBe(seen.at(-1)!.requestId);
    client.close();
    // A service's call, made while serving request "req-from-front", keeps that id.
    const asService = new SoapClient({ def: VBS_SERVICE, url, tls: { key: serviceCert.keyPem, cert: serviceCert.certPem, ca: ca.certPem } });
    const e2 = (await requestScope.run({ requestId: 'req-from-front' }, () => asService.call('DescribeVolumes', {})).catch((e: unknown) => e)) as VbsError;
    // (The front itself refuses service certificates; the id still comes back on the refusal.)
    expect(e2).toMatchObject({ code: 'AuthFailure', requestId: 'req-from-front' });
    asService.close();
  });

  it('a user cannot name the request: a forwarded id from a tenant is replaced', async () => {
    const r = await post(env('<v:DescribeVolumes/>'), alice, '/vbs', { 'x-vbs-request-id': 'chosen-by-alice' });
    expect(r.headers['x-vbs-request-id']).not.toBe('chosen-by-alice');
  });
});

describe('who may call the front', () => {
  it('refuses a service certificate as a tenant', async () => {
    const r = await post(env('<v:DescribeVolumes/>'), serviceCert);
    expect(faultCode(r.text)).toBe('AuthFailure');
    expect(messageOf(r.text)).toMatch(/belongs to a VBS service/);
  });

  it('refuses a user certificate that claims a name reserved for services', async () => {
    const r = await post(env('<v:DescribeVolumes/>'), forgedFront);
    expect(faultCode(r.text)).toBe('AuthFailure');
  });
});

describe('TLS', () => {
  const connect = (version: 'TLSv1.1' | 'TLSv1.2') =>
    new Promise<string>((resolve) => {
      const { port } = srv.address() as AddressInfo;
      // SECLEVEL=0 lets this client offer TLS 1.1 at all (OpenSSL 3 disables it by default).
      const socket = tlsConnect({ host: '127.0.0.1', port, ca: ca.certPem, key: alice.keyPem, cert: alice.certPem, minVersion: version, maxVersion: version, ciphers: 'DEFAULT@SECLEVEL=0' }, () => {
        resolve(`connected ${socket.getProtocol()}`);
        socket.end();
      });
      socket.on('error', (err: NodeJS.ErrnoException) => resolve(`refused ${err.code ?? err.message}`));
    });

  it('refuses a TLS 1.1 client and serves a TLS 1.2 one', async () => {
    expect(await connect('TLSv1.1')).toMatch(/^refused ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION$/);
    expect(await connect('TLSv1.2')).toBe('connected TLSv1.2');
  });
});

describe('committed WSDL', () => {
  it('matches the service tables (run `npm run wsdl` after changing them)', () => {
    for (const { file, text } of committedWsdl()) expect(readFileSync(file, 'utf8'), file).toBe(text);
  });
});
