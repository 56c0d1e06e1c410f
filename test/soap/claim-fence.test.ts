import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { createServer } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fenced } from '../../src/core/claim-fence.js';
import { VbsError } from '../../src/core/errors.js';
import { failureOutcome } from '../../src/core/outcome.js';
import { ensureDeploymentPki } from '../../src/deploy/all-in-one.js';
import { VBS_SERVICE } from '../../src/services/vbs.js';
import { SoapClient } from '../../src/soap/client.js';
import { seedDeploymentPki } from '../setup/pki.js';

/**
 * The claim fence as the SOAP client obeys it (src/core/claim-fence.ts): a
 * runner that may have lost its claim cuts its delegate call in flight, and
 * sends no new one. A real TLS server that reads requests and never answers
 * stands for a delegate that is slow to act.
 */
const dir = mkdtempSync(join(tmpdir(), 'vbs-fence-'));
const sockets: Socket[] = [];
let connections = 0;
let url: string;
let server: ReturnType<typeof createServer>;
let client: SoapClient;

beforeAll(async () => {
  seedDeploymentPki(dir);
  ensureDeploymentPki(dir);
  const pki = (f: string) => readFileSync(join(dir, 'pki', f));
  server = createServer({ key: pki('volume-delegate.key'), cert: pki('volume-delegate.crt'), ca: pki('ca.crt'), requestCert: true }, (s) => {
    connections++;
    sockets.push(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  url = `https://127.0.0.1:${(server.address() as { port: number }).port}/volume-delegate`;
  client = new SoapClient({ def: VBS_SERVICE, url, tls: { key: pki('front.key'), cert: pki('front.crt'), ca: pki('ca.crt') }, timeoutMs: 60_000 });
});

afterAll(async () => {
  client.close();
  for (const s of sockets) s.destroy();
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

describe('delegate calls under a claim fence', () => {
  it('a call in flight is cut the moment the fence closes, long before its timeout', async () => {
    const fence = new AbortController();
    const call = fenced(fence.signal, () => client.call('DescribeVolumes', {})).catch((e: unknown) => e);
    await new Promise<void>((r) => {
      const t = setInterval(() => connections > 0 && (clearInterval(t), r()), 10);
    });
    fence.abort();
    const err = await call;
    expect(err).toBeInstanceOf(VbsError);
    expect((err as VbsError).code).toBe('ServiceUnavailable');
    // It was sent: what it did is unknown, and the runner treats it so.
    expect(failureOutcome(err)).toBe('unknown');
  });

  it('no call is sent under a fence already closed: not delivered', async () => {
    const fence = new AbortController();
    fence.abort();
    const before = connections;
    const err = await fenced(fence.signal, () => client.call('DescribeVolumes', {})).catch((e: unknown) => e);
    expect(failureOutcome(err)).toBe('not-delivered');
    expect(connections).toBe(before);
  });

  it('calls outside any fence are not touched by another work\'s fence', async () => {
    const fence = new AbortController();
    const inside = fenced(fence.signal, () => client.call('DescribeVolumes', {})).catch((e: unknown) => e);
    const outside = client.call('DescribeVolumes', {}, 500).catch((e: unknown) => e);
    fence.abort();
    expect(failureOutcome(await inside)).toBe('unknown');
    // The other call ends by its own timeout, not by the fence.
    expect(String((await outside as VbsError).message)).toContain('did not answer within 500 ms');
  });
});
