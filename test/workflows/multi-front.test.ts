import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { currentFence } from '../../src/core/claim-fence.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { availableVolume, HeldAnswer, makeFront, type Front } from './fakes.js';

/**
 * Issue 20: several fronts on one database (two fronts on one database file).
 * A front cut off from the database must stop acting on delegates before its
 * claims can expire, so that the front that takes the work over is the only
 * one acting: front A's renewals are made to fail (the database cannot be
 * written) or to land on nothing (A's writes do not reach the database),
 * while a delegate call of its runs. And a client token repeated on the other
 * front gets the first create's outcome.
 */
const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

const LEASE_MS = 800;

function twoFronts(): { a: Front; b: Front; storage: HeldAnswer; fences: AbortSignal[] } {
  const d = mkdtempSync(join(tmpdir(), 'vbs-cutoff-'));
  dirs.push(d);
  const storage = new HeldAnswer();
  // Each call notes the fence it runs under (src/core/claim-fence.ts): what a real SOAP client obeys.
  const fences: AbortSignal[] = [];
  const call = storage.call.bind(storage);
  storage.call = (op: string, i: XmlRecord) => {
    const f = currentFence();
    if (f) fences.push(f);
    return call(op, i);
  };
  const file = join(d, 'vbs.db');
  const a = makeFront(file, storage, undefined, undefined, { leaseMs: LEASE_MS });
  const b = makeFront(file, storage, undefined, undefined, { leaseMs: LEASE_MS });
  return { a, b, storage, fences };
}

const leaseUntil = (f: Front, vol: string): number =>
  Date.parse((f.db.prepare(`SELECT lease_until FROM workflows WHERE resource_id = ? AND kind = 'DeleteVolume'`).get(vol) as { lease_until: string }).lease_until);

const aborted = (s: AbortSignal): Promise<number> => new Promise((r) => (s.aborted ? r(Date.now()) : s.addEventListener('abort', () => r(Date.now()), { once: true })));

async function takenOverBy(b: Front, vol: string): Promise<void> {
  // Bounded: the lease is LEASE_MS; B's timer would do the same.
  for (let i = 0; i < 100 && b.meta.volume(vol); i++) {
    await b.wf.engine.resume({ notDueToo: true });
    if (b.meta.volume(vol)) await new Promise((r) => setTimeout(r, LEASE_MS / 8));
  }
}

describe('a front cut off from the database stops acting before its claim can expire', () => {
  it('a renewal that fails cuts the delegate call in flight at once, while the lease still holds; the other front finishes the work after the lease', async () => {
    const { a, b, storage, fences } = twoFronts();
    const vol = await availableVolume(a);
    const release = storage.holdNext('DeleteObject');
    const deleting = a.call('DeleteVolume', { volumeId: vol }).catch((e: unknown) => e);
    await storage.reached('DeleteObject:held');
    const held = fences.at(-1)!; // the fence of the DeleteObject call in flight
    // A can no longer write its database.
    a.wf.engine.journal.renew = () => {
      throw new Error('disk I/O error');
    };
    const cutAt = await aborted(held);
    // Cut before the lease it last renewed runs out: nobody else could have taken the work yet.
    expect(cutAt).toBeLessThan(leaseUntil(b, vol));
    expect(await b.wf.engine.resume({ notDueToo: true })).toBe(0);
    release();
    expect(await deleting).toMatchObject({ code: 'ServiceUnavailable' });
    expect(storage.calls.filter((c) => c === 'DeleteObject')).toHaveLength(1);
    expect(b.meta.volume(vol)?.status).toBe('deleting');
    await takenOverBy(b, vol);
    expect(b.meta.volume(vol)).toBeUndefined();
  });

  it('a lease nearing its end with no renewal at all (the front cannot reach the database) cuts the call before the lease ends', async () => {
    const { a, b, storage, fences } = twoFronts();
    const vol = await availableVolume(a);
    const release = storage.holdNext('DeleteObject');
    const deleting = a.call('DeleteVolume', { volumeId: vol }).catch((e: unknown) => e);
    await storage.reached('DeleteObject:held');
    // Each renewal of A's lands on a lease it no longer extends (A's writes do not reach the database the others see).
    const stuck = leaseUntil(a, vol);
    a.wf.engine.journal.renew = () => stuck;
    const until = leaseUntil(a, vol);
    const cutAt = await aborted(fences.at(-1)!);
    expect(cutAt).toBeLessThan(until);
    release();
    expect(await deleting).toMatchObject({ code: 'ServiceUnavailable' });
    await takenOverBy(b, vol);
    expect(b.meta.volume(vol)).toBeUndefined();
  });
});

describe('a client token repeated on another front (the CLI went to the next front)', () => {
  it('waits in the database for the first front\'s create and answers with its volume', async () => {
    const { a, b, storage } = twoFronts();
    const release = storage.holdNext('CreateVolume');
    const first = a.call('CreateVolume', { size: 1, clientToken: 'tok-a' });
    await storage.reached('CreateVolume:held');
    let answered = false;
    const again = b.call('CreateVolume', { size: 1, clientToken: 'tok-a' }).finally(() => (answered = true));
    // B does not answer while A's create still runs (it would show a record A may yet roll back).
    await new Promise((r) => setTimeout(r, 300));
    expect(answered).toBe(false);
    release();
    const [x, y] = await Promise.all([first, again]);
    expect((y.volume as XmlRecord).volumeId).toBe((x.volume as XmlRecord).volumeId);
    expect(storage.calls.filter((c) => c === 'CreateVolume')).toHaveLength(1);
  });

  it('answers retryable when the first front\'s create was rolled back, and the retry then creates', async () => {
    const { a, b, storage } = twoFronts();
    const release = storage.holdNext('CreateVolume');
    const first = a.call('CreateVolume', { size: 1, clientToken: 'tok-b' }).catch((e: unknown) => e);
    await storage.reached('CreateVolume:held');
    const again = b.call('CreateVolume', { size: 1, clientToken: 'tok-b' }).catch((e: unknown) => e);
    // A's runner loses its claim (its lease is taken away) and B's recovery rolls the create back.
    a.db.prepare(`UPDATE workflows SET lease_until = '2000-01-01T00:00:00.000Z' WHERE kind = 'CreateVolume'`).run();
    expect(await b.wf.engine.resume({ notDueToo: true })).toBe(1);
    release();
    expect(await first).toMatchObject({ code: 'ServiceUnavailable' });
    expect(await again).toMatchObject({ code: 'ServiceUnavailable', message: expect.stringContaining('did not succeed') });
    const retried = await b.call('CreateVolume', { size: 1, clientToken: 'tok-b' });
    expect(['creating', 'available']).toContain((retried.volume as XmlRecord).status);
    expect(storage.calls.filter((c) => c === 'CreateVolume')).toHaveLength(2);
  });
});

describe('a copy two fronts both saw lost is started again by one of them', () => {
  it('the attempt count is taken by compare-and-swap on what each saw', async () => {
    const { a, b } = twoFronts();
    const vol = await availableVolume(a);
    a.meta.setVolumeStatus(vol, ['available'], 'creating');
    // Both fronts' monitors read the count when they saw the copy lost...
    const seenByA = a.meta.volumeAttempts(vol)!;
    const seenByB = b.meta.volumeAttempts(vol)!;
    // ...and only the first to count it restarts the copy.
    expect(a.meta.bumpVolumeAttemptsFrom(vol, seenByA)).toBe(seenByA + 1);
    expect(b.meta.bumpVolumeAttemptsFrom(vol, seenByB)).toBeUndefined();
    expect(b.meta.volumeAttempts(vol)).toBe(seenByA + 1);
  });
});
