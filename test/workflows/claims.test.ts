import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { VbsError } from '../../src/core/errors.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { DEFAULT_LEASE_MS } from '../../src/workflows/engine.js';
import { newRunnerId, runnerIsGone, runnerStopped } from '../../src/workflows/runner-id.js';
import { availableVolume, FakeDelegate, HeldAnswer, makeFront, type Front, sharedDb, useEngine } from './fakes.js';
import { ENGINES } from '../setup/engines.js';

/**
 * Issue 16, item 2: a runner acts only while it holds its claim. Two fronts
 * on one database file play two runners; they share one clock a test can step
 * forward (as VBS_CLOCK_OFFSET_FILE steps a service's), and the same fake
 * hosts.
 */
const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

function dbFile(): string {
  const d = mkdtempSync(join(tmpdir(), 'vbs-claims-'));
  dirs.push(d);
  return sharedDb(join(d, 'vbs.db'));
}

/** A clock a test steps forward. */
function steppedClock() {
  let offset = 0;
  return { now: () => Date.now() + offset, step: (ms: number) => (offset += ms) };
}

const attachArgs = (volumeId: string, vmId = 'vm1', device = 'xvdb'): XmlRecord => ({ volumeId, vmmHost: 'localhost', vmId, device });
const claimed = (f: Front) => (f.db.prepare(`SELECT count(*) AS n FROM workflows WHERE state = 'running' AND lease_owner IS NOT NULL`).get() as { n: number }).n;

describe.each(ENGINES)('on %s', (engine) => {
  beforeAll(() => useEngine(engine));

  describe('a runner whose claim lapsed makes no write and no call', () => {
    it('five stalled detaches: one claimed at a time; the stale runner, once its lease ran out, does not re-commit its detach over a newer attachment', async () => {
      const file = dbFile();
      const clock = steppedClock();
      const storage = new FakeDelegate();
      storage.exportKind = 'iscsi';
      const vmm = new HeldAnswer();
      const a = makeFront(file, storage, vmm, undefined, { clock: clock.now });
      const b = makeFront(file, storage, vmm, undefined, { clock: clock.now });
      const vols: string[] = [];
      for (let i = 0; i < 5; i++) {
        const vol = await availableVolume(a);
        await a.call('AttachVolume', attachArgs(vol, 'vm1', `xvd${'bcdef'[i]}`));
        vols.push(vol);
      }
      // The VMM host fails to log out: every detach stalls after its disk went.
      vmm.failures.set('LogoutTarget', new VbsError('OperationFailed', 'iscsiadm: session busy'));
      for (const vol of vols) await expect(a.call('DetachVolume', { volumeId: vol })).rejects.toMatchObject({ code: 'ServiceUnavailable' });
      vmm.failures.clear();

      // Runner A takes the stalled work; its first logout acts on the host but its answer is slow.
      const release = vmm.holdNext('LogoutTarget');
      const stale = a.wf.engine.resume({ notDueToo: true });
      await vmm.reached('LogoutTarget:held');
      expect(claimed(a)).toBe(1); // the four others are not held, unrenewed, behind it

      // The clock steps past the lease: A's claim is gone; B finishes every detach, and the user attaches vols[0] again.
      clock.step(DEFAULT_LEASE_MS + 1_000);
      expect(await b.wf.engine.resume({ notDueToo: true })).toBe(5);
      await b.call('AttachVolume', attachArgs(vols[0]!, 'vm1', 'xvdb'));
      const hostsAfterReattach = { disks: [...vmm.disks], sessions: [...vmm.sessions], exports: [...storage.exports] };
      const callsBefore = { vmm: vmm.calls.length, storage: storage.calls.length };

      // A's slow answer arrives: it has lost its claim, so it writes nothing and calls nothing more.
      release();
      expect(await stale).toBe(0);
      expect(a.meta.attachmentsOf([vols[0]!]).map((x) => [x.vm_id, x.status])).toEqual([['vm1', 'attached']]);
      expect(a.meta.volume(vols[0]!)!.status).toBe('in-use');
      expect({ disks: [...vmm.disks], sessions: [...vmm.sessions], exports: [...storage.exports] }).toEqual(hostsAfterReattach);
      expect(vmm.disks.get('vm1/xvdb')).toBe(vols[0]);
      expect({ vmm: vmm.calls.length, storage: storage.calls.length }).toEqual(callsBefore);
      const steps = a.db.prepare(`SELECT count(*) AS n FROM workflows WHERE state = 'running'`).get() as { n: number };
      expect(steps.n).toBe(0);
    });

    it('a clock step past the lease during an attach: the stale runner stops at its next write (the user is told to retry) and the new holder rolls it back', async () => {
      const file = dbFile();
      const clock = steppedClock();
      const storage = new FakeDelegate();
      const vmm = new HeldAnswer();
      const a = makeFront(file, storage, vmm, undefined, { clock: clock.now });
      const b = makeFront(file, storage, vmm, undefined, { clock: clock.now });
      const vol = await availableVolume(a);
      const release = vmm.holdNext('AttachDisk');
      const attach = a.call('AttachVolume', attachArgs(vol)).catch((e: unknown) => e);
      await vmm.reached('AttachDisk:held');

      clock.step(DEFAULT_LEASE_MS + 1_000);
      expect(await b.wf.engine.resume({ notDueToo: true })).toBe(1); // an attach cut off from its runner rolls back
      expect(b.meta.attachmentsOf([vol])).toEqual([]);
      expect(vmm.disks.size).toBe(0);
      const calls = vmm.calls.length + storage.calls.length;

      release();
      expect(await attach).toMatchObject({ code: 'ServiceUnavailable' });
      expect(vmm.calls.length + storage.calls.length).toBe(calls);
      expect(a.meta.attachmentsOf([vol])).toEqual([]);
      expect(a.meta.volume(vol)!.status).toBe('available');
      expect(vmm.disks.size).toBe(0);
      expect(storage.exports.size).toBe(0);
    });

    it('a lease renewed while a step runs: a slow step that outlives the lease keeps its claim, and nobody takes it', async () => {
      const file = dbFile();
      const storage = new HeldAnswer();
      const a = makeFront(file, storage, new FakeDelegate(), undefined, { leaseMs: 1_000 });
      const b = makeFront(file, storage, new FakeDelegate(), undefined, { leaseMs: 1_000 });
      const vol = await availableVolume(a);
      const release = storage.holdNext('DeleteObject');
      const deleting = a.call('DeleteVolume', { volumeId: vol });
      await storage.reached('DeleteObject:held');
      // Wait for several lease lengths to pass, by the lease's own record in the database (no fixed sleep).
      const first = (a.db.prepare(`SELECT lease_until FROM workflows WHERE resource_id = ? AND kind = 'DeleteVolume'`).get(vol) as { lease_until: string }).lease_until;
      await new Promise<void>((resolve) => {
        const t = setInterval(() => {
          const now = (a.db.prepare(`SELECT lease_until FROM workflows WHERE resource_id = ? AND kind = 'DeleteVolume'`).get(vol) as { lease_until: string }).lease_until;
          if (Date.parse(now) >= Date.parse(first) + 3_000) {
            clearInterval(t);
            resolve();
          }
        }, 20);
      });
      expect(await b.wf.engine.resume({ notDueToo: true })).toBe(0);
      expect(await b.wf.engine.recover()).toBe(0);
      release();
      await deleting;
      expect(a.meta.volume(vol)).toBeUndefined();
      expect(storage.calls.filter((c) => c === 'DeleteObject')).toHaveLength(1);
    });
  });

  describe('recovery takes only work nobody live holds (issue 16, item 9)', () => {
    it('a second front on the same database does not take a live front\'s work; its dead predecessor\'s it takes at once', async () => {
      const file = dbFile();
      const storage = new HeldAnswer();
      const a = makeFront(file, storage);
      const vol = await availableVolume(a);
      const release = storage.holdNext('DeleteObject');
      const deleting = a.call('DeleteVolume', { volumeId: vol }).catch((e: unknown) => e);
      await storage.reached('DeleteObject:held');

      const b = makeFront(file, storage);
      expect(await b.wf.engine.recover()).toBe(0);
      expect(b.meta.volume(vol)!.status).toBe('deleting');
      expect(storage.calls.filter((c) => c === 'DeleteObject')).toHaveLength(1);

      a.wf.engine.stop(); // A dies (its lease has not expired)
      const c = makeFront(file, storage);
      expect(await c.wf.engine.recover()).toBe(1);
      expect(c.meta.volume(vol)).toBeUndefined();
      release();
      expect(await deleting).toMatchObject({ code: 'ServiceUnavailable' }); // A's late answer finds its claim gone
    });

    it('a runner is gone when it was stopped, or its process on this host no longer exists; one on another host waits for its lease', () => {
      const live = newRunnerId();
      expect(runnerIsGone(`${live}:1`)).toBe(false);
      runnerStopped(live);
      expect(runnerIsGone(`${live}:1`)).toBe(true);
      const deadPid = spawnSync(process.execPath, ['-e', '']).pid;
      expect(runnerIsGone(`front:${hostname()}:${deadPid}:00000000-0000-4000-8000-000000000000:3`)).toBe(true);
      expect(runnerIsGone(`front:${hostname()}:${process.ppid}:00000000-0000-4000-8000-000000000000:3`)).toBe(false);
      expect(runnerIsGone(`front:elsewhere.example:${deadPid}:00000000-0000-4000-8000-000000000000:3`)).toBe(false);
      expect(runnerIsGone('front-123-some-old-owner')).toBe(false);
    });
  });

  describe('one workflow\'s failure never stops recovery of the others (issue 16, item 1)', () => {
    it('a workflow whose commit throws is logged and left to retry; the good one is recovered; recover() resolves', async () => {
      const file = dbFile();
      const storage = new HeldAnswer();
      const before = makeFront(file, storage);
      const bad = await availableVolume(before);
      const good = await availableVolume(before);
      // Both deletes are cut off at their delegate step.
      storage.holdNext('DeleteObject');
      void before.call('DeleteVolume', { volumeId: bad });
      await storage.reached('DeleteObject:held');
      storage.holdNext('DeleteObject');
      void before.call('DeleteVolume', { volumeId: good });
      await new Promise<void>((resolve) => {
        const t = setInterval(() => storage.calls.filter((c) => c === 'DeleteObject:held').length === 2 && (clearInterval(t), resolve()), 10);
      });
      before.wf.engine.stop();
      // The bad one's record is still referenced (an attachment row its delete's commit cannot drop past the foreign key).
      before.db
        .prepare(`INSERT INTO attachments (volume_id, vmm_host, vm_id, device, mode, status, attach_time) VALUES (?, 'localhost', 'vm9', 'xvdq', 'r', 'attached', ?)`)
        .run(bad, new Date().toISOString());

      const after = makeFront(file, storage);
      expect(await after.wf.engine.recover()).toBe(2);
      expect(after.meta.volume(good)).toBeUndefined();
      const row = after.db.prepare(`SELECT state, lease_owner, last_error, next_attempt_at FROM workflows WHERE resource_id = ? AND kind = 'DeleteVolume'`).get(bad) as Record<string, string | null>;
      expect(row.state).toBe('running');
      expect(row.lease_owner).toBeNull(); // released: the timer retries it
      expect(row.next_attempt_at).not.toBeNull();
      expect(row.last_error).toMatch(/internal error/);
      expect(row.last_error).not.toMatch(/FOREIGN KEY|constraint/i); // what users may see never holds internals
    });
  });
});
