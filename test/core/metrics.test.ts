import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CommandCatalog } from '../../src/commands/catalog.js';
import { CommandRunner } from '../../src/commands/runner.js';
import { VbsError } from '../../src/core/errors.js';
import { createLogger } from '../../src/core/log.js';
import { countMetadata, registry } from '../../src/core/metrics.js';
import { serveMetrics } from '../../src/core/metrics-listener.js';
import { countByDelegateAndStatus, metadataCounts } from '../../src/db/gauges.js';
import { openDatabase } from '../../src/db/database.js';
import type { Capacity, VolumeBackend } from '../../src/delegates/volume/backend.js';
import { meterCapacity } from '../../src/delegates/volume/capacity-metrics.js';
import { MeteredDelegate } from '../../src/front/metered-delegate.js';
import { DelegatePool } from '../../src/front/delegates.js';
import { DelegateHealth } from '../../src/front/health.js';
import { DEFAULT_LEASE_MS } from '../../src/workflows/engine.js';
import { availableVolume, FakeDelegate, HeldAnswer, makeFront } from '../workflows/fakes.js';

/**
 * The metric hooks that a healthy deployment does not move (test/e2e/metrics.test.ts
 * covers those): failed and timed-out host commands, a delegate that cannot be
 * reached, stalled work, a claim taken over from a runner whose lease ran
 * out, parked-work gauges, a capacity that cannot be read, and the listener's
 * answers to anything but GET /metrics. One registry per process, so each case
 * reads what moved rather than absolute values.
 */
const quiet = createLogger({}, 'error');
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A sample's value now (0 when the series does not exist yet). */
async function value(name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return 0;
  const got = await metric.get();
  const match = got.values.find((v) => Object.entries(labels).every(([k, x]) => String(v.labels[k]) === x) && Object.keys(v.labels).length >= Object.keys(labels).length);
  return match?.value ?? 0;
}

/** Runs `act` and returns how much each named sample moved. */
async function moved(samples: Record<string, [string, Record<string, string>]>, act: () => Promise<unknown>): Promise<Record<string, number>> {
  const before = Object.fromEntries(await Promise.all(Object.entries(samples).map(async ([k, [n, l]]) => [k, await value(n, l)] as const)));
  await act();
  return Object.fromEntries(await Promise.all(Object.entries(samples).map(async ([k, [n, l]]) => [k, (await value(n, l)) - before[k]!] as const)));
}

describe('host commands', () => {
  const catalog = CommandCatalog.fromText(['test.ok = true', 'test.fails = false', 'test.hangs = sleep 30', 'test.hangs.timeoutMs = 300'].join('\n'));
  const runner = new CommandRunner(catalog);

  it('are counted by pattern and how they ended: the exit status, or timeout', async () => {
    const d = await moved(
      {
        ok: ['vbs_host_commands_total', { pattern: 'test.ok', exit: '0' }],
        failed: ['vbs_host_commands_total', { pattern: 'test.fails', exit: '1' }],
        timedOut: ['vbs_host_commands_total', { pattern: 'test.hangs', exit: 'timeout' }],
        timed: ['vbs_host_command_duration_seconds', { pattern: 'test.hangs' }],
      },
      async () => {
        await runner.run('test.ok', {});
        await expect(runner.run('test.fails', {})).rejects.toMatchObject({ code: 'OperationFailed' });
        await expect(runner.run('test.hangs', {})).rejects.toMatchObject({ result: { timedOut: true } });
      },
    );
    expect(d).toMatchObject({ ok: 1, failed: 1, timedOut: 1 });
    const histogram = (await registry.getSingleMetric('vbs_host_command_duration_seconds')!.get()).values;
    const count = histogram.find((v) => v.labels.pattern === 'test.hangs' && (v as { metricName?: string }).metricName === 'vbs_host_command_duration_seconds_count');
    expect(count?.value).toBeGreaterThanOrEqual(1);
  });
});

describe('delegate calls', () => {
  it('count ok and each fault code by delegate and operation; an unreachable delegate is ServiceUnavailable', async () => {
    let fail: VbsError | undefined;
    const metered = new MeteredDelegate({ call: async () => (fail ? Promise.reject(fail) : { return: true }) }, 'vmm', 'host-a');
    const d = await moved(
      {
        ok: ['vbs_delegate_calls_total', { kind: 'vmm', delegate: 'host-a', operation: 'AttachDisk', outcome: 'ok' }],
        down: ['vbs_delegate_calls_total', { kind: 'vmm', delegate: 'host-a', operation: 'AttachDisk', outcome: 'ServiceUnavailable' }],
        internal: ['vbs_delegate_calls_total', { kind: 'vmm', delegate: 'host-a', operation: 'AttachDisk', outcome: 'InternalError' }],
      },
      async () => {
        await metered.call('AttachDisk', {});
        fail = new VbsError('ServiceUnavailable', 'VmmDelegate host-a could not be reached.');
        await expect(metered.call('AttachDisk', {})).rejects.toBe(fail);
        const bug = new Error('a bug, whose message is never a label');
        fail = bug as VbsError;
        await expect(metered.call('AttachDisk', {})).rejects.toBe(bug);
      },
    );
    expect(d).toEqual({ ok: 1, down: 1, internal: 1 });
    expect(await registry.metrics()).not.toContain('a bug');
  });
});

describe('delegate health', () => {
  it("is 1 for a delegate that answers the front's probe and 0 for one that does not, back to 1 when it answers again", async () => {
    let down = true;
    const flaky = { call: async () => (down ? Promise.reject(new VbsError('ServiceUnavailable', 'VmmDelegate h could not be reached.')) : { hostName: 'h', adapter: 'sim' }) };
    const store = { call: async () => ({ cursor: 'c:0', reset: false }) };
    const pool = new DelegatePool(new Map([['store-1', store]]), new Map([['hv-1', flaky]]));
    const health = new DelegateHealth(pool, quiet, 60_000, async () => {});
    await health.probeOnce();
    expect(await value('vbs_delegate_up', { kind: 'vmm', delegate: 'hv-1' })).toBe(0);
    expect(await value('vbs_delegate_up', { kind: 'volume', delegate: 'store-1' })).toBe(1);
    down = false;
    await health.probeOnce();
    expect(await value('vbs_delegate_up', { kind: 'vmm', delegate: 'hv-1' })).toBe(1);
  });
});

describe('workflows and claims', () => {
  it('a stalled detach counts as stalled and pending; a runner that takes it over after the lease ran out counts a claim taken over; done ends it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vbs-metrics-'));
    dirs.push(dir);
    let offset = 0;
    const clock = () => Date.now() + offset;
    const storage = new FakeDelegate();
    const vmm = new HeldAnswer();
    const a = makeFront(join(dir, 'vbs.db'), storage, vmm, undefined, { clock });
    const b = makeFront(join(dir, 'vbs.db'), storage, vmm, undefined, { clock });
    const uncount = countMetadata(() => metadataCounts(a.db));
    try {
      const vol = await availableVolume(a);
      await a.call('AttachVolume', { volumeId: vol, vmmHost: 'localhost', vmId: 'vm1', device: 'xvdb' });

      vmm.failures.set('DetachDisk', new VbsError('ServiceUnavailable', 'the host did not answer'));
      const stalled = await moved({ stalled: ['vbs_workflows_total', { kind: 'DetachVolume', outcome: 'stalled' }] }, () =>
        expect(a.call('DetachVolume', { volumeId: vol })).rejects.toMatchObject({ code: 'ServiceUnavailable' }),
      );
      expect(stalled).toEqual({ stalled: 1 });
      expect(await value('vbs_pending_work', { work: 'workflow' })).toBe(1);
      expect(await value('vbs_workflows_running')).toBe(1);
      vmm.failures.clear();

      // Runner A takes the stalled detach again and hangs in its call; its lease runs out; B takes the work over.
      const release = vmm.holdNext('DetachDisk');
      const stale = a.wf.engine.resume({ notDueToo: true });
      await vmm.reached('DetachDisk:held');
      expect(await value('vbs_pending_work', { work: 'workflow' })).toBe(0); // claimed: somebody runs it
      offset += DEFAULT_LEASE_MS + 1_000;
      const d = await moved(
        {
          takenOver: ['vbs_claims_taken_over_total', { work: 'workflow' }],
          done: ['vbs_workflows_total', { kind: 'DetachVolume', outcome: 'done' }],
        },
        () => b.wf.engine.resume({ notDueToo: true }),
      );
      expect(d).toEqual({ takenOver: 1, done: 1 });
      release();
      expect(await stale).toBe(0);
      expect(await value('vbs_workflows_running')).toBe(0);
      expect(await value('vbs_volumes', { delegate: 'local', state: 'available' })).toBe(1);
    } finally {
      uncount();
    }
  });

  it('parked work is counted until it is resumed', async () => {
    const f = makeFront(':memory:', new FakeDelegate(), new FakeDelegate());
    const uncount = countMetadata(() => metadataCounts(f.db));
    try {
      const vol = await availableVolume(f);
      // A failed undo, given up on: what the engine writes when retrying stops.
      f.db.prepare(`INSERT INTO workflows (kind, resource_id, state, data, created_at, updated_at) VALUES ('AttachVolume', ?, 'failed', '{}', ?, ?)`).run(vol, 'x', 'x');
      f.db
        .prepare(`INSERT INTO leftovers (workflow_id, kind, step, data, error, created_at, next_attempt_at, resource_id, parked_at) VALUES (1, 'AttachVolume', 'vmm-delegate.AttachDisk', '{}', 'e', ?, ?, ?, ?)`)
        .run(new Date().toISOString(), new Date().toISOString(), vol, new Date().toISOString());
      expect(await value('vbs_parked_work', { work: 'undo' })).toBe(1);
      expect(await value('vbs_pending_work', { work: 'undo' })).toBe(0);
      f.db.prepare('UPDATE leftovers SET parked_at = NULL').run();
      expect(await value('vbs_parked_work', { work: 'undo' })).toBe(0);
      expect(await value('vbs_pending_work', { work: 'undo' })).toBe(1);
    } finally {
      uncount();
    }
  });
});

describe('the counts read on each scrape', () => {
  it('read an index of delegate and status, never every row and a sort', () => {
    const db = openDatabase(':memory:');
    for (const table of ['volumes', 'snapshots'] as const) {
      const plan = (db.prepare(`EXPLAIN QUERY PLAN ${countByDelegateAndStatus(table)}`).all() as { detail: string }[]).map((r) => r.detail).join('; ');
      expect(plan).toBe(`SCAN ${table} USING COVERING INDEX ${table}_delegate_status`);
    }
    db.close();
  });
});

describe('volume delegate capacity', () => {
  it('is left out of a scrape when it cannot be read, and served when it can', async () => {
    let broken = true;
    const backend = {
      type: 'file',
      capacity: async (): Promise<Capacity> => {
        if (broken) throw new Error('statfs failed');
        return { totalBytes: 100, freeBytes: 5, provisionedBytes: 40 };
      },
    } as unknown as VolumeBackend;
    const stop = meterCapacity('cap-test', backend, quiet);
    try {
      expect(await registry.metrics()).not.toContain('delegate="cap-test"');
      broken = false;
      // The failed reading is kept for 10 s like any other: a new meter reads afresh.
      stop();
      const again = meterCapacity('cap-test', backend, quiet);
      const text = await registry.metrics();
      again();
      expect(text).toContain('vbs_volume_delegate_used_bytes{delegate="cap-test",backend="file"} 95');
      expect(text).toContain('vbs_volume_delegate_capacity_bytes{delegate="cap-test",backend="file"} 100');
    } finally {
      stop();
    }
  });
});

describe('the metrics listener', () => {
  it('answers GET /metrics only, on loopback', async () => {
    const l = await serveMetrics({ host: '127.0.0.1', port: 0 }, quiet);
    try {
      expect(l.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      const ok = await fetch(l.url);
      expect(ok.status).toBe(200);
      expect(await ok.text()).toContain('# TYPE vbs_requests_total counter');
      expect((await fetch(l.url.replace('/metrics', '/'))).status).toBe(404);
      expect((await fetch(l.url, { method: 'POST', body: 'x' })).status).toBe(405);
      const head = await fetch(l.url, { method: 'HEAD' });
      expect(head.status).toBe(200);
    } finally {
      await l.close();
    }
  });
});
