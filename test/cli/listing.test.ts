import { describe, expect, it } from 'vitest';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { FakeFront, fakeRuntime, rec, run, snapshot, volume, VOL, VOL2 } from './fakes.js';

/** A front with `n` volumes that pages them as the real one does: maxResults at a time, the token an index. */
function pagingFront(n: number): FakeFront {
  const all = Array.from({ length: n }, (_, i) => volume({ volumeId: `vol-${i.toString(16).padStart(17, '0')}` }));
  return new FakeFront({
    DescribeVolumes: (input: XmlRecord) => {
      const start = input.nextToken === undefined ? 0 : Number(input.nextToken);
      const size = (input.maxResults as number | undefined) ?? n;
      const end = Math.min(n, start + size);
      return rec({ volume: all.slice(start, end), nextToken: end < n ? String(end) : undefined });
    },
  });
}

async function cli(front: FakeFront, ...args: string[]) {
  const runtime = fakeRuntime(front);
  const code = await run(runtime, ...args);
  return { code, stdout: runtime.stdout.text, stderr: runtime.stderr.text };
}

describe('describe-volumes paging', () => {
  it('pages through everything by default, 1,000 at a time', async () => {
    const front = pagingFront(2500);
    const { code, stdout } = await cli(front, '--json', 'describe-volumes');
    expect(code).toBe(0);
    expect((JSON.parse(stdout) as unknown[]).length).toBe(2500);
    expect(front.calls.map((c) => c.input)).toEqual([{ maxResults: 1000 }, { maxResults: 1000, nextToken: '1000' }, { maxResults: 1000, nextToken: '2000' }]);
  });

  it('--max-results asks for one page and gives the token that continues it', async () => {
    const front = pagingFront(12);
    const first = await cli(front, '--json', 'describe-volumes', '--max-results', '5');
    expect(first.code).toBe(0);
    const page = JSON.parse(first.stdout) as { volumes: { volumeId: string }[]; nextToken?: string };
    expect(page.volumes.length).toBe(5);
    expect(page.nextToken).toBe('5');
    const table = await cli(front, 'describe-volumes', '--max-results', '5', '--starting-token', '10');
    expect(table.stdout).not.toMatch(/NextToken/);
    expect(table.stdout.trimEnd().split('\n').length).toBe(3); // header and the last two
    const middle = await cli(front, 'describe-volumes', '--max-results', '5', '--starting-token', page.nextToken!);
    expect(middle.stdout.trimEnd().split('\n').at(-1)).toBe('NextToken: 10');
    expect(front.calls.map((c) => c.input)).toEqual([{ maxResults: 5 }, { maxResults: 5, nextToken: '10' }, { maxResults: 5, nextToken: '5' }]);
  });

  it('--starting-token alone pages through the rest', async () => {
    const front = pagingFront(1500);
    const { stdout } = await cli(front, '--json', 'describe-volumes', '--starting-token', '200');
    expect((JSON.parse(stdout) as unknown[]).length).toBe(1300);
    expect(front.calls.map((c) => c.input)).toEqual([{ maxResults: 1000, nextToken: '200' }, { maxResults: 1000, nextToken: '1200' }]);
  });

  it('stops when the front repeats a token instead of paging forever', async () => {
    const front = new FakeFront({ DescribeVolumes: () => rec({ volume: [volume()], nextToken: 'again' }) });
    const { code } = await cli(front, 'describe-volumes');
    expect(code).toBe(1);
    expect(front.calls.length).toBe(2);
  });

  it('--filter name=value, repeated: one name\'s values together, names apart', async () => {
    const front = pagingFront(3);
    await cli(front, 'describe-volumes', '--filter', 'status=available', '--filter', 'commentPrefix=a=b', '--filter', 'status=in-use', '--filter', 'attachment.vmmHost=localhost');
    expect(front.calls[0]!.input).toEqual({
      maxResults: 1000,
      filter: [
        { name: 'status', value: ['available', 'in-use'] },
        { name: 'commentPrefix', value: ['a=b'] },
        { name: 'attachment.vmmHost', value: ['localhost'] },
      ],
    });
  });

  it('ids are sent alone, with their filters', async () => {
    const front = new FakeFront({ DescribeVolumes: () => rec({ volume: [volume()] }) });
    expect((await cli(front, 'describe-volumes', VOL, VOL2, '--filter', 'size=5')).code).toBe(0);
    expect(front.calls[0]!.input).toEqual({ volumeId: [VOL, VOL2], filter: [{ name: 'size', value: ['5'] }] });
  });

  it('refuses before sending anything: bad filters, bad --max-results, ids with paging', async () => {
    const front = new FakeFront({});
    for (const [args, code] of [
      [['--filter', 'status'], /--filter expects name=value/],
      [['--filter', 'colour=red'], /InvalidParameterValue/],
      [['--filter', 'status=sleeping'], /InvalidParameterValue/],
      [['--max-results', '4'], /InvalidParameterValue/],
      [['--max-results', '1001'], /InvalidParameterValue/],
      [['--max-results', 'ten'], /InvalidParameterValue/],
      [[VOL, '--max-results', '5'], /InvalidParameterCombination/],
      [[VOL, '--starting-token', 'abc'], /InvalidParameterCombination/],
    ] as const) {
      const r = await cli(front, 'describe-volumes', ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(code);
    }
    expect(front.calls).toEqual([]);
  });
});

describe('describe-snapshots paging', () => {
  it('takes the same flags, with the snapshot filters', async () => {
    const front = new FakeFront({ DescribeSnapshots: () => rec({ snapshot: [snapshot()], nextToken: 'tok' }) });
    const r = await cli(front, '--json', 'describe-snapshots', '--max-results', '5', '--filter', `volumeId=${VOL}`);
    expect(JSON.parse(r.stdout)).toMatchObject({ snapshots: [{ volumeId: VOL }], nextToken: 'tok' });
    expect(front.calls[0]!.input).toEqual({ maxResults: 5, filter: [{ name: 'volumeId', value: [VOL] }] });
    expect((await cli(front, 'describe-snapshots', '--filter', 'availabilityZone=vbs-1a')).code).toBe(2);
  });
});
