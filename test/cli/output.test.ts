import { describe, expect, it } from 'vitest';
import { attachment, fault, FakeFront, fakeRuntime, rec, run, snapshot, SNAP, volume, VOL, VOL2 } from './fakes.js';

async function jsonOf(front: FakeFront, ...args: string[]) {
  const runtime = fakeRuntime(front);
  const code = await run(runtime, '--json', ...args);
  return { code, json: JSON.parse(runtime.stdout.text) as unknown, stderr: runtime.stderr.text };
}

describe('--json', () => {
  it('create-volume prints the volume record', async () => {
    const front = new FakeFront({ CreateVolume: () => rec({ volume: volume({ status: 'creating', snapshotId: SNAP }) }) });
    const { code, json } = await jsonOf(front, 'create-volume', '5', 'data', SNAP);
    expect(code).toBe(0);
    expect(json).toEqual({
      volumeId: VOL, size: 5, comment: 'data', snapshotId: SNAP, status: 'creating',
      createTime: '2026-03-01T10:20:30.456Z', owner: 'alice', attachments: [],
    });
    expect(front.calls[0]!.input).toMatchObject({ size: 5, comment: 'data', snapshotId: SNAP });
  });

  it('describe-volumes prints an array, empty when there are none', async () => {
    const none = await jsonOf(new FakeFront({ DescribeVolumes: () => rec({ volume: [] }) }), 'describe-volumes');
    expect(none.json).toEqual([]);
    const two = await jsonOf(new FakeFront({ DescribeVolumes: () => rec({ volume: [volume(), volume({ volumeId: VOL2 })] }) }), 'describe-volumes');
    expect((two.json as { volumeId: string }[]).map((v) => v.volumeId)).toEqual([VOL, VOL2]);
  });

  it('describe-volumes sends the ids it was given', async () => {
    const front = new FakeFront({ DescribeVolumes: () => rec({ volume: [] }) });
    await jsonOf(front, 'describe-volumes', VOL, VOL2);
    expect(front.calls[0]!.input).toEqual({ volumeId: [VOL, VOL2] });
  });

  it('describe-snapshots prints an array with progress', async () => {
    const { json } = await jsonOf(new FakeFront({ DescribeSnapshots: () => rec({ snapshot: [snapshot({ status: 'pending', progress: 40 })] }) }), 'describe-snapshots');
    expect(json).toEqual([
      { snapshotId: SNAP, volumeId: VOL, size: 5, comment: 'nightly', status: 'pending', progress: 40, createTime: '2026-03-01T10:20:30.456Z', owner: 'alice' },
    ]);
  });

  it('deletes print {"return": true}', async () => {
    expect((await jsonOf(new FakeFront({ DeleteVolume: () => rec({ return: true }) }), 'delete-volume', VOL)).json).toEqual({ return: true });
    expect((await jsonOf(new FakeFront({ DeleteSnapshot: () => rec({ return: true }) }), 'delete-snapshot', SNAP)).json).toEqual({ return: true });
  });

  it('attach-volume sends mode w by default and prints the attachment', async () => {
    const front = new FakeFront({ AttachVolume: (i) => rec({ attachment: attachment({ ...(i as object), status: 'attaching' }) }) });
    const { json } = await jsonOf(front, 'attach-volume', VOL, 'localhost', 'vm1', '/dev/xvdb');
    expect(front.calls[0]!.input).toEqual({ volumeId: VOL, vmmHost: 'localhost', vmId: 'vm1', device: '/dev/xvdb', mode: 'w' });
    expect(json).toEqual({ volumeId: VOL, vmmHost: 'localhost', vmId: 'vm1', device: '/dev/xvdb', mode: 'w', status: 'attaching', attachTime: '2026-03-01T10:20:30.456Z' });
  });

  it('detach-volume passes --vmm-host and --vm-id and prints the attachment', async () => {
    const front = new FakeFront({ DetachVolume: () => rec({ attachment: attachment({ status: 'detaching', mode: 'r' }) }) });
    const { json } = await jsonOf(front, 'detach-volume', VOL, '--vmm-host', 'localhost', '--vm-id', 'vm1');
    expect(front.calls[0]!.input).toEqual({ volumeId: VOL, vmmHost: 'localhost', vmId: 'vm1' });
    expect(json).toMatchObject({ status: 'detaching', mode: 'r' });
  });
});

describe('tables and faults', () => {
  it('describe-volumes prints a table by default', async () => {
    const runtime = fakeRuntime(new FakeFront({ DescribeVolumes: () => rec({ volume: [volume({ status: 'in-use', attachments: [attachment()] })] }) }));
    expect(await run(runtime, 'describe-volumes')).toBe(0);
    const lines = runtime.stdout.text.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+SIZE\(GiB\)\s+STATUS\s+ATTACHMENTS\s+SNAPSHOT\s+COMMENT\s+CREATED\s+OWNER$/);
    expect(lines[1]).toContain('vm1@localhost:xvdb(w)');
  });

  it('a delete without --json says what it did', async () => {
    const runtime = fakeRuntime(new FakeFront({ DeleteVolume: () => rec({ return: true }) }));
    expect(await run(runtime, 'delete-volume', VOL)).toBe(0);
    expect(runtime.stdout.text).toBe(`${VOL}: deleting\n`);
  });

  it('prints a fault as "vbs: Code: message" with exit 1 and nothing on stdout', async () => {
    const front = new FakeFront({ DeleteVolume: () => { throw fault('VolumeInUse', `The volume ${VOL} is attached to vm1@localhost.`); } });
    const runtime = fakeRuntime(front);
    expect(await run(runtime, 'delete-volume', VOL)).toBe(1);
    expect(runtime.stderr.text).toBe(`vbs: VolumeInUse: The volume ${VOL} is attached to vm1@localhost.\n`);
    expect(runtime.stdout.text).toBe('');
  });

  it('prints an unexpected error without a stack trace unless VBS_DEBUG is set', async () => {
    const broken = () => new FakeFront({ DescribeVolumes: () => { throw new TypeError('x is undefined'); } });
    const quiet = fakeRuntime(broken());
    expect(await run(quiet, 'describe-volumes')).toBe(1);
    expect(quiet.stderr.text).toBe('vbs: unexpected error: x is undefined\n');

    const debug = fakeRuntime(broken(), { env: { VBS_CONFIG: '/c.json', VBS_DEBUG: '1' } });
    await run(debug, 'describe-volumes');
    expect(debug.stderr.text).toMatch(/^vbs: unexpected error: TypeError: x is undefined\n\s+at /);
  });
});
