import { describe, expect, it } from 'vitest';
import { Progress } from '../../src/cli/progress.js';
import type { Volume } from '../../src/cli/records.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { attachment, Capture, fault, FakeFront, fakeRuntime, rec, run, snapshot, SNAP, volume, VOL } from './fakes.js';

/** Answers successive calls with successive values; the last one repeats. */
function sequence(...answers: (() => XmlRecord)[]): () => XmlRecord {
  let n = 0;
  return () => answers[Math.min(n++, answers.length - 1)]!();
}

const volumes = (...vs: Volume[]) => () => rec({ volume: vs });
const notFound = () => () => {
  throw fault('InvalidVolume.NotFound', `The volume ${VOL} does not exist.`);
};

describe('create-volume --wait', () => {
  it('polls until available, backing off from 250 ms, and prints the final record', async () => {
    const front = new FakeFront({
      CreateVolume: () => rec({ volume: volume({ status: 'creating' }) }),
      DescribeVolumes: sequence(volumes(volume({ status: 'creating' })), volumes(volume({ status: 'creating' })), volumes(volume())),
    });
    const runtime = fakeRuntime(front);
    expect(await run(runtime, '--wait', '--json', 'create-volume', '5')).toBe(0);
    expect(front.operations()).toEqual(['CreateVolume', 'DescribeVolumes', 'DescribeVolumes', 'DescribeVolumes']);
    expect(front.calls[1]!.input).toEqual({ volumeId: [VOL] });
    expect(runtime.slept).toEqual([250, 500]);
    expect(JSON.parse(runtime.stdout.text)).toMatchObject({ volumeId: VOL, status: 'available' });
    // Not a terminal: one plain line per state change.
    expect(runtime.stderr.text).toBe(`${VOL}: creating\n${VOL}: available\n`);
  });

  it('ends in error with the status message and exit 1', async () => {
    const failed = volume({ status: 'error', statusMessage: 'lvcreate exited with 5: insufficient free space' });
    const front = new FakeFront({ CreateVolume: () => rec({ volume: volume({ status: 'creating' }) }), DescribeVolumes: volumes(failed) });
    const runtime = fakeRuntime(front);
    expect(await run(runtime, 'create-volume', '5', '--wait')).toBe(1);
    expect(runtime.stderr.text).toContain(`vbs: OperationFailed: ${VOL} is in error: lvcreate exited with 5: insufficient free space\n`);
    expect(runtime.stdout.text).toMatch(new RegExp(`^${VOL}\\s+5\\s+error`, 'm'));
  });

  it('gives up after --timeout seconds with exit 1, never sleeping past the deadline', async () => {
    const front = new FakeFront({ CreateVolume: () => rec({ volume: volume({ status: 'creating' }) }), DescribeVolumes: volumes(volume({ status: 'creating' })) });
    const runtime = fakeRuntime(front);
    expect(await run(runtime, 'create-volume', '5', '--wait', '--timeout', '3')).toBe(1);
    expect(runtime.slept).toEqual([250, 500, 1000, 1250]);
    expect(runtime.stderr.text).toContain(`vbs: timed out after 3 s waiting for ${VOL} to be available (${VOL}: creating).`);
  });

  it('grows the poll interval to at most 2 s', async () => {
    const front = new FakeFront({ CreateVolume: () => rec({ volume: volume({ status: 'creating' }) }), DescribeVolumes: volumes(volume({ status: 'creating' })) });
    const runtime = fakeRuntime(front);
    await run(runtime, 'create-volume', '5', '--wait', '--timeout', '10');
    expect(runtime.slept.slice(0, 6)).toEqual([250, 500, 1000, 2000, 2000, 2000]);
    expect(runtime.slept.reduce((a, b) => a + b)).toBe(10_000);
  });

  it('rewrites one line in place on a terminal', async () => {
    const front = new FakeFront({
      CreateVolume: () => rec({ volume: volume({ status: 'creating' }) }),
      DescribeVolumes: sequence(volumes(volume({ status: 'creating' })), volumes(volume())),
    });
    const runtime = fakeRuntime(front, { stderr: new Capture(true) });
    expect(await run(runtime, 'create-volume', '5', '--wait')).toBe(0);
    expect(runtime.stderr.text).toBe(`\r\x1b[2K${VOL}: creating (0s)\r\x1b[2K${VOL}: available (0s)\n`);
  });
});

describe('create-snapshot --wait', () => {
  it('shows the progress percentage until completed', async () => {
    const pending = (progress: number) => () => rec({ snapshot: [snapshot({ status: 'pending', progress })] });
    const front = new FakeFront({
      CreateSnapshot: () => rec({ snapshot: snapshot({ status: 'pending', progress: 0 }) }),
      DescribeSnapshots: sequence(pending(0), pending(60), () => rec({ snapshot: [snapshot()] })),
    });
    const runtime = fakeRuntime(front);
    expect(await run(runtime, 'create-snapshot', VOL, '--wait')).toBe(0);
    expect(runtime.stderr.text).toBe(`${SNAP}: pending 0%\n${SNAP}: pending 60%\n${SNAP}: completed 100%\n`);
    expect(runtime.stdout.text).toMatch(/completed\s+100%/);
  });

  it('fails with the status message when the snapshot ends in error', async () => {
    const front = new FakeFront({
      CreateSnapshot: () => rec({ snapshot: snapshot({ status: 'pending', progress: 0 }) }),
      DescribeSnapshots: () => rec({ snapshot: [snapshot({ status: 'error', progress: 30, statusMessage: 'copy failed' })] }),
    });
    const runtime = fakeRuntime(front);
    expect(await run(runtime, 'create-snapshot', VOL, '--wait')).toBe(1);
    expect(runtime.stderr.text).toContain(`vbs: OperationFailed: ${SNAP} is in error: copy failed\n`);
  });
});

describe('delete --wait', () => {
  it('delete-volume waits until DescribeVolumes says InvalidVolume.NotFound', async () => {
    const front = new FakeFront({
      DeleteVolume: () => rec({ return: true }),
      DescribeVolumes: sequence(volumes(volume({ status: 'deleting' })), notFound()),
    });
    const runtime = fakeRuntime(front);
    expect(await run(runtime, 'delete-volume', VOL, '--wait', '--json')).toBe(0);
    expect(front.operations()).toEqual(['DeleteVolume', 'DescribeVolumes', 'DescribeVolumes']);
    expect(JSON.parse(runtime.stdout.text)).toEqual({ return: true });
    expect(runtime.stderr.text).toBe(`${VOL}: deleting\n${VOL}: deleted\n`);
  });

  it('delete-volume fails if the volume ends in error instead', async () => {
    const front = new FakeFront({
      DeleteVolume: () => rec({ return: true }),
      DescribeVolumes: volumes(volume({ status: 'error', statusMessage: 'lvremove failed' })),
    });
    const runtime = fakeRuntime(front);
    expect(await run(runtime, 'delete-volume', VOL, '--wait')).toBe(1);
    expect(runtime.stderr.text).toContain(`vbs: OperationFailed: ${VOL} is in error: lvremove failed\n`);
    expect(runtime.stdout.text).toBe('');
  });

  it('delete-snapshot waits until InvalidSnapshot.NotFound', async () => {
    const front = new FakeFront({
      DeleteSnapshot: () => rec({ return: true }),
      DescribeSnapshots: sequence(
        () => rec({ snapshot: [snapshot({ status: 'deleting' })] }),
        () => {
          throw fault('InvalidSnapshot.NotFound', `The snapshot ${SNAP} does not exist.`);
        },
      ),
    });
    const runtime = fakeRuntime(front);
    expect(await run(runtime, 'delete-snapshot', SNAP, '--wait')).toBe(0);
    expect(runtime.stdout.text).toBe(`${SNAP}: deleted\n`);
  });
});

describe('attach and detach --wait', () => {
  const inUse = (status: string) => volumes(volume({ status: 'in-use', attachments: [attachment({ status })] }));

  it('attach waits until the attachment is attached and prints it', async () => {
    const front = new FakeFront({
      AttachVolume: () => rec({ attachment: attachment({ status: 'attaching' }) }),
      DescribeVolumes: sequence(inUse('attaching'), inUse('attached')),
    });
    const runtime = fakeRuntime(front);
    expect(await run(runtime, 'attach-volume', VOL, 'localhost', 'vm1', 'xvdb', '--wait', '--json')).toBe(0);
    expect(JSON.parse(runtime.stdout.text)).toMatchObject({ vmId: 'vm1', status: 'attached' });
    expect(runtime.stderr.text).toBe(`${VOL}: vm1@localhost:xvdb(w,attaching)\n${VOL}: vm1@localhost:xvdb(w)\n`);
  });

  it('attach fails (exit 1) when the attachment disappears', async () => {
    const front = new FakeFront({
      AttachVolume: () => rec({ attachment: attachment({ status: 'attaching' }) }),
      DescribeVolumes: volumes(volume({ status: 'available', attachments: [] })),
    });
    const runtime = fakeRuntime(front);
    expect(await run(runtime, 'attach-volume', VOL, 'localhost', 'vm1', 'xvdb', '--wait')).toBe(1);
    expect(runtime.stderr.text).toContain(`vbs: OperationFailed: ${VOL} was not attached to vm1@localhost; the volume is available.`);
  });

  it('detach waits until the attachment is gone', async () => {
    const front = new FakeFront({
      DetachVolume: () => rec({ attachment: attachment({ status: 'detaching' }) }),
      DescribeVolumes: sequence(inUse('detaching'), volumes(volume())),
    });
    const runtime = fakeRuntime(front);
    expect(await run(runtime, 'detach-volume', VOL, '--wait')).toBe(0);
    expect(front.operations()).toEqual(['DetachVolume', 'DescribeVolumes', 'DescribeVolumes']);
    expect(runtime.stderr.text).toContain(`${VOL}: no attachment to vm1@localhost`);
  });
});

describe('Progress', () => {
  it('writes a plain line only when the text changes', () => {
    const out = new Capture(false);
    const p = new Progress(out, () => 0);
    p.update('a');
    p.update('a');
    p.update('b');
    p.finish();
    expect(out.text).toBe('a\nb\n');
  });

  it('rewrites the line with the elapsed time on a terminal and ends it on finish', () => {
    const out = new Capture(true);
    let now = 0;
    const p = new Progress(out, () => now);
    p.update('a');
    now = 2_500;
    p.update('a');
    p.finish();
    p.finish();
    expect(out.text).toBe('\r\x1b[2Ka (0s)\r\x1b[2Ka (2s)\n');
  });
});
