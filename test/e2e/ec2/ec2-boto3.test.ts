import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assignVms } from '../harness.js';
import { awsEnv, startEc2Deployment, type Ec2Deployment, type Ec2User } from './deployment.js';

const run = promisify(execFile);

/**
 * Issue 18: boto3 (Debian's python3-boto3, unmodified) drives every EC2
 * action against a real `vbs up`, in one Python process (boto3_flow.py)
 * whose observations are asserted here: waiters, paginators, filters, tags,
 * sharing (createVolumePermission), attach by instance id with EC2 device
 * names, and another user's resources answered as not found.
 */
describe('EC2 API through boto3', () => {
  let d: Ec2Deployment;
  let alice: Ec2User;
  let bob: Ec2User;
  let seen: Record<string, unknown>;

  beforeAll(async () => {
    d = await startEc2Deployment();
    alice = await d.user('alice');
    bob = await d.user('bob');
    const admin = d.vbs.soap();
    await assignVms(admin, 'alice', 'localhost', ['vm1']);
    await assignVms(admin, 'bob', 'localhost', ['vm2']);
    const script = join(import.meta.dirname, 'boto3_flow.py');
    const r = await run('/usr/bin/python3', [script, d.endpoint, join(alice.dir, 'ca.crt'), `${alice.name}:${alice.accessKeyId}:${alice.secret}`, `${bob.name}:${bob.accessKeyId}:${bob.secret}`], {
      env: awsEnv(alice),
      timeout: 240_000,
    });
    seen = JSON.parse(r.stdout) as Record<string, unknown>;
  }, 300_000);

  afterAll(async () => {
    await d?.vbs.stop();
  });

  it('creates volumes in a zone with tags, waits for them, and honours ClientToken and VolumeType', () => {
    expect(seen.zones).toEqual(['vbs-1a']);
    expect(seen.zone_state).toEqual([['vbs-1a', 'available', 'vbs-1', []]]);
    expect(seen.created).toMatchObject({ size: 1, zone: 'vbs-1a', tags: ['Name', 'team'] });
    expect(seen.available).toBe('available');
    expect(seen.token_same).toBe(true);
    expect(seen.token_mismatch).toBe('IdempotentParameterMismatch');
    expect(seen.bad_type).toBe('InvalidParameterValue');
    expect(seen.bad_zone).toBe('InvalidParameterValue');
  });

  it("filters volumes by EC2's filter names", () => {
    for (const k of ['filter_tag', 'filter_tag_key', 'filter_status', 'filter_zone', 'filter_size', 'filter_volume_id', 'filter_attached', 'filter_device']) expect(seen[k], k).toBe(true);
    expect(seen.filter_unknown).toBe('InvalidParameterValue');
  });

  it("matches EC2's wildcards (* ? and \\ escapes) in volume, snapshot and tag filters", () => {
    expect(seen.wildcards).toEqual({ tag_star: true, tag_question: true, tag_too_short: [], tag_escaped: [], device: true, status: true, volume_id: true, size_refused: 'InvalidParameterValue' });
    expect(seen.snapshots_wildcard).toBe(true);
    expect(seen.snapshots_description).toEqual([true, true, false]);
    expect(seen.tags_wildcard).toEqual(['snapshot', 'volume']);
  });

  it("serves boto3's presigned URLs by GET (signed for POST or for GET), refuses a replayed change and a wrong secret", () => {
    expect(seen.presigned).toEqual({
      signed_for_post: [200, true],
      signed_for_get: [200, true],
      change: 200,
      tagged: ['presigned url'],
      replay: [401, true],
      wrong_secret: [403, true],
    });
  });

  it('grows a volume with ModifyVolume and follows it with DescribeVolumesModifications', () => {
    expect(seen.modify).toEqual({ volume: true, original: 1, target: 2 });
    expect(seen.modified).toEqual({ state: 'completed', size: 2, by_state: true });
    expect(seen.shrink).toBe('InvalidParameterValue');
    expect(seen.modify_other).toBe('InvalidVolume.NotFound');
  });

  it('attaches by instance id with an EC2 device name (the hypervisor gets xvdf), waits for in-use, and detaches', () => {
    expect(seen.attach).toEqual({ state: 'attached', device: '/dev/xvdf', instance: 'vm1' });
    expect(seen.in_use).toEqual({ state: 'in-use', attachments: [['vm1', '/dev/xvdf', 'attached']] });
    expect(seen.delete_attached).toBe('VolumeInUse');
    expect(seen.detach_wrong_device).toBe('InvalidAttachment.NotFound');
    expect(seen.detach).toBe('detaching');
  });

  it('takes snapshots, waits for them, and lists them by owner and tag', () => {
    // A 1 GiB copy of a sparse file may be done before CreateSnapshot answers.
    expect(seen.snapshot).toMatchObject({ owner: 'alice', size: 1, description: 'first' });
    expect(['pending', 'completed']).toContain((seen.snapshot as { state: string }).state);
    expect(seen.snapshot_completed).toBe('completed');
    expect(seen.snapshots_self).toBe(true);
    expect(seen.snapshots_tag).toBe(true);
    expect(seen.snapshot_gone).toBe('InvalidSnapshot.NotFound');
  });

  it('shares a snapshot through createVolumePermission, and resets it', () => {
    expect(seen.other_sees_snapshot_before).toBe('InvalidSnapshot.NotFound');
    expect(seen.permission).toEqual(['bob']);
    expect(seen.other_sees_snapshot).toBe(true);
    expect(seen.other_restored).toEqual({ size: 1, snapshot: true });
    expect(seen.permission_after_reset).toEqual([]);
    expect(seen.other_snapshot_after_reset).toBe('InvalidSnapshot.NotFound');
  });

  it("answers another user's volume as InvalidVolume.NotFound, whatever the action", () => {
    for (const k of ['other_describe', 'other_delete', 'other_attach', 'other_snapshot', 'other_tag']) expect(seen[k], k).toBe('InvalidVolume.NotFound');
    expect(seen.other_list).toBe(true);
  });

  it('creates, filters and deletes tags, within their limits', () => {
    expect(seen.tags).toEqual([
      [false, 'snapshot', 'prod'],
      [true, 'volume', 'prod'],
    ]);
    expect(seen.tag_kept_on_value_mismatch).toBe(1);
    expect(seen.tag_deleted).toBe(0);
    expect(seen.tag_reserved).toBe('InvalidParameterValue');
    expect(seen.tag_limit).toBe('TagLimitExceeded');
  });

  it("pages with boto3's paginator (MaxResults 5, NextToken) and waits for deletion", () => {
    expect(seen.pages).toEqual([5, 3]);
    expect(seen.paged_ids_unique).toBe(true);
    expect(seen.max_results_too_small).toBe('InvalidParameterValue');
    // DryRun creates nothing: the pages above count every volume there is.
    expect(seen.dry_run).toBe('DryRunOperation');
    expect(seen.deleted).toBe('InvalidVolume.NotFound');
  });
});
