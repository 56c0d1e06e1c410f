import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { VbsError } from '../../src/core/errors.js';
import { verifySigV4, type SignedRequest } from '../../src/ec2/sigv4.js';

const run = promisify(execFile);
const KEY = { accessKeyId: 'AKIAABCDEFGHIJKLMNOP', secretAccessKey: 'c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I' };
const HOST = '127.0.0.1:8773';

interface Case {
  readonly name: string;
  readonly method: string;
  readonly target: string;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** The request as the EC2 listener hands it to the verifier (src/ec2/server.ts). */
function received(c: Case, change: Partial<Case> = {}): SignedRequest {
  const x = { ...c, ...change };
  const url = new URL(x.target, `https://${HOST}`);
  const query = new Map<string, string[]>();
  for (const [k, v] of url.searchParams) query.set(k, [...(query.get(k) ?? []), v]);
  return { method: x.method, path: url.pathname, query, headers: { host: HOST, ...x.headers }, body: Buffer.from(x.body) };
}

const opts = (secret = KEY.secretAccessKey) => ({ region: 'vbs-1', now: new Date(), maxSkewMs: 300_000, secretOf: (id: string) => (id === KEY.accessKeyId ? secret : undefined) });

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return err instanceof VbsError ? err.code : String(err);
  }
}

/**
 * Issue 18: every form of SigV4 that botocore (Debian's python3-botocore,
 * the signer of the AWS CLI and boto3) makes for EC2 verifies: boto3's
 * presigned URLs (signed for POST, used as a GET too), the query-string
 * signer over a Date, an X-Amz-Date or other headers, and the header signer
 * with extra headers. What does not match is refused with EC2's code.
 */
describe('SigV4 as botocore signs it (test/ec2/botocore_presign.py)', () => {
  let cases: Case[];

  beforeAll(async () => {
    const r = await run('/usr/bin/python3', [join(import.meta.dirname, 'botocore_presign.py'), HOST, KEY.accessKeyId, KEY.secretAccessKey], { timeout: 60_000 });
    cases = JSON.parse(r.stdout) as Case[];
  }, 90_000);

  it('verifies every form', async () => {
    expect(cases.length).toBeGreaterThanOrEqual(8);
    const codes = Object.fromEntries(await Promise.all(cases.map(async (c) => [c.name, await codeOf(verifySigV4(received(c), opts()))] as const)));
    expect(codes).toEqual(Object.fromEntries(cases.map((c) => [c.name, 'ok'])));
  });

  it('refuses each form with another secret, an altered parameter or an altered signed header', async () => {
    for (const c of cases) {
      expect(await codeOf(verifySigV4(received(c), opts('x'.repeat(40)))), c.name).toBe('SignatureDoesNotMatch');
      const altered = c.target.includes('Version=2016-11-15') ? c.target.replace('Version=2016-11-15', 'Version=2016-11-16') : c.target;
      const body = c.body.replace('Version=2016-11-15', 'Version=2016-11-16');
      expect(await codeOf(verifySigV4(received(c, { target: altered, body }), opts())), c.name).toBe('SignatureDoesNotMatch');
    }
    const withDate = cases.find((c) => c.headers.date && c.method === 'GET')!;
    expect(await codeOf(verifySigV4(received(withDate, { headers: { date: 'Tue, 08 Dec 2026 12:00:00 GMT' } }), opts()))).toBe('SignatureDoesNotMatch');
    // A signed header that is not sent is the signature's fault, not a mismatch.
    expect(await codeOf(verifySigV4(received(withDate, { headers: {} }), opts()))).toBe('IncompleteSignature');
  });

  it('takes a presigned URL by GET or POST only, without a body: a body is not what was signed', async () => {
    const presigned = cases.find((c) => c.name === 'generate_presigned_url, used with POST')!;
    expect(await codeOf(verifySigV4(received(presigned, { method: 'PUT' }), opts()))).toBe('SignatureDoesNotMatch');
    expect(await codeOf(verifySigV4(received(presigned, { body: 'Action=DeleteVolume' }), opts()))).toBe('SignatureDoesNotMatch');
  });

  it('refuses a session token: VBS has no STS', async () => {
    const c = cases.find((x) => x.name === 'generate_presigned_url HttpMethod=GET')!;
    expect(await codeOf(verifySigV4(received(c, { target: `${c.target}&X-Amz-Security-Token=abc` }), opts()))).toBe('AuthFailure');
    const h = cases.find((x) => x.method === 'POST' && x.body)!;
    expect(await codeOf(verifySigV4(received(h, { headers: { ...h.headers, 'x-amz-security-token': 'abc' } }), opts()))).toBe('AuthFailure');
  });
});
