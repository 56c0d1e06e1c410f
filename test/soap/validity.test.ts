// First: the clock the server reads must be one this test can step.
import { stepClock } from './clock-offset.js';
import { Agent, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/core/log.js';
import { certificateFacts, createCa, issueCertificate } from '../../src/pki/certificates.js';
import { VBS_SERVICE } from '../../src/services/vbs.js';
import { createSoapServer, type Handlers } from '../../src/soap/server.js';
import { envelope } from '../../src/soap/xml.js';

/**
 * "An expired certificate keeps working" (issue 17 item 4): validity is
 * checked per request against the service's clock, so neither a kept-alive
 * connection nor a resumed TLS session outlives the certificate. The
 * server's clock is stepped past the certificate's notAfter (the handshake's
 * own check reads the real clock, which is what a long-lived connection or
 * session ticket gets past).
 */
const ca = createCa('test CA');
const server = issueCertificate(ca, { commonName: 'vbs-front', use: 'server', hosts: ['127.0.0.1'], service: true });
const alice = issueCertificate(ca, { commonName: 'alice', use: 'client' });
const handlers = Object.fromEntries(Object.keys(VBS_SERVICE.operations).map((op) => [op, () => (op === 'DescribeVolumes' ? { volume: [] } : { return: true })])) as unknown as Handlers;
let url = '';
const srv = createSoapServer({ def: VBS_SERVICE, handlers, tls: { key: server.keyPem, cert: server.certPem, ca: ca.certPem }, log: silentLogger, publicUrl: () => url });

beforeAll(async () => {
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  url = `https://127.0.0.1:${(srv.address() as AddressInfo).port}/vbs`;
});
afterAll(() => {
  stepClock(0);
  srv.closeAllConnections();
  srv.close();
});

interface Answer {
  readonly code: string;
  readonly reused: boolean;
  readonly resumed: boolean;
}

/** DescribeVolumes through `agent`: the fault code (or 'ok'), whether the connection was reused, whether its TLS session was resumed. */
function describeVolumes(agent: Agent): Promise<Answer> {
  const body = envelope(VBS_SERVICE.namespace, '<tns:DescribeVolumes/>');
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, ca: ca.certPem, key: alice.keyPem, cert: alice.certPem, headers: { 'content-type': 'text/xml; charset=utf-8' } }, (res) => {
      let text = '';
      const resumed = (res.socket as TLSSocket).isSessionReused();
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ code: /<faultstring>([^<]*)<\/faultstring>/.exec(text)?.[1] ?? (res.statusCode === 200 ? 'ok' : `HTTP ${res.statusCode}`), reused: req.reusedSocket, resumed }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Asks until the answer is `code` (the server rereads the clock's offset within 200 ms), at most a bounded number of times. */
async function until(code: string, ask: () => Promise<Answer>): Promise<Answer> {
  let last: Answer | undefined;
  for (let i = 0; i < 50; i++) {
    last = await ask();
    if (last.code === code) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  return last!;
}

describe('a certificate that expires', () => {
  it('is refused on a connection kept alive from before, and on a session resumed after', async () => {
    const notAfter = certificateFacts(alice.certPem).notAfter.getTime();
    const keptAlive = new Agent({ keepAlive: true, maxSockets: 1 });
    const resuming = new Agent({ keepAlive: false, maxCachedSessions: 10 });
    try {
      expect(await describeVolumes(keptAlive)).toMatchObject({ code: 'ok' });
      expect(await describeVolumes(resuming)).toMatchObject({ code: 'ok' });
      // Within validity, a new connection resumes the session.
      expect(await describeVolumes(resuming)).toEqual({ code: 'ok', reused: false, resumed: true });

      stepClock(notAfter - Date.now() + 60_000);
      const onKeptAlive = await until('AuthFailure', () => describeVolumes(keptAlive));
      expect(onKeptAlive).toMatchObject({ code: 'AuthFailure', reused: true });
      const onResumed = await until('AuthFailure', () => describeVolumes(resuming));
      expect(onResumed).toEqual({ code: 'AuthFailure', reused: false, resumed: true });

      // And back within validity (a clock stepped back): served again.
      stepClock(0);
      expect(await until('ok', () => describeVolumes(keptAlive))).toMatchObject({ code: 'ok' });
    } finally {
      keptAlive.destroy();
      resuming.destroy();
    }
  });

  it('is refused before its notBefore too', async () => {
    const notBefore = certificateFacts(alice.certPem).notBefore.getTime();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      expect(await describeVolumes(agent)).toMatchObject({ code: 'ok' });
      stepClock(notBefore - Date.now() - 60_000);
      expect(await until('AuthFailure', () => describeVolumes(agent))).toMatchObject({ code: 'AuthFailure', reused: true });
    } finally {
      stepClock(0);
      agent.destroy();
    }
  });
});
