import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SoapClient } from '../../src/soap/client.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { isQuiet, settleAndCheck } from './invariants.js';
import { startRaceDeployment, type RaceDeployment } from './race-deployment.js';
import {
  clients,
  describeVolume,
  expectFaults,
  hasMark,
  inOrder,
  markData,
  newSnapshot,
  newVolume,
  raceChecked,
  settledSnapshot,
  settledVolume,
  successes,
} from './race-helpers.js';
import { eventually } from './harness.js';

/**
 * Races over data through the real services: deleting a snapshot while
 * volumes are created from it, snapshotting a volume while it is deleted,
 * creates that together ask for more than the volume delegate may provision,
 * and repeated client tokens. Several users, each request on its own client;
 * the deployment's invariants are checked after every round.
 */
const ROUNDS = 3;
const CAPACITY_GIB = 10;
const GiB = 1024 ** 3;

let d: RaceDeployment;
let alice: SoapClient[];
beforeAll(async () => {
  d = await startRaceDeployment({ capacityGiB: CAPACITY_GIB, hosts: [{ name: 'localhost', vms: ['vm1', 'vm2', 'vm3'] }] });
  alice = await clients(d, 'alice', 8);
}, 120_000);
afterAll(async () => {
  await d?.stop();
});
afterEach(async () => {
  if (d) await settleAndCheck(d.dir);
});

const createFrom = (c: SoapClient, snapshotId: string, size = 1) => () => c.call('CreateVolume', { size, snapshotId });
const volumeIdOf = (r: XmlRecord) => String((r.volume as XmlRecord).volumeId);
const snapshotIdOf = (r: XmlRecord) => String((r.snapshot as XmlRecord).snapshotId);

/** Bytes of every complete volume and snapshot file the delegate holds. */
function provisionedGiB(): number {
  const root = join(d.dir, 'volumes');
  return readdirSync(root)
    .filter((f) => f.endsWith('.img') && !f.startsWith('.'))
    .reduce((n, f) => n + statSync(join(root, f)).size, 0) / GiB;
}

async function deleteAll(c: SoapClient): Promise<void> {
  for (const s of ((await c.call('DescribeSnapshots', {})).snapshot as XmlRecord[] | undefined) ?? []) {
    await c.call('DeleteSnapshot', { snapshotId: s.snapshotId });
  }
  for (const v of ((await c.call('DescribeVolumes', {})).volume as XmlRecord[] | undefined) ?? []) {
    await c.call('DeleteVolume', { volumeId: v.volumeId });
  }
}

describe('delete-snapshot against create-volume-from-it', () => {
  it('either the volumes are created from complete data, or they are refused; the snapshot never goes while copied', async () => {
    const seen = new Set<string>();
    for (let round = 0; round < ROUNDS + 1; round++) {
      const c = alice[0]!;
      const source = await newVolume(c);
      const mark = `round-${round}-${source}`;
      markData(d, source, mark);
      const snap = await newSnapshot(c, source);
      const calls = [
        createFrom(alice[1]!, snap),
        createFrom(alice[2]!, snap, 2),
        () => alice[3]!.call('DeleteSnapshot', { snapshotId: snap }),
        createFrom(alice[4]!, snap),
        () => alice[5]!.call('DeleteSnapshot', { snapshotId: snap }),
      ];
      // Alternate which request leaves first, so both orders happen; round 1 runs them one by one (delete first: its outcome is known).
      const ordered = round % 2 ? [...calls].reverse() : calls;
      const out = round === 1 ? await inOrder(ordered) : await raceChecked(d, ordered);
      if (round % 2) out.reverse();
      const creates = [out[0]!, out[1]!, out[3]!];
      const deletes = [out[2]!, out[4]!];
      expect(successes(deletes), JSON.stringify(deletes)).toBeLessThanOrEqual(1);
      expectFaults(creates, ['IncorrectState', 'InvalidSnapshot.NotFound'], /snapshot/);
      // A delete racing the same delete already running is told to retry (ServiceUnavailable), as the README promises.
      expectFaults(deletes, ['IncorrectState', 'InvalidSnapshot.NotFound', 'ServiceUnavailable'], /being created|deleting|does not exist|is being finished/);

      // Every volume that was accepted is made from the whole snapshot.
      for (const o of creates.filter((x) => x.ok)) {
        const id = volumeIdOf(o.ok ? o.value : {});
        const v = await settledVolume(c, id);
        expect(v, JSON.stringify(v)).toMatchObject({ status: 'available', snapshotId: snap });
        expect(hasMark(d, id, mark)).toBe(true);
      }
      const deleted = successes(deletes) === 1;
      seen.add(`${successes(creates)} created, ${deleted ? 'deleted' : 'kept'}`);
      if (!deleted) expect((await settledSnapshot(c, snap)).status).toBe('completed');
      await settleAndCheck(d.dir);
      await deleteAll(c);
    }
    expect([...seen]).toContain('0 created, deleted');
  });

  it('a snapshot with a volume still being created from it cannot be deleted', async () => {
    const c = alice[0]!;
    const source = await newVolume(c);
    markData(d, source, 'held');
    const snap = await newSnapshot(c, source);
    // Many creates racing many deletes: while any create is accepted, every delete before it finishes is refused.
    const out = await raceChecked(d, [...alice.slice(0, 4).map((x) => createFrom(x, snap)), ...alice.slice(4, 8).map((x) => () => x.call('DeleteSnapshot', { snapshotId: snap }))]);
    const created = out.slice(0, 4).filter((o) => o.ok).map((o) => volumeIdOf(o.ok ? o.value : {}));
    for (const id of created) {
      expect((await settledVolume(c, id)).status).toBe('available');
      expect(hasMark(d, id, 'held')).toBe(true);
    }
    expectFaults(out, ['IncorrectState', 'InvalidSnapshot.NotFound']);
    await settleAndCheck(d.dir);
    await deleteAll(c);
  });
});

describe('create-snapshot against delete-volume', () => {
  it('either the snapshots are taken from the whole volume, or they are refused; the volume never goes while copied', async () => {
    const seen = new Set<string>();
    for (let round = 0; round < ROUNDS + 1; round++) {
      const c = alice[0]!;
      const vol = await newVolume(c);
      const mark = `snap-round-${round}`;
      markData(d, vol, mark);
      const calls = [
        () => alice[1]!.call('CreateSnapshot', { volumeId: vol }),
        () => alice[2]!.call('DeleteVolume', { volumeId: vol }),
        () => alice[3]!.call('CreateSnapshot', { volumeId: vol }),
        () => alice[4]!.call('DeleteVolume', { volumeId: vol }),
      ];
      const ordered = round % 2 ? [...calls].reverse() : calls;
      const out = round === 1 ? await inOrder(ordered) : await raceChecked(d, ordered);
      if (round % 2) out.reverse();
      const snaps = [out[0]!, out[2]!];
      const deletes = [out[1]!, out[3]!];
      expect(successes(deletes)).toBeLessThanOrEqual(1);
      expectFaults(snaps, ['IncorrectState', 'InvalidVolume.NotFound'], /volume/);
      expectFaults(deletes, ['IncorrectState', 'InvalidVolume.NotFound', 'ServiceUnavailable'], /snapshot of|deleting|does not exist|is being finished/);
      for (const o of snaps.filter((x) => x.ok)) {
        const id = snapshotIdOf(o.ok ? o.value : {});
        expect((await settledSnapshot(c, id)).status).toBe('completed');
        expect(hasMark(d, id, mark)).toBe(true);
      }
      seen.add(`${successes(snaps)} snapshots, ${successes(deletes) ? 'deleted' : 'kept'}`);
      await settleAndCheck(d.dir);
      await deleteAll(c);
    }
    expect([...seen]).toContain('0 snapshots, deleted');
  });
});

describe('creates that together ask for more than the capacity', () => {
  it('are never over-committed: the refused get InsufficientCapacity and leave nothing behind', async () => {
    const users = [...alice.slice(0, 4), ...(await clients(d, 'bob', 4)), ...(await clients(d, 'carol', 4))];
    for (let round = 0; round < ROUNDS; round++) {
      await eventually(async () => isQuiet(d.dir) || undefined);
      const free = CAPACITY_GIB - provisionedGiB();
      expect(free).toBe(CAPACITY_GIB);
      // Round 0: all 1 GiB, so exactly the free space is granted; later rounds mix sizes.
      const sizes = users.map((_, i) => (round === 0 ? 1 : 1 + ((i + round) % 3)));
      const out = await raceChecked(d, users.map((c, i) => () => c.call('CreateVolume', { size: sizes[i], comment: `cap ${round}/${i}` })));
      const granted = out.reduce((n, o, i) => n + (o.ok ? sizes[i]! : 0), 0);
      expect(granted).toBeLessThanOrEqual(free);
      if (round === 0) expect(granted).toBe(free);
      // A refused request had less room than it asked for, whatever the order.
      const smallestRefused = Math.min(...out.flatMap((o, i) => (o.ok ? [] : [sizes[i]!])));
      expect(smallestRefused).toBeGreaterThan(free - granted);
      expectFaults(out, ['InsufficientCapacity'], /not enough free space/);

      for (const [i, o] of out.entries()) {
        if (!o.ok) continue;
        expect((await settledVolume(users[i]!, volumeIdOf(o.value))).status).toBe('available');
      }
      await settleAndCheck(d.dir);
      expect(provisionedGiB()).toBe(granted);

      // Snapshots count against the same space: racing them on a full delegate over-commits nothing either.
      const owned = out.flatMap((o, i) => (o.ok ? [{ c: users[i]!, id: volumeIdOf(o.value), size: sizes[i]! }] : []));
      const snaps = await raceChecked(d, owned.map((v) => () => v.c.call('CreateSnapshot', { volumeId: v.id })));
      const room = CAPACITY_GIB - granted;
      const taken = snaps.reduce((n, o, i) => n + (o.ok ? owned[i]!.size : 0), 0);
      expect(taken).toBeLessThanOrEqual(room);
      expectFaults(snaps, ['InsufficientCapacity'], /not enough free space/);
      for (const [i, o] of snaps.entries()) {
        if (o.ok) expect((await settledSnapshot(owned[i]!.c, snapshotIdOf(o.value))).status).toBe('completed');
      }
      await settleAndCheck(d.dir);
      expect(provisionedGiB()).toBe(granted + taken);
      for (const c of [users[0]!, users[4]!, users[8]!]) await deleteAll(c);
      await settleAndCheck(d.dir);
    }
  });
});

describe('repeated client tokens', () => {
  it('racing creates with one token make one volume', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const token = `race-token-${round}`;
      const out = await raceChecked(d, alice.map((c) => () => c.call('CreateVolume', { size: 1, clientToken: token })));
      expect(out.filter((o) => !o.ok)).toEqual([]);
      const ids = new Set(out.map((o) => volumeIdOf(o.ok ? o.value : {})));
      expect(ids.size).toBe(1);
      const [id] = [...ids];
      expect((await settledVolume(alice[0]!, id!)).status).toBe('available');
      const all = ((await alice[0]!.call('DescribeVolumes', {})).volume as XmlRecord[]).filter((v) => v.volumeId === id);
      expect(all).toHaveLength(1);
      await settleAndCheck(d.dir);
      expect(await describeVolume(alice[0]!, id!)).toMatchObject({ status: 'available' });
      await alice[0]!.call('DeleteVolume', { volumeId: id });
    }
  });

  it('racing creates with one token share the first one\'s failure, never a volume that then vanishes', async () => {
    const c = alice[0]!;
    for (let round = 0; round < ROUNDS; round++) {
      const filler = await newVolume(c, CAPACITY_GIB); // the delegate is now full
      const token = `full-token-${round}`;
      const out = await raceChecked(d, alice.map((x) => () => x.call('CreateVolume', { size: 1, clientToken: token })));
      expect(out.map((o) => (o.ok ? `ok ${JSON.stringify(o.value)}` : o.code))).toEqual(alice.map(() => 'InsufficientCapacity'));
      const snaps = await raceChecked(d, alice.map((x) => () => x.call('CreateSnapshot', { volumeId: filler, clientToken: `${token}-snap` })));
      expect(snaps.map((o) => (o.ok ? `ok ${JSON.stringify(o.value)}` : o.code))).toEqual(alice.map(() => 'InsufficientCapacity'));
      await settleAndCheck(d.dir);
      // The token was released with the failure: a later retry is a new attempt.
      await c.call('DeleteVolume', { volumeId: filler });
      const retry = await c.call('CreateVolume', { size: 1, clientToken: token });
      expect((await settledVolume(c, volumeIdOf(retry))).status).toBe('available');
      await c.call('DeleteVolume', { volumeId: volumeIdOf(retry) });
    }
    await settleAndCheck(d.dir);
    await deleteAll(c);
  });
});
