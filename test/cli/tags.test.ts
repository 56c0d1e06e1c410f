import { describe, expect, it } from 'vitest';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { FakeFront, fakeRuntime, rec, run, volume, VOL } from './fakes.js';

async function cli(front: FakeFront, ...args: string[]) {
  const runtime = fakeRuntime(front);
  const code = await run(runtime, ...args);
  return { code, stdout: runtime.stdout.text, stderr: runtime.stderr.text };
}

/** Issue 18: tags and zones are in our CLI too. */
describe('tags and zones in the vbs CLI', () => {
  it('create-tags and delete-tags send the tags, checked first', async () => {
    const front = new FakeFront({ CreateTags: () => rec({ return: true }), DeleteTags: () => rec({ return: true }) });
    expect((await cli(front, 'create-tags', VOL, '--tag', 'Name=data', '--tag', 'empty=')).code).toBe(0);
    expect((await cli(front, 'delete-tags', VOL, '--tag', 'Name', '--tag', 'env=prod')).code).toBe(0);
    expect(front.calls.map((c) => [c.operation, c.input])).toEqual([
      ['CreateTags', { resourceId: [VOL], tag: [{ key: 'Name', value: 'data' }, { key: 'empty', value: '' }] }],
      ['DeleteTags', { resourceId: [VOL], tag: [{ key: 'Name' }, { key: 'env', value: 'prod' }] }],
    ]);
    expect((await cli(front, 'create-tags', VOL, '--tag', 'aws:x=y')).code).toBe(2);
    expect((await cli(front, 'create-tags', 'i-123', '--tag', 'a=b')).code).toBe(2);
    expect(front.calls).toHaveLength(2);
  });

  it('describe-tags follows the pages; describe-availability-zones lists zones', async () => {
    const tag = (i: number): XmlRecord => ({ resourceId: VOL, resourceType: 'volume', key: `k${i}`, value: 'v' });
    const front = new FakeFront({
      DescribeTags: (input: XmlRecord) => rec(input.nextToken === undefined ? { tag: [tag(1)], nextToken: 't' } : { tag: [tag(2)] }),
      DescribeAvailabilityZones: () => rec({ zone: [{ zoneName: 'vbs-1a', state: 'available', regionName: 'vbs-1' }] }),
    });
    const tags = await cli(front, '--json', 'describe-tags', '--filter', 'key=k1,k2');
    expect((JSON.parse(tags.stdout) as { key: string }[]).map((t) => t.key)).toEqual(['k1', 'k2']);
    expect(front.calls[0]!.input).toEqual({ filter: [{ name: 'key', value: ['k1', 'k2'] }], maxResults: 1000 });
    const zones = await cli(front, 'describe-availability-zones');
    expect(zones.stdout).toMatch(/vbs-1a\s+available\s+vbs-1/);
  });

  it('create-volume takes a zone and tags', async () => {
    const front = new FakeFront({ CreateVolume: () => rec({ volume: volume() }) });
    expect((await cli(front, 'create-volume', '1', '--zone', 'vbs-1a', '--tag', 'Name=x')).code).toBe(0);
    expect(front.calls[0]!.input).toMatchObject({ size: 1, availabilityZone: 'vbs-1a', tag: [{ key: 'Name', value: 'x' }] });
  });
});
