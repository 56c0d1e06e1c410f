import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FailoverCaller, mayTryNext, repeatable, type Front } from '../../src/cli/failover.js';
import { connectWithClientConfig } from '../../src/cli/runtime.js';
import { frontUrls, loadClientConfig } from '../../src/config/client-config.js';
import { VbsError } from '../../src/core/errors.js';
import { freePort } from '../../src/core/free-port.js';
import { ensureDeploymentPki } from '../../src/deploy/all-in-one.js';
import { VBS_SERVICE } from '../../src/services/vbs.js';
import { SoapClient } from '../../src/soap/client.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { seedDeploymentPki } from '../setup/pki.js';

/**
 * The CLI's fronts (issue 20): real SOAP clients against real sockets that
 * fail the three ways a front can fail to answer, and a front that answers.
 */
let dir: string;
let refusedUrl: string;
let silentTcpUrl: string;
let silentTlsUrl: string;
const servers: Server[] = [];
const sockets: Socket[] = [];

const listen = async (server: Server): Promise<number> => {
  servers.push(server);
  server.on('connection', (s: Socket) => sockets.push(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as { port: number }).port;
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vbs-failover-'));
  seedDeploymentPki(dir);
  ensureDeploymentPki(dir);
  refusedUrl = `https://127.0.0.1:${await freePort()}/vbs`;
  // Accepts TCP and never starts TLS: the request is never sent (a front whose process hangs before accepting).
  silentTcpUrl = `https://127.0.0.1:${await listen(createTcpServer())}/vbs`;
  // Completes TLS, reads the request and never answers: whatever it did is unknown.
  const pki = (f: string) => readFileSync(join(dir, 'pki', f));
  const tls = createTlsServer({ key: pki('front.key'), cert: pki('front.crt'), ca: pki('ca.crt'), requestCert: true });
  silentTlsUrl = `https://127.0.0.1:${await listen(tls)}/vbs`;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  rmSync(dir, { recursive: true, force: true });
});

function soap(url: string): SoapClient {
  const pki = (f: string) => readFileSync(join(dir, 'pki', f));
  return new SoapClient({ def: VBS_SERVICE, url, tls: { key: pki('admin.key'), cert: pki('admin.crt'), ca: pki('ca.crt') }, timeoutMs: 600, connectTimeoutMs: 200 });
}

/** A front that answers every call with its own name. */
class AnsweringFront {
  readonly calls: string[] = [];
  constructor(readonly name: string) {}
  async call(operation: string): Promise<XmlRecord> {
    this.calls.push(operation);
    return { front: this.name };
  }
}

describe('FailoverCaller', () => {
  it('goes to the next front when the first refuses the connection, for any request, and stays there', async () => {
    const good = new AnsweringFront('b');
    const moves: string[] = [];
    const c = new FailoverCaller([{ url: refusedUrl, caller: soap(refusedUrl) }, { url: 'b', caller: good }], (from, to) => moves.push(`${from} -> ${to}`));
    expect(await c.call('AttachVolume', { volumeId: 'vol-0' })).toEqual({ front: 'b' });
    expect(await c.call('DetachVolume', { volumeId: 'vol-0' })).toEqual({ front: 'b' });
    // The second call went straight to the front that answered.
    expect(moves).toEqual([`${refusedUrl} -> b`]);
    expect(good.calls).toEqual(['AttachVolume', 'DetachVolume']);
    c.close();
  });

  it('goes to the next front when no connection is made within the connect timeout (nothing was sent)', async () => {
    const good = new AnsweringFront('b');
    const c = new FailoverCaller([{ url: silentTcpUrl, caller: soap(silentTcpUrl) }, { url: 'b', caller: good }]);
    expect(await c.call('DeleteVolume', { volumeId: 'vol-0' })).toEqual({ front: 'b' });
    c.close();
  });

  it('never sends a request whose outcome is unknown to another front, unless it is repeatable', async () => {
    const good = new AnsweringFront('b');
    const fronts: Front[] = [{ url: silentTlsUrl, caller: soap(silentTlsUrl) }, { url: 'b', caller: good }];
    const c = new FailoverCaller(fronts);
    const err = await c.call('AttachVolume', { volumeId: 'vol-0' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VbsError);
    expect((err as VbsError).code).toBe('ServiceUnavailable');
    expect(good.calls).toEqual([]);
    // A create without a client token could be made twice: not moved either.
    await expect(c.call('CreateVolume', { size: 1 })).rejects.toThrow(/did not answer/);
    expect(good.calls).toEqual([]);
    // A read, and a create with its token (the front recognises a repeat, from any front), are.
    expect(await c.call('DescribeVolumes', {})).toEqual({ front: 'b' });
    c.close();
    const again = new FailoverCaller([{ url: silentTlsUrl, caller: soap(silentTlsUrl) }, { url: 'b', caller: good }]);
    expect(await again.call('CreateVolume', { size: 1, clientToken: 'tok-1' })).toEqual({ front: 'b' });
    expect(good.calls).toEqual(['DescribeVolumes', 'CreateVolume']);
    again.close();
  });

  it('takes a front\'s own fault as its answer, ServiceUnavailable included', async () => {
    const fault = { call: async () => Promise.reject(new VbsError('ServiceUnavailable', 'busy')) };
    const good = new AnsweringFront('b');
    const c = new FailoverCaller([{ url: 'a', caller: fault }, { url: 'b', caller: good }]);
    await expect(c.call('DescribeVolumes', {})).rejects.toThrow('busy');
    expect(good.calls).toEqual([]);
  });

  it('reports the last front\'s failure when none answers', async () => {
    const c = new FailoverCaller([
      { url: refusedUrl, caller: soap(refusedUrl) },
      { url: silentTcpUrl, caller: soap(silentTcpUrl) },
    ]);
    await expect(c.call('DescribeVolumes', {})).rejects.toThrow(/could not be reached/);
    c.close();
  });
});

describe('which requests may go to another front', () => {
  const unknown = new VbsError('ServiceUnavailable', 'VBS did not answer within 1 ms.', { cause: new Error('timeout') });
  it('repeatable: reads, puts of values, creates with a token', () => {
    expect(repeatable('DescribeSnapshots', {})).toBe(true);
    expect(repeatable('CreateTags', {})).toBe(true);
    expect(repeatable('CreateSnapshot', { clientToken: 't' })).toBe(true);
    expect(repeatable('CreateSnapshot', {})).toBe(false);
    expect(repeatable('DeleteVolume', {})).toBe(false);
    expect(repeatable('ModifyVolume', {})).toBe(false);
    expect(repeatable('CheckConsistency', {})).toBe(false);
  });
  it('only transport failures, never other faults', () => {
    expect(mayTryNext(unknown, 'DescribeVolumes', {})).toBe(true);
    expect(mayTryNext(unknown, 'DetachVolume', {})).toBe(false);
    expect(mayTryNext(new VbsError('IncorrectState', 'no'), 'DescribeVolumes', {})).toBe(false);
    expect(mayTryNext(new Error('x'), 'DescribeVolumes', {})).toBe(false);
  });
});

describe('client.json with several fronts', () => {
  const write = (name: string, body: object) => {
    const f = join(dir, name);
    writeFileSync(f, JSON.stringify({ key: 'pki/admin.key', cert: 'pki/admin.crt', ca: 'pki/ca.crt', ...body }));
    return f;
  };
  it('takes a list in url, or fronts beside url, in order and once each', () => {
    expect(frontUrls(loadClientConfig(write('a.json', { url: ['https://h1:1/vbs', 'https://h2:1/vbs'] })).config)).toEqual(['https://h1:1/vbs', 'https://h2:1/vbs']);
    expect(frontUrls(loadClientConfig(write('b.json', { url: 'https://h1:1/vbs', fronts: ['https://h1:1/vbs', 'https://h3:1/vbs'] })).config)).toEqual([
      'https://h1:1/vbs',
      'https://h3:1/vbs',
    ]);
    expect(frontUrls(loadClientConfig(write('c.json', { fronts: ['https://h4:1/vbs'] })).config)).toEqual(['https://h4:1/vbs']);
  });
  it('refuses a configuration naming no front, an empty list, or something not a URL', () => {
    expect(() => loadClientConfig(write('d.json', {}))).toThrow(/name the front/);
    expect(() => loadClientConfig(write('e.json', { fronts: [] }))).toThrow(/fronts/);
    expect(() => loadClientConfig(write('f.json', { url: ['not a url'] }))).toThrow(/url/);
  });
  it('connects through the fronts in turn', async () => {
    const f = write('g.json', { url: [refusedUrl, silentTcpUrl], connectTimeoutMs: 200 });
    const lines: string[] = [];
    const caller = connectWithClientConfig(VBS_SERVICE, f, (l) => lines.push(l));
    await expect(caller.call('DescribeVolumes', {})).rejects.toThrow(/could not be reached/);
    expect(lines).toEqual([expect.stringContaining(`${refusedUrl} did not answer`)]);
    caller.close?.();
  });
});
