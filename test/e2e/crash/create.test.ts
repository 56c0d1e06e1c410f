import { describe, expect, it } from 'vitest';
import type { Record as XmlRecord } from '../../../src/soap/xml.js';
import { eventually } from '../harness.js';
import {
  copyInProgress,
  CREATE_BLANK,
  CREATE_FROM_SNAPSHOT,
  CREATE_SNAPSHOT,
  DELETE_SNAPSHOT,
  DELETE_VOLUME,
  expectBaseline,
  expectConsistent,
  settled,
  slowCopyCommands,
  type Tools,
} from './matrix.js';
import { crashMatrix, hostStatesAndSample, SAMPLED_SHARE, SharedCluster } from './suite.js';

/** Crash matrix, part 1: creates and deletes, and copies cut off by a crash of the volume delegate. */
const shared = new SharedCluster();
shared.register();
crashMatrix(shared, [CREATE_BLANK, CREATE_FROM_SNAPSHOT, CREATE_SNAPSHOT, DELETE_VOLUME, DELETE_SNAPSHOT], hostStatesAndSample(SAMPLED_SHARE));

/** Starts a copy that is slow, kills the volume delegate once the copy is visibly under way, restarts it. */
async function killDuringCopy(t: Tools, start: () => Promise<string>): Promise<string> {
  const c = t.cluster;
  await c.restart('volume-delegate', { commands: slowCopyCommands(c.dir) });
  const id = await start();
  await eventually(async () => (copyInProgress(c, id) ? true : undefined), 30_000, 10);
  await c.kill('volume-delegate');
  await c.start('volume-delegate');
  await settled(c);
  await expectConsistent(t);
  return id;
}

describe('volume delegate killed during a background copy', () => {
  it('of a snapshot: the moment it was taken is lost, so the snapshot ends in error (never a copy of a later moment) and can be deleted', () =>
    shared.use(async (t) => {
      const vol = await t.availableVolume();
      const snap = await killDuringCopy(t, async () => String(((await t.api().call('CreateSnapshot', { volumeId: vol })).snapshot as XmlRecord).snapshotId));
      expect(await t.snapshot(snap)).toMatchObject({ status: 'error' });
      await t.remove([snap, vol]);
      await expectBaseline(t);
    }), 120_000);

  it('of a volume from a snapshot: the front starts the copy again and the volume becomes available', () =>
    shared.use(async (t) => {
      const vol = await t.availableVolume();
      const snap = await t.completedSnapshot(vol);
      const made = await killDuringCopy(t, async () => String(((await t.api().call('CreateVolume', { size: 1, snapshotId: snap })).volume as XmlRecord).volumeId));
      expect(await t.volume(made)).toMatchObject({ status: 'available' });
      // The next request: attach it.
      await t.attach(made, 'vm1', 'xvdb', 'w');
      await t.remove([made, snap, vol]);
      await expectBaseline(t);
    }), 120_000);
});
