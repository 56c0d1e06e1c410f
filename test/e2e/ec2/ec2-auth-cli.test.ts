import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import aws4 from 'aws4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SoapClient } from '../../../src/soap/client.js';
import { eventually } from '../harness.js';
import { aws, startEc2Deployment, type Ec2Deployment, type Ec2User } from './deployment.js';

interface Answer {
  readonly status: number;
  readonly body: string;
  readonly requestId: string;
}

/** The EC2 error code in an answer's body. */
const codeOf = (a: Answer) => /<Code>([^<]+)<\/Code>/.exec(a.body)?.[1];

/**
 * Issue 18: EC2 requests signed (or not) by hand with aws4, to see each
 * authentication refusal EC2 gives; the real AWS CLI for waiters, --query,
 * --output table and auto-pagination; and the two APIs as one store (a volume
 * made through one is the same through the other, quotas and audit lines alike).
 */
describe('EC2 API: authentication, the AWS CLI, and one store with SOAP', () => {
  let d: Ec2Deployment;
  let alice: Ec2User;
  let carol: Ec2User;
  let admin: SoapClient;
  let aliceSoap: SoapClient;
  let ca: Buffer;

  beforeAll(async () => {
    d = await startEc2Deployment();
    alice = await d.user('alice');
    carol = await d.user('carol');
    ca = readFileSync(d.ca);
    admin = d.vbs.soap();
    aliceSoap = d.vbs.soap('alice');
  }, 120_000);

  afterAll(async () => {
    await d?.vbs.stop();
  });

  /** Sends EC2 parameters as a form POST (or a GET with signQuery), signed by aws4 unless `unsigned`. */
  function send(params: Record<string, string>, o: { user?: { accessKeyId: string; secret: string }; date?: Date; unsigned?: boolean; query?: boolean; tamper?: boolean } = {}): Promise<Answer> {
    const url = new URL(d.endpoint);
    const body = new URLSearchParams({ Version: '2016-11-15', ...params }).toString();
    const opts: aws4.Request & { headers: Record<string, string> } = o.query
      ? { host: url.host, path: `/?${body}`, method: 'GET', service: 'ec2', region: 'vbs-1', signQuery: true, headers: {} }
      : { host: url.host, path: '/', method: 'POST', service: 'ec2', region: 'vbs-1', body, headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' } };
    if (o.date) opts.headers['X-Amz-Date'] = o.date.toISOString().replace(/[:-]|\.\d{3}/g, '');
    const user = o.user ?? alice;
    if (!o.unsigned) aws4.sign(opts, { accessKeyId: user.accessKeyId, secretAccessKey: user.secret });
    const sent = o.tamper ? body.replace('Size=1', 'Size=2') : body;
    return new Promise((resolve, reject) => {
      const req = request({ host: url.hostname, port: url.port, path: opts.path, method: opts.method, headers: opts.headers as Record<string, string>, ca }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, body: text, requestId: String(res.headers['x-amzn-requestid']) }));
      });
      req.on('error', reject);
      if (!o.query) req.write(sent);
      req.end();
    });
  }

  it('serves a request signed in the Authorization header, and one signed in the query string', async () => {
    const post = await send({ Action: 'DescribeAvailabilityZones' });
    expect(post.status).toBe(200);
    expect(post.body).toContain('<DescribeAvailabilityZonesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">');
    expect(post.body).toContain(`<requestId>${post.requestId}</requestId>`);
    const get = await send({ Action: 'DescribeVolumes' }, { query: true });
    expect(get.status).toBe(200);
    expect(get.body).toContain('<volumeSet>');
  });

  it("refuses what EC2 refuses, with EC2's codes", async () => {
    const unsigned = await send({ Action: 'DescribeVolumes' }, { unsigned: true });
    expect([unsigned.status, codeOf(unsigned)]).toEqual([401, 'MissingAuthenticationToken']);
    const wrongSecret = await send({ Action: 'DescribeVolumes' }, { user: { accessKeyId: alice.accessKeyId, secret: 'x'.repeat(40) } });
    expect([wrongSecret.status, codeOf(wrongSecret)]).toEqual([403, 'SignatureDoesNotMatch']);
    const unknownKey = await send({ Action: 'DescribeVolumes' }, { user: { accessKeyId: 'AKIAAAAAAAAAAAAAAAAA', secret: alice.secret } });
    expect([unknownKey.status, codeOf(unknownKey)]).toEqual([401, 'AuthFailure']);
    const old = await send({ Action: 'DescribeVolumes' }, { date: new Date(Date.now() - 10 * 60_000) });
    expect([old.status, codeOf(old)]).toEqual([400, 'RequestExpired']);
    const tampered = await send({ Action: 'CreateVolume', Size: '1', AvailabilityZone: 'vbs-1a' }, { tamper: true });
    expect(codeOf(tampered)).toBe('SignatureDoesNotMatch');
    const unknownAction = await send({ Action: 'RunInstances' });
    expect([unknownAction.status, codeOf(unknownAction)]).toEqual([400, 'InvalidAction']);
    const unknownParameter = await send({ Action: 'DescribeVolumes', Colour: 'blue' });
    expect(codeOf(unknownParameter)).toBe('InvalidParameterValue');
    // Nothing was created by the refused requests.
    expect(((await aliceSoap.call('DescribeVolumes', {})).volume as unknown[] | undefined) ?? []).toHaveLength(0);
  });

  it('refuses a replayed change, and a revoked key from its next request on', async () => {
    const key = await d.vbs.cli('admin', 'user', 'keys', 'create', 'carol', '--data', d.vbs.dir, '--json');
    const second = JSON.parse(key.stdout) as { accessKeyId: string; secretAccessKey: string };
    const user = { accessKeyId: second.accessKeyId, secret: second.secretAccessKey };
    const vol = (await aliceSoap.call('CreateVolume', { size: 1 })).volume as { volumeId: string };
    // The same signed CreateTags twice: the second is a replay.
    const fixed = new Date();
    const first = await send({ Action: 'CreateTags', 'ResourceId.1': vol.volumeId, 'Tag.1.Key': 'a', 'Tag.1.Value': 'b' }, { date: fixed });
    const again = await send({ Action: 'CreateTags', 'ResourceId.1': vol.volumeId, 'Tag.1.Key': 'a', 'Tag.1.Value': 'b' }, { date: fixed });
    expect(first.status).toBe(200);
    expect(codeOf(again)).toBe('AuthFailure');
    expect((await send({ Action: 'DescribeVolumes' }, { user })).status).toBe(200);
    const list = await d.vbs.cli('admin', 'user', 'keys', 'list', 'carol', '--data', d.vbs.dir);
    expect(list.stdout).toContain(second.accessKeyId);
    expect(list.stdout).not.toContain(second.secretAccessKey);
    expect((await d.vbs.cli('admin', 'user', 'keys', 'revoke', 'carol', second.accessKeyId, '--data', d.vbs.dir)).code).toBe(0);
    expect(codeOf(await send({ Action: 'DescribeVolumes' }, { user }))).toBe('AuthFailure');
    // Revoking the user revokes their other key as well: the AWS CLI is refused at once.
    expect((await aws(d, carol, 'ec2', 'describe-volumes')).code).toBe(0);
    expect((await d.vbs.cli('admin', 'user', 'revoke', 'carol', '--data', d.vbs.dir)).code).toBe(0);
    const refused = await aws(d, carol, 'ec2', 'describe-volumes');
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('AuthFailure');
  });

  it('keeps secrets out of the database: what is stored is sealed with the key file', async () => {
    const db = readFileSync(join(d.vbs.dir, 'vbs.db'));
    const wal = (() => {
      try {
        return readFileSync(join(d.vbs.dir, 'vbs.db-wal'));
      } catch {
        return Buffer.alloc(0);
      }
    })();
    expect(db.includes(alice.secret)).toBe(false);
    expect(wal.includes(alice.secret)).toBe(false);
    expect(readFileSync(join(d.vbs.dir, 'audit.log'), 'utf8')).not.toContain(alice.secret);
  });

  it('runs the AWS CLI: create-volume, wait volume-available, --query, --output table, auto-pagination', async () => {
    const created = await aws(d, alice, 'ec2', 'create-volume', '--size', '1', '--availability-zone', 'vbs-1a', '--query', 'VolumeId', '--output', 'text');
    expect(created.stderr).toBe('');
    const id = created.stdout.trim();
    expect(id).toMatch(/^vol-[0-9a-f]{17}$/);
    expect((await aws(d, alice, 'ec2', 'wait', 'volume-available', '--volume-ids', id)).code).toBe(0);
    for (let i = 0; i < 6; i++) await aliceSoap.call('CreateVolume', { size: 1 });
    const all = JSON.parse((await aliceSoap.call('DescribeVolumes', {})).volume ? JSON.stringify(((await aliceSoap.call('DescribeVolumes', {})).volume as { volumeId: string }[]).map((v) => v.volumeId)) : '[]') as string[];
    // --page-size 5: the CLI follows NextToken itself and prints every volume.
    const paged = await aws(d, alice, 'ec2', 'describe-volumes', '--page-size', '5', '--query', 'Volumes[].VolumeId');
    expect((JSON.parse(paged.stdout) as string[]).sort()).toEqual(all.sort());
    expect(all.length).toBeGreaterThan(5);
    const table = await aws(d, alice, 'ec2', 'describe-volumes', '--volume-ids', id, '--output', 'table');
    expect(table.stdout).toContain('DescribeVolumes');
    expect(table.stdout).toMatch(new RegExp(`\\|\\s+VolumeId\\s+\\|\\s+${id}`));
    expect(table.stdout).toMatch(/\|\s+State\s+\|\s+available/);
    const state = await aws(d, alice, 'ec2', 'describe-volumes', '--volume-ids', id, '--query', 'Volumes[0].[State,Size,AvailabilityZone]', '--output', 'text');
    expect(state.stdout.trim().split(/\s+/)).toEqual(['available', '1', 'vbs-1a']);
  });

  // boto3's test covers every wildcard filter and the zones' state; the AWS CLI (slow to start) passes one pattern list.
  it("filters with EC2's wildcards through the AWS CLI", async () => {
    const ids: string[] = [];
    for (const name of ['web-1', 'web-22', 'db-1', 'db-*']) {
      ids.push(((await aliceSoap.call('CreateVolume', { size: 1, tag: [{ key: 'role', value: name }] })).volume as { volumeId: string }).volumeId);
    }
    const r = await aws(d, alice, 'ec2', 'describe-volumes', '--filters', 'Name=tag:role,Values=web-?,db-\\*', '--query', 'Volumes[].VolumeId');
    expect((JSON.parse(r.stdout) as string[]).sort()).toEqual([ids[0], ids[3]].sort());
  });

  it('is one store with SOAP: the same volume both ways, the same quotas, the same audit lines', async () => {
    // Through SOAP, seen through EC2.
    const viaSoap = (await aliceSoap.call('CreateVolume', { size: 2, tag: [{ key: 'from', value: 'soap' }] })).volume as { volumeId: string; createTime: Date };
    const ec2View = await send({ Action: 'DescribeVolumes', 'VolumeId.1': viaSoap.volumeId });
    expect(ec2View.body).toContain(`<volumeId>${viaSoap.volumeId}</volumeId><size>2</size>`);
    expect(ec2View.body).toContain(`<createTime>${viaSoap.createTime.toISOString()}</createTime>`);
    expect(ec2View.body).toContain('<tagSet><item><key>from</key><value>soap</value></item></tagSet>');
    // Through EC2, seen through SOAP.
    const made = await send({ Action: 'CreateVolume', Size: '3', AvailabilityZone: 'vbs-1a', 'TagSpecification.1.ResourceType': 'volume', 'TagSpecification.1.Tag.1.Key': 'from', 'TagSpecification.1.Tag.1.Value': 'ec2' });
    const id = /<volumeId>(vol-[0-9a-f]{17})<\/volumeId>/.exec(made.body)![1]!;
    const soapView = ((await aliceSoap.call('DescribeVolumes', { volumeId: [id] })).volume as Record<string, unknown>[])[0]!;
    expect(soapView).toMatchObject({ volumeId: id, size: 3, owner: 'alice', availabilityZone: 'vbs-1a', tag: [{ key: 'from', value: 'ec2' }] });
    // The audit line of the EC2 create is the SOAP create's, under the EC2 answer's request id.
    const lines = await eventually(async () => {
      const found = readFileSync(join(d.vbs.dir, 'audit.log'), 'utf8').split('\n').filter((l) => l.includes(made.requestId));
      return found.length ? found : undefined;
    });
    expect(JSON.parse(lines[0]!)).toMatchObject({ requestId: made.requestId, caller: 'alice', operation: 'CreateVolume', result: 'ok', resource: id });
    // Quotas: one limit for both APIs.
    const held = ((await aliceSoap.call('DescribeVolumes', {})).volume as unknown[]).length;
    await admin.call('SetQuota', { user: 'alice', volumes: held });
    const over = await send({ Action: 'CreateVolume', Size: '1', AvailabilityZone: 'vbs-1a' });
    expect([over.status, codeOf(over)]).toEqual([400, 'VolumeLimitExceeded']);
    await expect(aliceSoap.call('CreateVolume', { size: 1 })).rejects.toMatchObject({ code: 'QuotaExceeded' });
    await admin.call('SetQuota', { user: 'alice', volumes: 1000 });
  });
});
