import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCa, issueCertificate } from '../../src/pki/certificates.js';
import { UserRegistry } from '../../src/pki/users.js';
import { INSTANCE_RESOLVER_SERVICE } from '../../src/services/instance-resolver.js';
import { VBS_SERVICE } from '../../src/services/vbs.js';
import { VMM_DELEGATE_SERVICE } from '../../src/services/vmm-delegate.js';
import { VOLUME_DELEGATE_SERVICE } from '../../src/services/volume-delegate.js';
import type { ServiceDefinition } from '../../src/soap/schema.js';
import { SoapClient } from '../../src/soap/client.js';
import { envelope } from '../../src/soap/xml.js';
import { renegotiateAs } from '../soap/renegotiate.js';
import { eventually, startVbs, VBS_BIN, type Vbs } from './harness.js';

/**
 * The identity half of the authorization matrix, on one real `vbs up`: users
 * made by `vbs admin user` on its data folder, requests sent raw (HTTPS,
 * curl, openssl) to every service, a revocation reaching running services.
 */
const run = promisify(execFile);

interface Identity {
  readonly key?: string;
  readonly cert?: string;
}

let vbs: Vbs;
let ca: string;
let ports: { service: string; url: string; def: ServiceDefinition }[];
const ids: Record<string, Identity> = {};

async function adminUser(...args: string[]) {
  return run(process.execPath, [VBS_BIN, 'admin', 'user', ...args, '--data', vbs.dir], { timeout: 60_000 });
}

function userFiles(name: string): Identity {
  const dir = join(vbs.dir, 'handed-out', name);
  return { key: readFileSync(join(dir, `${name}.key`), 'utf8'), cert: readFileSync(join(dir, `${name}.crt`), 'utf8') };
}

type Answer = { status: number; code?: string; message?: string } | { tls: string };

/** One SOAP request on a new connection, as `who`; a handshake that fails is an answer too. */
function post(url: string, def: ServiceDefinition, op: string, who: Identity): Promise<Answer> {
  const body = envelope(def.namespace, `<tns:${op}/>`);
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent: false, ca, key: who.key, cert: who.cert, headers: { 'content-type': 'text/xml; charset=utf-8', 'content-length': Buffer.byteLength(body) }, timeout: 20_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, ...faultOf(text) }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err: NodeJS.ErrnoException) => (err.message === 'timed out' ? reject(err) : resolve({ tls: err.code ?? err.message })));
    req.end(body);
  });
}

function faultOf(xml: string): { code?: string; message?: string } {
  return { code: /<tns:code>([^<]*)<\/tns:code>/.exec(xml)?.[1], message: /<tns:message>([^<]*)<\/tns:message>/.exec(xml)?.[1] };
}

/** The code a caller gets: a fault code, 'ok' for an answer, or 'TLS:<reason>' for a refused handshake. */
function outcome(a: Answer): string {
  if ('tls' in a) return `TLS:${a.tls}`;
  return a.code ?? (a.status === 200 ? 'ok' : `HTTP ${a.status}`);
}

/**
 * A kept-alive HTTP/1.1 connection, written by hand so the test knows every
 * request goes on this one TLS connection.
 */
class Connection {
  readonly closed: Promise<void>;
  private buffer = '';
  private waiting: (() => void) | undefined;

  private constructor(readonly socket: TLSSocket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.buffer += d;
      this.waiting?.();
    });
    socket.on('error', () => {});
    this.closed = new Promise((r) => socket.once('close', () => r()));
    socket.once('close', () => this.waiting?.());
  }

  static open(url: string, who: Identity): Promise<Connection> {
    const u = new URL(url);
    return new Promise((resolve, reject) => {
      const socket = connect({ host: u.hostname, port: Number(u.port), ca, key: who.key, cert: who.cert, servername: undefined }, () => resolve(new Connection(socket)));
      socket.once('error', reject);
    });
  }

  /** DescribeVolumes on this connection; rejects when the connection is gone. */
  async describe(): Promise<{ status: number; code?: string }> {
    if (this.socket.destroyed) throw new Error('the connection is closed');
    const body = envelope(VBS_SERVICE.namespace, '<tns:DescribeVolumes/>');
    this.buffer = '';
    this.socket.write(`POST ${VBS_SERVICE.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: keep-alive\r\n\r\n${body}`);
    const end = Date.now() + 20_000;
    for (;;) {
      const head = this.buffer.indexOf('\r\n\r\n');
      const headers = this.buffer.slice(0, head);
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(headers)?.[1] ?? NaN);
      const complete = /\r\ntransfer-encoding: *chunked/i.test(headers) ? this.buffer.endsWith('\r\n0\r\n\r\n') : Buffer.byteLength(this.buffer.slice(head + 4)) >= length;
      if (head >= 0 && complete) {
        return { status: Number(this.buffer.slice(9, 12)), ...faultOf(this.buffer.slice(head + 4)) };
      }
      if (this.socket.destroyed) throw new Error('the connection closed before an answer');
      if (Date.now() > end) throw new Error('no answer in 20 s');
      await new Promise<void>((r) => {
        this.waiting = r;
        setTimeout(r, 1_000);
      });
    }
  }
}

beforeAll(async () => {
  vbs = await startVbs();
  ca = readFileSync(join(vbs.dir, 'pki', 'ca.crt'), 'utf8');
  const front = JSON.parse(readFileSync(join(vbs.dir, 'front.json'), 'utf8')) as {
    volumeDelegates: { url: string }[];
    vmmHosts: { url: string }[];
    instances: { resolverUrl: string };
  };
  ports = [
    { service: 'front', url: vbs.url, def: VBS_SERVICE },
    { service: 'volume delegate', url: front.volumeDelegates[0]!.url, def: VOLUME_DELEGATE_SERVICE },
    { service: 'vmm delegate', url: front.vmmHosts[0]!.url, def: VMM_DELEGATE_SERVICE },
    { service: 'instance resolver', url: front.instances.resolverUrl, def: INSTANCE_RESOLVER_SERVICE },
  ];
  // Two by the CLI at once (its lock keeps the registry whole), two in-process (quicker).
  await Promise.all(['alice', 'rita'].map((name) => adminUser('add', name, '--out', join(vbs.dir, 'handed-out', name))));
  for (const name of ['alice', 'rita']) ids[name] = userFiles(name);
  const registry = new UserRegistry(vbs.dir);
  for (const name of ['bob', 'kim']) {
    const issued = await registry.add(name, false);
    ids[name] = { key: issued.keyPem, cert: issued.certPem };
  }
  // An expired certificate: the registry's test-only validity, on the same folder.
  const past = { notBefore: new Date(Date.now() - 3 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) };
  const expired = await new UserRegistry(vbs.dir).add('old', false, { validity: past });
  ids.expired = { key: expired.keyPem, cert: expired.certPem };
  // Another CA's certificate, under a name this deployment knows.
  const foreign = issueCertificate(createCa('Someone else'), { commonName: 'alice', use: 'client' });
  ids.foreign = { key: foreign.keyPem, cert: foreign.certPem };
  ids.none = {};
  ids.service = { key: readFileSync(join(vbs.dir, 'pki', 'front.key'), 'utf8'), cert: readFileSync(join(vbs.dir, 'pki', 'front.crt'), 'utf8') };
  ids.admin = { key: readFileSync(join(vbs.dir, 'pki', 'admin.key'), 'utf8'), cert: readFileSync(join(vbs.dir, 'pki', 'admin.crt'), 'utf8') };
  await registry.revoke('rita');
  ids.revoked = ids.rita!;
  await eventually(async () => (outcome(await post(vbs.url, VBS_SERVICE, 'DescribeVolumes', ids.revoked!)) === 'AuthFailure' ? true : undefined), 15_000);
}, 180_000);

afterAll(async () => {
  await vbs?.stop();
});

const INVALID = ['revoked', 'expired', 'foreign', 'none'] as const;

describe('who may call the front', () => {
  it('every operation, as a revoked, an expired, a foreign-CA or no certificate: an AuthFailure fault, and no operation runs', async () => {
    const seen: Record<string, string> = {};
    for (const op of Object.keys(VBS_SERVICE.operations)) {
      for (const who of INVALID) seen[`${op} as ${who}`] = outcome(await post(vbs.url, VBS_SERVICE, op, ids[who]!));
    }
    expect(seen).toEqual(Object.fromEntries(Object.keys(seen).map((k) => [k, 'AuthFailure'])));
    // Each caller is told what it can fix.
    expect((await post(vbs.url, VBS_SERVICE, 'DescribeVolumes', ids.revoked!)) as { message: string }).toMatchObject({ message: expect.stringMatching(/revoked/) });
    expect((await post(vbs.url, VBS_SERVICE, 'DescribeVolumes', ids.expired!)) as { message: string }).toMatchObject({ message: expect.stringMatching(/expired/) });
    // Nothing was made: the volume delegate (asked with the front's own identity) holds no object.
    const volume = new SoapClient({ def: VOLUME_DELEGATE_SERVICE, url: ports[1]!.url, tls: { ...ids.service, ca } as never });
    try {
      expect((await volume.call('DescribeObjects', {})).object ?? []).toEqual([]);
    } finally {
      volume.close();
    }
    // While valid users are served.
    expect(outcome(await post(vbs.url, VBS_SERVICE, 'DescribeVolumes', ids.alice!))).toBe('ok');
  });

  it('the CLI with a handed-out client.json works, and says why a revoked one is refused', async () => {
    const cli = (name: string) => run(process.execPath, [VBS_BIN, 'describe-volumes'], { env: { ...process.env, VBS_CONFIG: join(vbs.dir, 'handed-out', name, 'client.json') } }).then(
      (r) => ({ code: 0, stderr: r.stderr }),
      (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
    );
    const [alice, rita] = await Promise.all([cli('alice'), cli('rita')]);
    expect(alice).toEqual({ code: 0, stderr: '' });
    expect(rita.code).toBe(1);
    expect(rita.stderr).toMatch(/AuthFailure: This certificate has been revoked/);
  });
});

describe('who may call the delegates', () => {
  it("a user's certificate, valid (even an administrator's) or not, is refused on every operation of every delegate before it runs", async () => {
    const seen: Record<string, string> = {};
    for (const { service, url, def } of ports.slice(1)) {
      for (const op of Object.keys(def.operations)) {
        for (const who of ['alice', 'admin', ...INVALID]) seen[`${service} ${op} as ${who}`] = outcome(await post(url, def, op, ids[who]!));
      }
    }
    // Valid user certificates: not a service's (UnauthorizedOperation); invalid ones: no identity at all (AuthFailure).
    const expected = Object.fromEntries(Object.keys(seen).map((k) => [k, / as (alice|admin)$/.test(k) ? 'UnauthorizedOperation' : 'AuthFailure']));
    expect(seen).toEqual(expected);
    // The front's own certificate is served (the control).
    expect(outcome(await post(ports[1]!.url, VOLUME_DELEGATE_SERVICE, 'DescribeObjects', ids.service!))).toBe('ok');
  });
});

describe('TLS on every port', () => {
  it('TLS 1.1 is refused by the server (curl and openssl s_client, offering it at security level 0); TLS 1.2 is served', async () => {
    const files = join(vbs.dir, 'handed-out', 'alice');
    for (const { service, url } of ports) {
      const curl = await run('curl', ['-sS', '--tlsv1.1', '--tls-max', '1.1', '--ciphers', 'DEFAULT:@SECLEVEL=0', '--cacert', join(files, 'ca.crt'), '--cert', join(files, 'alice.crt'), '--key', join(files, 'alice.key'), '-X', 'POST', url]).then(
        () => ({ code: 0, stderr: '' }),
        (e: { code: number; stderr: string }) => e,
      );
      expect({ service, code: curl.code, alert: /alert protocol version/.test(curl.stderr) }).toEqual({ service, code: 35, alert: true });
      const u = new URL(url);
      const sClient = await run('openssl', ['s_client', '-connect', `${u.hostname}:${u.port}`, '-tls1_1', '-cipher', 'DEFAULT:@SECLEVEL=0'], { timeout: 20_000 }).then(
        (r) => ({ code: 0, out: r.stdout + r.stderr }),
        (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
      );
      expect({ service, refused: sClient.code !== 0, alert: /alert protocol version/.test(sClient.out) }).toEqual({ service, refused: true, alert: true });
      const tls12 = await run('curl', ['-sS', '--tlsv1.2', '--tls-max', '1.2', '--cacert', join(files, 'ca.crt'), '--cert', join(files, 'alice.crt'), '--key', join(files, 'alice.key'), '-o', '/dev/null', '-w', '%{http_code}', `${url}?wsdl`]);
      // Served over TLS 1.2: the front's WSDL for a user; a delegate answers with its fault (HTTP 500).
      expect({ service, status: tls12.stdout }).toEqual({ service, status: service === 'front' ? '200' : '500' });
    }
  });

  it('a client without a certificate completes no request on any port (curl: an AuthFailure fault)', async () => {
    for (const { service, url, def } of ports) {
      const body = envelope(def.namespace, `<tns:${Object.keys(def.operations)[0]}/>`);
      const r = await run('curl', ['-sS', '--cacert', join(vbs.dir, 'pki', 'ca.crt'), '-H', 'content-type: text/xml', '--data-binary', body, '-w', '\n%{http_code}', url]);
      expect({ service, code: faultOf(r.stdout).code, status: r.stdout.split('\n').at(-1) }).toEqual({ service, code: 'AuthFailure', status: '500' });
      const wsdl = await run('curl', ['-sS', '--cacert', join(vbs.dir, 'pki', 'ca.crt'), `${url}?wsdl`]);
      expect({ service, code: faultOf(wsdl.stdout).code }).toEqual({ service, code: 'AuthFailure' });
    }
  });
});

describe('renegotiation on every port', () => {
  it('a user who renegotiates presenting a self-made certificate (CN=admin on the front, a service-marked CN=vbs-front on each delegate) is refused, and not served', async () => {
    const attacker = createCa('attacker');
    const selfMade = {
      front: issueCertificate(attacker, { commonName: 'admin', use: 'client', admin: true }),
      service: issueCertificate(attacker, { commonName: 'vbs-front', use: 'server+client', service: true }),
    };
    const read: Record<string, string> = { front: 'DescribeVolumes', 'volume delegate': 'DescribeObjects', 'vmm delegate': 'ListVms', 'instance resolver': 'DescribeResolvers' };
    const alice = { keyPem: ids.alice!.key!, certPem: ids.alice!.cert! };
    for (const { service, url, def } of ports) {
      const probe = await renegotiateAs(url, ca, alice, service === 'front' ? selfMade.front : selfMade.service, envelope(def.namespace, `<tns:${read[service]}/>`));
      expect({ service, renegotiated: probe.renegotiated, served: /^HTTP\/1\.1 200/.test(probe.answer ?? '') }).toEqual({ service, renegotiated: false, served: false });
    }
  });

  it('a TLS 1.2 client offering only suites without forward secrecy fails the handshake on every port', async () => {
    const files = join(vbs.dir, 'handed-out', 'alice');
    for (const { service, url } of ports) {
      const u = new URL(url);
      const sClient = await run('openssl', ['s_client', '-connect', `${u.hostname}:${u.port}`, '-tls1_2', '-cipher', 'AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA256:AES128-SHA', '-cert', join(files, 'alice.crt'), '-key', join(files, 'alice.key')], { timeout: 20_000 }).then(
        (r) => ({ code: 0, out: r.stdout + r.stderr }),
        (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
      );
      expect({ service, refused: sClient.code !== 0, alert: /handshake failure/.test(sClient.out) }).toEqual({ service, refused: true, alert: true });
    }
  });
});

describe('revocation on a running deployment', () => {
  it("cuts the revoked user's open keep-alive connection and refuses new ones, within the services' reload; other users carry on, no restart", async () => {
    const kim = await Connection.open(vbs.url, ids.kim!);
    const bob = await Connection.open(vbs.url, ids.bob!);
    try {
      expect(await kim.describe()).toEqual({ status: 200, code: undefined, message: undefined });
      expect(await bob.describe()).toEqual({ status: 200, code: undefined, message: undefined });
      expect(await kim.describe()).toMatchObject({ status: 200 });

      const revoked = await adminUser('revoke', 'kim');
      expect(revoked.stdout).toMatch(/User kim revoked/);
      // The signal: the front closes kim's connection once it has the new list (bounded wait).
      const cut = await Promise.race([kim.closed.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 15_000))]);
      expect(cut).toBe(true);
      await expect(kim.describe()).rejects.toThrow(/closed/);
      // A new connection: refused, and told why.
      const again = await post(vbs.url, VBS_SERVICE, 'DescribeVolumes', ids.kim!);
      expect(again).toMatchObject({ code: 'AuthFailure', message: expect.stringMatching(/revoked/) });
      // Bob's connection, open all along, still serves; a call that needs a delegate works too.
      expect(bob.socket.destroyed).toBe(false);
      expect(await bob.describe()).toMatchObject({ status: 200 });
      const bobClient = new SoapClient({ def: VBS_SERVICE, url: vbs.url, tls: { ...ids.bob, ca } as never });
      try {
        const created = (await bobClient.call('CreateVolume', { size: 1 })).volume as { volumeId?: string } | undefined;
        expect(created?.volumeId).toMatch(/^vol-/);
      } finally {
        bobClient.close();
      }
      // Every service reloaded the list, none restarted.
      for (const role of ['front', 'volume-delegate', 'vmm-delegate', 'instance-resolver']) {
        await eventually(async () => (/revocation list reloaded/.test(readFileSync(join(vbs.dir, 'logs', `${role}.log`), 'utf8')) ? true : undefined), 15_000);
      }
      expect(vbs.process.exitCode).toBeNull();
    } finally {
      kim.socket.destroy();
      bob.socket.destroy();
    }
  });

  it('a CRL replaced by something the CA did not sign is refused: the list in force stays, valid users are served', async () => {
    const crl = join(vbs.dir, 'pki', 'ca.crl');
    const good = readFileSync(crl, 'utf8');
    try {
      writeFileSync(crl, '-----BEGIN X509 CRL-----\nnot a crl\n-----END X509 CRL-----\n');
      await eventually(async () => (/not a CRL signed by the VBS CA/.test(readFileSync(join(vbs.dir, 'logs', 'front.log'), 'utf8')) ? true : undefined), 15_000);
      expect(outcome(await post(vbs.url, VBS_SERVICE, 'DescribeVolumes', ids.alice!))).toBe('ok');
      expect(outcome(await post(vbs.url, VBS_SERVICE, 'DescribeVolumes', ids.revoked!))).toBe('AuthFailure');
    } finally {
      writeFileSync(crl, good);
    }
  });
});

// What docs/operators/users-and-certificates.md says `add` hands out.
it('the handed-out folder holds what the users documentation lists', () => {
  const files = ['alice.key', 'alice.crt', 'ca.crt', 'alice.p12', 'alice.p12.password', 'client.json'];
  for (const f of files) expect(readFileSync(join(vbs.dir, 'handed-out', 'alice', f)).length, f).toBeGreaterThan(0);
});
