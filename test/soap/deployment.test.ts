import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VbsError } from '../../src/core/errors.js';
import { createCa, isServiceCertificate, type KeyAndCert } from '../../src/pki/certificates.js';
import { VBS_SERVICE } from '../../src/services/vbs.js';
import { VMM_DELEGATE_SERVICE } from '../../src/services/vmm-delegate.js';
import { VOLUME_DELEGATE_SERVICE } from '../../src/services/volume-delegate.js';
import { SoapClient } from '../../src/soap/client.js';
import type { ServiceDefinition } from '../../src/soap/schema.js';
import { assignVms, eventually, startVbs, type Vbs } from '../e2e/harness.js';
import { opensslIssue } from '../pki/openssl.js';

/**
 * The SOAP layer's security through a real deployment (`vbs up`: three
 * processes, mutual TLS): what is refused before anything is stored, who may
 * call whom, and the request id that ties a user's fault to the services' logs.
 */
let vbs: Vbs;
let ca: KeyAndCert;
const clients: SoapClient[] = [];
const pem = (f: string) => readFileSync(join(vbs.dir, 'pki', f), 'utf8');
const config = (service: string) => JSON.parse(readFileSync(join(vbs.dir, `${service}.json`), 'utf8')) as { listen: { port: number } };
const urlOf = (service: string, def: ServiceDefinition) => `https://127.0.0.1:${config(service).listen.port}${def.path}`;
const client = (def: ServiceDefinition, url: string, who: KeyAndCert) => {
  const c = new SoapClient({ def, url, tls: { key: who.keyPem, cert: who.certPem, ca: ca.certPem } });
  clients.push(c);
  return c;
};
const fault = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e as VbsError);
const log = (service: string) => {
  const f = join(vbs.dir, 'logs', `${service}.log`);
  return existsSync(f) ? readFileSync(f, 'utf8') : '';
};

/** A deployment folder from before services were marked: its CA, and service certificates without the mark. */
let oldCa: KeyAndCert;
function seedOldPki(): string {
  const dir = mkdtempSync(join(tmpdir(), 'vbs-soapsec-'));
  const pki = join(dir, 'pki');
  mkdirSync(pki, { recursive: true, mode: 0o700 });
  oldCa = createCa();
  writeFileSync(join(pki, 'ca.crt'), oldCa.certPem);
  writeFileSync(join(pki, 'ca.key'), oldCa.keyPem, { mode: 0o600 });
  for (const [file, cn] of [['front', 'vbs-front'], ['volume-delegate', 'vbs-volume-delegate'], ['vmm-delegate', 'vbs-vmm-delegate']] as const) {
    const old = opensslIssue(oldCa, `/CN=${cn}/O=VBS`);
    writeFileSync(join(pki, `${file}.crt`), old.certPem);
    writeFileSync(join(pki, `${file}.key`), old.keyPem, { mode: 0o600 });
  }
  return dir;
}

beforeAll(async () => {
  vbs = await startVbs([], seedOldPki());
  ca = { certPem: pem('ca.crt'), keyPem: pem('ca.key') };
});
afterAll(async () => {
  for (const c of clients) c.close();
  await vbs?.stop();
});

describe('an existing deployment folder', () => {
  it('keeps its CA, and its service certificates are issued again with the service mark (every test here runs on it)', () => {
    expect(pem('ca.crt')).toBe(oldCa.certPem);
    for (const name of ['front', 'volume-delegate', 'vmm-delegate']) expect(isServiceCertificate(pem(`${name}.crt`)), name).toBe(true);
  });
});

describe('a deployment refuses what XML cannot carry before storing it', () => {
  it('a comment with U+FFFF or U+FFFE is a client fault, nothing is stored, and listings keep working', async () => {
    const alice = vbs.soap('alice');
    for (const comment of ['bricks \uffff listings', 'bricks \ufffe too']) {
      // Our client writes what it is given (with U+FFFD for what XML cannot carry),
      // so the raw character is sent the way another client would: in the body.
      const body = `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:v="urn:vbs:2026:vbs"><soap:Body><v:CreateVolume><v:size>1</v:size><v:comment>${comment}</v:comment></v:CreateVolume></soap:Body></soap:Envelope>`;
      const r = await rawPost(vbs.url, body, pem('user-alice.key'), pem('user-alice.crt'));
      expect(r.text).toContain('<faultstring>InvalidParameterValue</faultstring>');
      expect(r.text).toMatch(/parameter comment/);
    }
    expect(await alice.call('DescribeVolumes', {})).toEqual({ volume: [] });
    const created = (await alice.call('CreateVolume', { size: 1, comment: 'fine' })) as { volume: { volumeId: string } };
    const listed = (await alice.call('DescribeVolumes', {})) as { volume: { volumeId: string; comment: string }[] };
    expect(listed.volume.map((v) => [v.volumeId, v.comment])).toEqual([[created.volume.volumeId, 'fine']]);
  });

  it('a record stored before the validators refused such characters does not take the listing down', async () => {
    const carol = vbs.soap('carol');
    const a = (await carol.call('CreateVolume', { size: 1, comment: 'will be broken' })) as { volume: { volumeId: string } };
    const b = (await carol.call('CreateVolume', { size: 1, comment: 'fine' })) as { volume: { volumeId: string } };
    // What an older VBS let in, written into the front's database as it would have stored it.
    const db = new Database(join(vbs.dir, 'vbs.db'));
    try {
      db.prepare('UPDATE volumes SET comment = ? WHERE volume_id = ?').run('broken \uffff here', a.volume.volumeId);
    } finally {
      db.close();
    }
    const listed = (await carol.call('DescribeVolumes', {})) as { volume: { volumeId: string; comment: string }[] };
    expect(Object.fromEntries(listed.volume.map((v) => [v.volumeId, v.comment]))).toEqual({ [a.volume.volumeId]: 'broken \ufffd here', [b.volume.volumeId]: 'fine' });
    await eventually(async () => (/a stored value holds a character XML cannot carry/.test(log('front')) ? true : undefined), 10_000);
  });
});

describe('service identities', () => {
  it('a user certificate with CN=vbs-front signed by the deployment CA is refused by each delegate', async () => {
    const forged = opensslIssue(ca, '/CN=vbs-front/O=Tenant');
    const volume = client(VOLUME_DELEGATE_SERVICE, urlOf('volume-delegate', VOLUME_DELEGATE_SERVICE), forged);
    const vmm = client(VMM_DELEGATE_SERVICE, urlOf('vmm-delegate', VMM_DELEGATE_SERVICE), forged);
    expect(await fault(volume.call('DescribeObjects', {}))).toMatchObject({ code: 'UnauthorizedOperation' });
    expect(await fault(vmm.call('ListDisks', {}))).toMatchObject({ code: 'UnauthorizedOperation' });
    // The front's own certificate, which the CA marked as a service's, is served.
    const front = { keyPem: pem('front.key'), certPem: pem('front.crt') };
    expect(await client(VOLUME_DELEGATE_SERVICE, urlOf('volume-delegate', VOLUME_DELEGATE_SERVICE), front).call('DescribeObjects', {})).toHaveProperty('object');
  });

  it('the front refuses a service certificate, and a user certificate in a service name, as a tenant', async () => {
    for (const name of ['front', 'volume-delegate', 'vmm-delegate']) {
      const service = { keyPem: pem(`${name}.key`), certPem: pem(`${name}.crt`) };
      expect(await fault(client(VBS_SERVICE, vbs.url, service).call('DescribeVolumes', {})), name).toMatchObject({ code: 'AuthFailure' });
    }
    const forged = opensslIssue(ca, '/CN=vbs-front/O=Tenant');
    expect(await fault(client(VBS_SERVICE, vbs.url, forged).call('DescribeVolumes', {}))).toMatchObject({ code: 'AuthFailure' });
  });
});

describe('a failed request a user can hand to an operator', () => {
  it('the fault names the host and a short reason, carries the request id, and every service logged that id with the details', async () => {
    const bob = vbs.soap('bob');
    const { volume } = (await bob.call('CreateVolume', { size: 1 })) as { volume: { volumeId: string } };
    await eventually(async () => (((await bob.call('DescribeVolumes', { volumeId: [volume.volumeId] })) as { volume: { status: string }[] }).volume[0]!.status === 'available' ? true : undefined));
    // vm9 does not exist on the simulated host: the hypervisor tool fails (bob was given it, so the front lets him try).
    await assignVms(vbs.soap(), 'bob', 'localhost', ['vm9']);
    const err = await fault(bob.call('AttachVolume', { volumeId: volume.volumeId, vmmHost: 'localhost', vmId: 'vm9', device: 'xvdf' }));
    expect(err).toBeInstanceOf(VbsError);
    expect(err!.code).toBe('OperationFailed');
    expect(err!.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(err!.message).toMatch(/exited with \d+ on localhost\.$/);
    expect(err!.message).not.toMatch(/127\.0\.0\.1|vm9'? does not exist|Error:/i);
    const id = err!.requestId!;
    await eventually(async () => (log('front').includes(id) && log('vmm-delegate').includes(id) ? true : undefined), 10_000);
    const delegateLines = log('vmm-delegate')
      .split('\n')
      .filter((l) => l.includes(id))
      .map((l) => JSON.parse(l) as { msg: string; stderr?: string; argv?: string[] });
    const failed = delegateLines.find((l) => l.msg === 'host command failed');
    expect(failed?.stderr).toBeTruthy();
    expect(failed?.argv?.join(' ')).toContain('vm9');
  });

  it('the CLI prints the request id with a fault', async () => {
    const r = await vbs.cli('delete-volume', 'vol-00000000000000000');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^vbs: InvalidVolume\.NotFound: .*\(request id [0-9a-f-]{36}\)$/m);
  });
});

describe('TLS', () => {
  it('every service of the deployment refuses TLS 1.1 and speaks TLS 1.2', async () => {
    for (const service of ['front', 'volume-delegate', 'vmm-delegate']) {
      const port = config(service).listen.port;
      expect(await handshake(port, 'TLSv1.1'), service).toBe('refused ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION');
      expect(await handshake(port, 'TLSv1.2'), service).toBe('TLSv1.2');
    }
  });
});

function handshake(port: number, version: 'TLSv1.1' | 'TLSv1.2'): Promise<string> {
  return new Promise((resolve) => {
    // SECLEVEL=0: OpenSSL 3 would not even offer TLS 1.1 otherwise; the server must be the one to refuse.
    const s = tlsConnect({ host: '127.0.0.1', port, ca: ca.certPem, minVersion: version, maxVersion: version, ciphers: 'DEFAULT@SECLEVEL=0', rejectUnauthorized: false }, () => {
      resolve(String(s.getProtocol()));
      s.end();
    });
    s.on('error', (e: NodeJS.ErrnoException) => resolve(`refused ${e.code ?? e.message}`));
  });
}

async function rawPost(url: string, body: string, key: string, cert: string): Promise<{ status: number; text: string }> {
  const { request } = await import('node:https');
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', key, cert, ca: ca.certPem, agent: false, headers: { 'content-type': 'text/xml; charset=utf-8' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
