import { describe, expect, it } from 'vitest';
import { retryWhenUnavailable } from '../../src/cli/retry.js';
import { fault, FakeFront, fakeRuntime, rec, run, snapshot, volume, VOL } from './fakes.js';

/** Fails with `failures` in order, then answers with `answer`. */
function flaky(failures: Error[], answer: () => Record<string, unknown>) {
  let n = 0;
  return () => {
    const err = failures[n++];
    if (err) throw err;
    return rec(answer());
  };
}

const unavailable = () => fault('ServiceUnavailable', 'VBS at 127.0.0.1:8443 could not be reached (connect ECONNREFUSED).');

describe('create-volume retries', () => {
  it('sends a client token and repeats the same call with the same token while the front is unavailable', async () => {
    const front = new FakeFront({ CreateVolume: flaky([unavailable(), unavailable()], () => ({ volume: volume({ status: 'creating' }) })) });
    const runtime = fakeRuntime(front, { newClientToken: () => 'c0ffee-token' });
    expect(await run(runtime, 'create-volume', '5', 'data')).toBe(0);
    expect(front.operations()).toEqual(['CreateVolume', 'CreateVolume', 'CreateVolume']);
    for (const { input } of front.calls) expect(input).toEqual({ size: 5, comment: 'data', snapshotId: undefined, clientToken: 'c0ffee-token' });
    expect(runtime.slept).toEqual([500, 1000]);
    expect(runtime.stderr.text.match(/Retrying in/g)).toHaveLength(2);
    expect(runtime.stdout.text).toContain(VOL);
  });

  it('gives up after 3 retries with the fault and exit 1', async () => {
    const front = new FakeFront({ CreateVolume: () => { throw unavailable(); } });
    const runtime = fakeRuntime(front);
    expect(await run(runtime, 'create-volume', '5')).toBe(1);
    expect(front.calls).toHaveLength(4);
    expect(new Set(front.calls.map((c) => c.input.clientToken))).toEqual(new Set(['token-1']));
    expect(runtime.slept).toEqual([500, 1000, 2000]);
    expect(runtime.stderr.text.trimEnd().split('\n').at(-1)).toBe('vbs: ServiceUnavailable: VBS at 127.0.0.1:8443 could not be reached (connect ECONNREFUSED).');
  });

  it('uses a fresh token for every invocation, and --client-token when given', async () => {
    let next = 0;
    const front = new FakeFront({ CreateVolume: () => rec({ volume: volume() }) });
    const runtime = fakeRuntime(front, { newClientToken: () => `token-${++next}` });
    await run(runtime, 'create-volume', '5');
    await run(runtime, 'create-volume', '5');
    await run(runtime, 'create-volume', '5', '--client-token', 'mine-1');
    expect(front.calls.map((c) => c.input.clientToken)).toEqual(['token-1', 'token-2', 'mine-1']);
  });

  it('does not retry other faults', async () => {
    const front = new FakeFront({ CreateVolume: () => { throw fault('QuotaExceeded', 'You have used 100 of 100 GiB.'); } });
    const runtime = fakeRuntime(front);
    expect(await run(runtime, 'create-volume', '5')).toBe(1);
    expect(front.calls).toHaveLength(1);
    expect(runtime.stderr.text).toBe('vbs: QuotaExceeded: You have used 100 of 100 GiB.\n');
  });
});

describe('other operations', () => {
  it('create-snapshot retries with the same token too', async () => {
    const front = new FakeFront({ CreateSnapshot: flaky([unavailable()], () => ({ snapshot: snapshot({ status: 'pending', progress: 0 }) })) });
    const runtime = fakeRuntime(front);
    expect(await run(runtime, 'create-snapshot', VOL, 'nightly')).toBe(0);
    expect(front.calls.map((c) => c.input)).toEqual([
      { volumeId: VOL, comment: 'nightly', clientToken: 'token-1' },
      { volumeId: VOL, comment: 'nightly', clientToken: 'token-1' },
    ]);
  });

  it('retries Describe*, which are safe to repeat', async () => {
    const front = new FakeFront({ DescribeSnapshots: flaky([unavailable()], () => ({ snapshot: [] })) });
    const runtime = fakeRuntime(front);
    expect(await run(runtime, 'describe-snapshots')).toBe(0);
    expect(front.calls).toHaveLength(2);
  });

  it.each([
    ['DeleteVolume', ['delete-volume', VOL]],
    ['DeleteSnapshot', ['delete-snapshot', 'snap-0123456789abcdef0']],
    ['AttachVolume', ['attach-volume', VOL, 'localhost', 'vm1', 'xvdb']],
    ['DetachVolume', ['detach-volume', VOL]],
  ])('does not retry %s', async (operation, args) => {
    const front = new FakeFront({ [operation]: () => { throw unavailable(); } });
    const runtime = fakeRuntime(front);
    expect(await run(runtime, ...args)).toBe(1);
    expect(front.calls).toHaveLength(1);
    expect(runtime.slept).toEqual([]);
  });
});

describe('retryWhenUnavailable', () => {
  it('rethrows anything that is not ServiceUnavailable at once', async () => {
    let calls = 0;
    const boom = new Error('bug');
    await expect(
      retryWhenUnavailable(async () => {
        calls++;
        throw boom;
      }, { sleep: async () => {} }),
    ).rejects.toBe(boom);
    expect(calls).toBe(1);
  });
});
