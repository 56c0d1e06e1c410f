import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VbsError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/log.js';
import { createCa, issueCertificate } from '../../src/pki/certificates.js';
import { VBS_SERVICE } from '../../src/services/vbs.js';
import { SoapClient } from '../../src/soap/client.js';
import { createSoapServer, type Handlers, type RequestOutcome } from '../../src/soap/server.js';

/** The SOAP server's beforeAnswer hook (the front's audit log): every outcome told, and a failure to record answers InternalError. */
const ca = createCa('test CA');
const server = issueCertificate(ca, { commonName: 'vbs-front', use: 'server', hosts: ['127.0.0.1'], service: true });
const alice = issueCertificate(ca, { commonName: 'alice', use: 'client' });
const boss = issueCertificate(ca, { commonName: 'boss', use: 'client', admin: true });
const service = issueCertificate(ca, { commonName: 'vbs-volume-delegate', use: 'server+client', service: true });

const told: RequestOutcome[] = [];
let failRecording = false;
const done: string[] = [];
const handlers = Object.fromEntries(
  Object.keys(VBS_SERVICE.operations).map((op) => [
    op,
    () => {
      done.push(op);
      if (op === 'DescribeSnapshots') throw new VbsError('InvalidSnapshot.NotFound', 'no such snapshot');
      return { return: true };
    },
  ]),
) as Handlers;
const srv = createSoapServer({
  def: VBS_SERVICE,
  handlers,
  tls: { key: server.keyPem, cert: server.certPem, ca: ca.certPem },
  log: silentLogger,
  publicUrl: () => '',
  beforeAnswer: (o) => {
    if (failRecording) throw new Error('disk full');
    told.push(o);
  },
});
let url = '';
const clients: SoapClient[] = [];
const as = (who: { keyPem: string; certPem: string }) => {
  const c = new SoapClient({ def: VBS_SERVICE, url, tls: { key: who.keyPem, cert: who.certPem, ca: ca.certPem } });
  clients.push(c);
  return c;
};

beforeAll(async () => {
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  url = `https://127.0.0.1:${(srv.address() as AddressInfo).port}/vbs`;
});
afterAll(() => {
  for (const c of clients) c.close();
  srv.closeAllConnections();
  srv.close();
});

describe('beforeAnswer', () => {
  it('is told each outcome: the caller, whether the certificate is an administrator, the operation, input and result', async () => {
    told.length = 0;
    await as(alice).call('DeleteVolume', { volumeId: 'vol-0123456789abcdef0' });
    await as(boss).call('DeleteSnapshot', { snapshotId: 'snap-0123456789abcdef0' });
    const fault = await as(alice).call('DescribeSnapshots', { snapshotId: ['snap-0123456789abcdef0'] }).catch((e: unknown) => e);
    expect(fault).toMatchObject({ code: 'InvalidSnapshot.NotFound' });
    expect(told.map((o) => [o.caller, o.admin, o.operation, o.fault ?? 'ok'])).toEqual([
      ['alice', false, 'DeleteVolume', 'ok'],
      ['boss', true, 'DeleteSnapshot', 'ok'],
      ['alice', false, 'DescribeSnapshots', 'InvalidSnapshot.NotFound'],
    ]);
    expect(told[0]).toMatchObject({ input: { volumeId: 'vol-0123456789abcdef0' }, output: { return: true } });
    expect(told[2]!.input).toEqual({ snapshotId: ['snap-0123456789abcdef0'], filter: [] });
  });

  it('is told about callers refused before their request is read', async () => {
    told.length = 0;
    const fault = (await as(service).call('DeleteVolume', { volumeId: 'vol-0123456789abcdef0' }).catch((e: unknown) => e)) as { code: string; requestId: string };
    expect(fault.code).toBe('AuthFailure');
    expect(told).toEqual([{ requestId: fault.requestId, caller: 'vbs-volume-delegate', admin: false, fault: 'AuthFailure' }]);
  });

  it('a failure to record turns the answer into InternalError, which says nothing of why', async () => {
    failRecording = true;
    try {
      done.length = 0;
      const fault = await as(alice).call('DeleteVolume', { volumeId: 'vol-0123456789abcdef0' }).catch((e: unknown) => e);
      expect(fault).toMatchObject({ code: 'InternalError', message: expect.not.stringContaining('disk') });
      expect(done).toEqual(['DeleteVolume']);
      expect(await as(service).call('DescribeVolumes', {}).catch((e: { code: string }) => e.code)).toBe('InternalError');
    } finally {
      failRecording = false;
    }
  });
});
