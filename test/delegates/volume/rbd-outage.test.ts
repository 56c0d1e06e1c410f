import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommandFailed } from '../../../src/commands/runner.js';
import { UnknownOutcome } from '../../../src/commands/unknown-outcome.js';
import { VbsError } from '../../../src/core/errors.js';
import type { VolumeBackend } from '../../../src/delegates/volume/backend.js';
import { useCephCluster, type CephCluster } from '../../ceph/cluster.js';
import { eventually, GiB, ready } from './helpers.js';
import { hasPattern, openRbd, poolContents, rbdConfig, SNAP, VOL, writePattern } from './rbd-helpers.js';

/**
 * The cluster failing under the rbd back end: the mon stopped (no call can
 * connect) and the OSD stopped and restarted in the middle of a workload.
 * Calls fail within their timeoutSec (librados gives up with rc 110 before
 * the command's own limit kills it), nothing written is lost, and the work
 * completes once the cluster is back. This file stops daemons, so it holds
 * the cluster alone (`exclusive`).
 */
let c: CephCluster;
beforeAll(async () => {
  c = await useCephCluster({ exclusive: true });
}, 900_000);
afterAll(async () => {
  await c?.release();
});

const TIMEOUT_SEC = 3;

/** The fault a call ends with; it must be the cluster's refusal, never our process limit killing a hung rbd. */
async function outageFault(p: Promise<unknown>): Promise<VbsError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(VbsError);
    const failures = err instanceof UnknownOutcome ? err.failures : err instanceof CommandFailed ? [err] : [];
    expect(failures.length).toBeGreaterThan(0);
    for (const f of failures) expect(f.result.timedOut).toBe(false);
    return err as VbsError;
  }
  throw new Error('expected the call to fail while the cluster is down');
}

/** Repeats `op` until it succeeds, as the front's retries do; bounded. */
async function retried(op: () => Promise<unknown>): Promise<void> {
  await eventually(async () => {
    try {
      await op();
      return true;
    } catch {
      return undefined;
    }
  }, 120_000, 1_000);
}

/** Makes a create happen: asked again (and a failed one deleted first) until the object is ready. */
async function created(b: VolumeBackend, id: string, ask: () => Promise<void>): Promise<void> {
  await eventually(async () => {
    const o = await b.describe(id).catch(() => undefined);
    if (o?.state === 'ready') return true;
    if (o?.state === 'error') await b.delete(id).catch(() => undefined);
    if (!o || o.state === 'absent' || o.state === 'error') await ask().catch(() => undefined);
    return undefined;
  }, 180_000, 1_000);
}

describe('rbd back end while the cluster fails', { timeout: 600_000 }, () => {
  it('with the mon down every call fails within its timeout and nothing changes; all works once it is back', async () => {
    const { backend } = await openRbd(rbdConfig(c, { timeoutSec: TIMEOUT_SEC }));
    await backend.createVolume(VOL(1), 1);
    await ready(backend, VOL(1));
    await c.stopMon();
    try {
      for (const call of [
        () => backend.describe(VOL(1)),
        () => backend.list(),
        () => backend.capacity(),
        () => backend.createVolume(VOL(2), 1),
        () => backend.createSnapshot(SNAP(1), VOL(1)),
        () => backend.delete(VOL(1)),
      ]) {
        expect(['OperationFailed', 'ServiceUnavailable']).toContain((await outageFault(call())).code);
      }
      // A delegate that starts while the cluster is down starts anyway; its calls fail the same way.
      const late = await openRbd(rbdConfig(c, { timeoutSec: TIMEOUT_SEC }));
      expect(late.warnings).toContain('could not tidy the rbd pool at start; tried again before the next change');
      await outageFault(late.backend.createVolume(VOL(3), 1));
    } finally {
      await c.startMon();
    }
    expect(await poolContents(c)).toEqual([VOL(1)]);
    await backend.createSnapshot(SNAP(1), VOL(1));
    await ready(backend, SNAP(1));
    for (const id of [SNAP(1), VOL(1)]) expect(await backend.delete(id)).toBe(true);
    expect(await poolContents(c)).toEqual([]);
  });

  it('with the OSD stopped and restarted mid-workload, nothing written is lost and the work completes', async () => {
    const { backend } = await openRbd(rbdConfig(c, { timeoutSec: TIMEOUT_SEC }));
    await backend.createVolume(VOL(10), 1);
    await ready(backend, VOL(10));
    await writePattern(c, VOL(10), 0x44, 0);
    await writePattern(c, VOL(10), 0x44, 512 * 1024 ** 2);
    await backend.createSnapshot(SNAP(10), VOL(10));
    await ready(backend, SNAP(10));

    // The workload: creates, a snapshot and clones, running while the OSD goes away.
    const work: [string, () => Promise<void>][] = [
      [VOL(11), () => backend.createVolume(VOL(11), 1)],
      [VOL(12), () => backend.createVolume(VOL(12), 2, SNAP(10))],
      [SNAP(11), () => backend.createSnapshot(SNAP(11), VOL(10))],
      [VOL(13), () => backend.createVolume(VOL(13), 1, SNAP(10))],
    ];
    const first = Promise.allSettled(work.map(([, ask]) => ask()));
    await c.stopOsd();
    try {
      await first;
      // While the OSD is down, a call that needs it fails (rc 110 after timeoutSec), never hangs.
      expect(['OperationFailed', 'ServiceUnavailable']).toContain((await outageFault(backend.describe(VOL(10)))).code);
    } finally {
      await c.startOsd();
    }
    // The work resumes: each create asked again (as the front does) until it is whole.
    for (const [id, ask] of work) await created(backend, id, ask);
    expect((await backend.describe(VOL(12))).sizeBytes).toBe(2 * GiB);
    for (const image of [VOL(10), `${VOL(10)}@${SNAP(10)}`, VOL(12), VOL(13)]) {
      expect(await hasPattern(c, image, 0x44, 0)).toBe(true);
      expect(await hasPattern(c, image, 0x44, 512 * 1024 ** 2)).toBe(true);
    }
    // A restarted delegate finds nothing half-made to tidy.
    const again = await openRbd(rbdConfig(c, { timeoutSec: TIMEOUT_SEC }));
    expect((await poolContents(c)).filter((x) => x.startsWith('part.'))).toEqual([]);
    for (const id of [VOL(13), VOL(12), VOL(11), SNAP(11), SNAP(10), VOL(10)]) await retried(() => again.backend.delete(id));
    expect(await poolContents(c)).toEqual([]);
  });
});
