import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VbsError } from '../../src/core/errors.js';
import { writeThinCommands } from '../../src/soak/deployment.js';
import type { SoapClient } from '../../src/soap/client.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { assignVms, eventually, startVbs, type Vbs } from './harness.js';

/**
 * DescribeVolumes and DescribeSnapshots pages and filters through the real
 * front (`vbs up`, mutual TLS), one deployment for the file. Volumes are thin
 * (truncate) so dozens cost no disk.
 */
let vbs: Vbs;
let alice: SoapClient;
let bob: SoapClient;
const commandsDir = mkdtempSync(join(tmpdir(), 'vbs-paging-cmds-'));

interface Volume {
  volumeId: string;
  size: number;
  status: string;
  comment: string;
  snapshotId?: string;
  attachments: { vmmHost: string; vmId: string; status: string }[];
}
interface Snapshot {
  snapshotId: string;
  volumeId: string;
  status: string;
  comment: string;
}

const filter = (name: string, ...value: string[]) => ({ name, value });

async function createVolumes(client: SoapClient, n: number, comment: (i: number) => string, size = (i: number) => 1 + (i % 2)): Promise<string[]> {
  const made = await Promise.all(Array.from({ length: n }, (_, i) => client.call('CreateVolume', { size: size(i), comment: comment(i) })));
  const ids = made.map((m) => (m.volume as unknown as Volume).volumeId);
  await eventually(async () => {
    const out = await client.call('DescribeVolumes', { volumeId: ids });
    return (out.volume as unknown as Volume[]).every((v) => v.status === 'available') ? true : undefined;
  }, 60_000);
  return ids;
}

async function volumes(client: SoapClient, input: XmlRecord): Promise<{ ids: string[]; nextToken?: string }> {
  const out = await client.call('DescribeVolumes', input);
  return { ids: (out.volume as unknown as Volume[]).map((v) => v.volumeId), nextToken: out.nextToken as string | undefined };
}

async function faultOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof VbsError) return err.code;
    throw err;
  }
  return 'no fault';
}

let stable: string[] = [];
let victims: string[] = [];

beforeAll(async () => {
  const commands = join(commandsDir, 'commands.properties');
  writeThinCommands(commands);
  vbs = await startVbs(['--commands', commands]);
  alice = vbs.soap('alice');
  bob = vbs.soap('bob');
  await assignVms(vbs.soap(), 'alice', 'localhost', ['vm1', 'vm2']); // alice attaches into these
  stable = await createVolumes(alice, 23, (i) => `stable ${i}`);
  victims = await createVolumes(alice, 4, (i) => `victim ${i}`);
  await createVolumes(bob, 2, () => 'stable bob');
}, 120_000);

afterAll(async () => {
  await vbs?.stop();
  rmSync(commandsDir, { recursive: true, force: true });
});

describe('DescribeVolumes pages', () => {
  it('pages through 23 volumes 5 at a time, each seen once, while others are created and deleted', async () => {
    const seen: string[] = [];
    let nextToken: string | undefined;
    let pages = 0;
    const input = { filter: [filter('commentPrefix', 'stable', 'victim', 'new')], maxResults: 5 };
    do {
      const page = await volumes(alice, { ...input, nextToken });
      expect(page.ids.length).toBeLessThanOrEqual(5);
      seen.push(...page.ids);
      nextToken = page.nextToken;
      // Between pages: a volume deleted (one already seen, then one not yet seen) and one created.
      const victim = victims[pages];
      if (victim) await alice.call('DeleteVolume', { volumeId: victim });
      if (pages < 3) await alice.call('CreateVolume', { size: 1, comment: `new ${pages}` });
      pages++;
    } while (nextToken !== undefined && pages < 50);
    expect(new Set(seen).size).toBe(seen.length);
    for (const id of stable) expect(seen.filter((s) => s === id).length, id).toBe(1);
    expect(pages).toBeGreaterThanOrEqual(5);
  });

  it('gives no token on the last page, and all records without maxResults', async () => {
    const all = await volumes(alice, { filter: [filter('commentPrefix', 'stable')] });
    expect(all.ids.sort()).toEqual([...stable].sort());
    expect(all.nextToken).toBeUndefined();
    const last = await volumes(alice, { filter: [filter('commentPrefix', 'stable')], maxResults: 23 });
    expect(last.ids.length).toBe(23);
    expect(last.nextToken).toBeUndefined();
  });

  it('refuses maxResults out of 5-1000, garbled tokens, and a token reused with other filters or on snapshots', async () => {
    expect(await faultOf(volumes(alice, { maxResults: 4 }))).toBe('InvalidParameterValue');
    expect(await faultOf(volumes(alice, { maxResults: 1001 }))).toBe('InvalidParameterValue');
    expect(await faultOf(volumes(alice, { maxResults: 5, nextToken: 'garbled!' }))).toBe('InvalidParameterValue');
    expect(await faultOf(volumes(alice, { maxResults: 5, nextToken: Buffer.from('{"v":1}').toString('base64url') }))).toBe('InvalidParameterValue');
    const { nextToken } = await volumes(alice, { maxResults: 5, filter: [filter('size', '1')] });
    expect(nextToken).toBeDefined();
    expect(await faultOf(volumes(alice, { maxResults: 5, nextToken, filter: [filter('size', '2')] }))).toBe('InvalidParameterValue');
    expect(await faultOf(alice.call('DescribeSnapshots', { maxResults: 5, nextToken }))).toBe('InvalidParameterValue');
    // The same token with the same filters continues.
    expect((await volumes(alice, { maxResults: 5, nextToken, filter: [filter('size', '1')] })).ids.length).toBe(5);
  });

  it('refuses ids with maxResults or nextToken: InvalidParameterCombination', async () => {
    expect(await faultOf(volumes(alice, { volumeId: [stable[0]!], maxResults: 5 }))).toBe('InvalidParameterCombination');
    const { nextToken } = await volumes(alice, { maxResults: 5 });
    expect(await faultOf(volumes(alice, { volumeId: [stable[0]!], nextToken }))).toBe('InvalidParameterCombination');
  });
});

describe('DescribeVolumes filters', () => {
  let source: string;
  let snapshotId: string;
  let clone: string;

  beforeAll(async () => {
    source = stable[0]!;
    const snap = (await alice.call('CreateSnapshot', { volumeId: source, comment: 'filters snap' })).snapshot as unknown as Snapshot;
    snapshotId = snap.snapshotId;
    await eventually(async () => {
      const s = (await alice.call('DescribeSnapshots', { snapshotId: [snapshotId] })).snapshot as unknown as Snapshot[];
      return s[0]?.status === 'completed' ? true : undefined;
    }, 60_000);
    clone = (await createVolumes(alice, 1, () => 'clone', () => 3))[0]!;
    await alice.call('CreateVolume', { size: 3, comment: 'clone of snap', snapshotId });
    await alice.call('AttachVolume', { volumeId: stable[1]!, vmmHost: 'localhost', vmId: 'vm1', device: 'xvdb' });
    await alice.call('AttachVolume', { volumeId: stable[2]!, vmmHost: 'localhost', vmId: 'vm2', device: 'xvdc', mode: 'r' });
    await eventually(async () => {
      const v = (await alice.call('DescribeVolumes', { volumeId: [stable[1]!, stable[2]!] })).volume as unknown as Volume[];
      return v.every((x) => x.attachments[0]?.status === 'attached') ? true : undefined;
    }, 60_000);
  }, 120_000);

  const records = async (...filters: { name: string; value: string[] }[]) =>
    (await alice.call('DescribeVolumes', { filter: filters })).volume as unknown as Volume[];

  it('status, size and comment prefix, values ORed', async () => {
    const inUse = await records(filter('status', 'in-use'));
    expect(inUse.map((v) => v.volumeId).sort()).toEqual([stable[1]!, stable[2]!].sort());
    const sized = await records(filter('size', '2', '3'));
    expect(sized.length).toBeGreaterThan(0);
    expect(sized.every((v) => v.size === 2 || v.size === 3)).toBe(true);
    const prefixed = await records(filter('commentPrefix', 'stable 1', 'clone'));
    expect(prefixed.every((v) => v.comment.startsWith('stable 1') || v.comment.startsWith('clone'))).toBe(true);
    // stable 1, stable 10..19, clone, clone of snap
    expect(prefixed.length).toBe(13);
  });

  it('snapshotId and the attachment filters', async () => {
    const fromSnap = await records(filter('snapshotId', snapshotId));
    expect(fromSnap.map((v) => v.comment)).toEqual(['clone of snap']);
    expect((await records(filter('attachment.vmmHost', 'localhost'))).map((v) => v.volumeId).sort()).toEqual([stable[1]!, stable[2]!].sort());
    expect((await records(filter('attachment.vmId', 'vm2'))).map((v) => v.volumeId)).toEqual([stable[2]!]);
    expect((await records(filter('attachment.status', 'attached'), filter('attachment.vmId', 'vm1', 'vm3'))).map((v) => v.volumeId)).toEqual([stable[1]!]);
    expect(await records(filter('attachment.vmmHost', 'otherhost'))).toEqual([]);
  });

  it('filters ANDed, with ids and with pages', async () => {
    const both = await records(filter('size', '2'), filter('commentPrefix', 'stable'));
    expect(both.every((v) => v.size === 2 && v.comment.startsWith('stable'))).toBe(true);
    expect(both.length).toBe(11); // stable 1, 3, ..., 21
    // Ids narrowed by a filter: a named id the filter leaves out is not an error.
    const named = (await alice.call('DescribeVolumes', { volumeId: [stable[0]!, stable[1]!, clone], filter: [filter('status', 'in-use')] })).volume as unknown as Volume[];
    expect(named.map((v) => v.volumeId)).toEqual([stable[1]!]);
    const seen: string[] = [];
    let nextToken: string | undefined;
    do {
      const page = await volumes(alice, { filter: [filter('size', '2'), filter('commentPrefix', 'stable')], maxResults: 5, nextToken });
      seen.push(...page.ids);
      nextToken = page.nextToken;
    } while (nextToken);
    expect(seen).toEqual(both.map((v) => v.volumeId));
  });

  it('refuses unknown filters and bad values; owner is for administrators', async () => {
    expect(await faultOf(records(filter('colour', 'red')))).toBe('InvalidParameterValue');
    expect(await faultOf(records(filter('status', 'sleeping')))).toBe('InvalidParameterValue');
    expect(await faultOf(records(filter('size', 'big')))).toBe('InvalidParameterValue');
    expect(await faultOf(records({ name: 'status', value: [] }))).toBe('InvalidParameterValue');
    expect(await faultOf(records(filter('attachment.vmId', '--all')))).toBe('InvalidParameterValue');
    expect(await faultOf(records(filter('owner', 'bob')))).toBe('UnauthorizedOperation');
  });

  it('never shows another owner\'s records', async () => {
    const bobs = (await bob.call('DescribeVolumes', { filter: [filter('commentPrefix', 'stable')] })).volume as unknown as Volume[];
    expect(bobs.length).toBe(2);
    expect(bobs.every((v) => v.comment === 'stable bob')).toBe(true);
    expect(await faultOf(bob.call('DescribeVolumes', { volumeId: [stable[0]!] }))).toBe('InvalidVolume.NotFound');
  });
});

describe('DescribeSnapshots pages and filters', () => {
  it('pages 5 at a time and filters by status, volumeId and comment prefix', async () => {
    const made = await Promise.all(stable.slice(3, 10).map((volumeId, i) => alice.call('CreateSnapshot', { volumeId, comment: `nightly ${i}` })));
    const ids = made.map((m) => (m.snapshot as unknown as Snapshot).snapshotId);
    await eventually(async () => {
      const s = (await alice.call('DescribeSnapshots', { snapshotId: ids })).snapshot as unknown as Snapshot[];
      return s.every((x) => x.status === 'completed') ? true : undefined;
    }, 60_000);
    const seen: string[] = [];
    let nextToken: string | undefined;
    do {
      const out = await alice.call('DescribeSnapshots', { filter: [filter('commentPrefix', 'nightly')], maxResults: 5, nextToken });
      seen.push(...(out.snapshot as unknown as Snapshot[]).map((s) => s.snapshotId));
      nextToken = out.nextToken as string | undefined;
    } while (nextToken);
    expect(seen.sort()).toEqual([...ids].sort());
    const one = (await alice.call('DescribeSnapshots', { filter: [filter('volumeId', stable[4]!), filter('status', 'completed')] })).snapshot as unknown as Snapshot[];
    expect(one.map((s) => s.snapshotId)).toEqual([ids[1]!]);
    // size is a snapshot filter now (EC2's volume-size); an attachment's is not.
    expect((await alice.call('DescribeSnapshots', { filter: [filter('volumeId', stable[4]!), filter('size', '1')] })).snapshot).toHaveLength(1);
    expect(await faultOf(alice.call('DescribeSnapshots', { filter: [filter('attachment.vmId', 'vm1')] }))).toBe('InvalidParameterValue');
    expect(await faultOf(alice.call('DescribeSnapshots', { snapshotId: [ids[0]!], maxResults: 5 }))).toBe('InvalidParameterCombination');
  });
});

describe('the CLI against the front', () => {
  it('pages everything by default; --max-results and --starting-token give one page at a time', async () => {
    await createVolumes(vbs.soap('admin'), 7, (i) => `cli ${i}`);
    const all = await vbs.cli('--json', 'describe-volumes', '--filter', 'commentPrefix=cli ');
    expect(all.code).toBe(0);
    expect((JSON.parse(all.stdout) as Volume[]).length).toBe(7);
    const first = await vbs.cli('--json', 'describe-volumes', '--filter', 'commentPrefix=cli ', '--max-results', '5');
    const page = JSON.parse(first.stdout) as { volumes: Volume[]; nextToken: string };
    expect(page.volumes.length).toBe(5);
    const rest = await vbs.cli('--json', 'describe-volumes', '--filter', 'commentPrefix=cli ', '--max-results', '5', '--starting-token', page.nextToken);
    const second = JSON.parse(rest.stdout) as { volumes: Volume[]; nextToken?: string };
    expect(second.volumes.length).toBe(2);
    expect(second.nextToken).toBeUndefined();
    const wrong = await vbs.cli('describe-volumes', '--filter', 'size=1', '--max-results', '5', '--starting-token', page.nextToken);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/InvalidParameterValue/);
  });
});
