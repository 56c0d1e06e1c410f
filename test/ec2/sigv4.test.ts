import aws4 from 'aws4';
import { describe, expect, it } from 'vitest';
import { VbsError } from '../../src/core/errors.js';
import { Params } from '../../src/ec2/params.js';
import { ReplayGuard } from '../../src/ec2/replay.js';
import { verifySigV4, type SignedRequest } from '../../src/ec2/sigv4.js';

const KEY = { accessKeyId: 'AKIAABCDEFGHIJKLMNOP', secretAccessKey: 'c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I' };
const HOST = '127.0.0.1:8773';
const NOW = new Date('2026-12-07T12:00:00Z');
const amz = (d: Date) => d.toISOString().replace(/[:-]|\.\d{3}/g, '');

/** A request as aws4 (a signer independent of the verifier) signs it, as the server would receive it. */
function signed(o: { body?: string; query?: boolean; date?: Date; expires?: number } = {}): SignedRequest {
  const body = o.body ?? 'Action=DescribeVolumes&Version=2016-11-15';
  // aws4 dates a query-string signature with the current time (it signs only host then).
  const headers: Record<string, string> = o.query ? {} : { 'X-Amz-Date': amz(o.date ?? NOW) };
  const path = o.query ? `/?${body}${o.expires ? `&X-Amz-Expires=${o.expires}` : ''}` : '/';
  const req: aws4.Request & { headers: Record<string, string> } = o.query
    ? { host: HOST, path, method: 'GET', service: 'ec2', region: 'vbs-1', signQuery: true, headers }
    : { host: HOST, path, method: 'POST', service: 'ec2', region: 'vbs-1', body, headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' } };
  aws4.sign(req, KEY);
  const url = new URL(req.path!, `https://${HOST}`);
  const query = new Map<string, string[]>();
  for (const [k, v] of url.searchParams) query.set(k, [...(query.get(k) ?? []), v]);
  const lower: Record<string, string> = { host: HOST };
  for (const [k, v] of Object.entries(req.headers)) lower[k.toLowerCase()] = String(v);
  return { method: req.method!, path: url.pathname, query, headers: lower, body: Buffer.from(o.query ? '' : body) };
}

const opts = (secret = KEY.secretAccessKey, now = NOW) => ({ region: 'vbs-1', now, maxSkewMs: 300_000, secretOf: (id: string) => (id === KEY.accessKeyId ? secret : undefined) });

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return err instanceof VbsError ? err.code : String(err);
  }
}

describe('SigV4 verification (src/ec2/sigv4.ts)', () => {
  it('accepts what aws4 signs, in the header and the query-string forms', async () => {
    expect((await verifySigV4(signed(), opts())).accessKeyId).toBe(KEY.accessKeyId);
    const now = new Date();
    expect((await verifySigV4(signed({ query: true }), opts(undefined, now))).accessKeyId).toBe(KEY.accessKeyId);
    const presigned = await verifySigV4(signed({ query: true, expires: 60 }), opts(undefined, now));
    expect(presigned.validUntil - now.getTime()).toBeGreaterThan(55_000);
    expect(presigned.validUntil - now.getTime()).toBeLessThanOrEqual(60_000);
  });

  it("refuses with EC2's codes", async () => {
    expect(await codeOf(verifySigV4(signed(), opts('another secret')))).toBe('SignatureDoesNotMatch');
    expect(await codeOf(verifySigV4({ ...signed(), body: Buffer.from('Action=DeleteVolume&Version=2016-11-15') }, opts()))).toBe('SignatureDoesNotMatch');
    expect(await codeOf(verifySigV4(signed(), { ...opts(), secretOf: () => undefined }))).toBe('AuthFailure');
    expect(await codeOf(verifySigV4(signed({ date: new Date(NOW.getTime() - 10 * 60_000) }), opts()))).toBe('RequestExpired');
    expect(await codeOf(verifySigV4(signed({ date: new Date(NOW.getTime() + 10 * 60_000) }), opts()))).toBe('RequestExpired');
    expect(await codeOf(verifySigV4(signed({ query: true, expires: 60 }), opts(undefined, new Date(Date.now() + 62_000))))).toBe('RequestExpired');
    expect(await codeOf(verifySigV4({ ...signed(), headers: { host: HOST } }, opts()))).toBe('MissingAuthenticationToken');
    const r = signed();
    expect(await codeOf(verifySigV4({ ...r, headers: { ...r.headers, authorization: 'AWS4-HMAC-SHA256 Credential=x' } }, opts()))).toBe('IncompleteSignature');
    expect(await codeOf(verifySigV4(r, { ...opts(), region: 'vbs-2' }))).toBe('AuthFailure');
  });
});

describe('EC2 parameters (src/ec2/params.ts)', () => {
  it('reads flattened 1-indexed lists in index order, and refuses what no one read', () => {
    const p = Params.from(new URLSearchParams('Action=X&Filter.2.Name=b&Filter.1.Name=a&Filter.1.Value.2=y&Filter.1.Value.1=x&VolumeId.10=v10&VolumeId.2=v2&Extra=1'));
    expect(p.list('VolumeId')).toEqual(['v2', 'v10']);
    expect(p.groups('Filter').map((g) => [g.str('Name'), g.list('Value')])).toEqual([
      ['a', ['x', 'y']],
      ['b', []],
    ]);
    expect(() => p.refuseUnread('X')).toThrow(/Extra is not recognized/);
  });

  it('refuses a parameter given twice, and indexes outside 1-1000', () => {
    expect(() => Params.from(new URLSearchParams('Size=1&Size=2'))).toThrow(VbsError);
    expect(() => Params.from(new URLSearchParams('VolumeId.0=a')).list('VolumeId')).toThrow(VbsError);
    expect(() => Params.from(new URLSearchParams('VolumeId.1001=a')).list('VolumeId')).toThrow(VbsError);
  });
});

describe('replays (src/ec2/replay.ts)', () => {
  it('admits a signature once while valid, forgets it after, and stays bounded', () => {
    const g = new ReplayGuard(2);
    expect(g.admit('a', 100, 0)).toBe(true);
    expect(g.admit('a', 100, 50)).toBe(false);
    expect(g.admit('a', 300, 101)).toBe(true);
    expect(g.admit('b', 300, 102)).toBe(true);
    expect(g.admit('c', 300, 103)).toBe(true);
    // Full at 2: the oldest (a) was forgotten, b and c are still refused.
    expect(g.admit('b', 300, 104)).toBe(false);
    expect(g.admit('c', 300, 104)).toBe(false);
  });
});
