import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VbsError } from '../../../src/core/errors.js';
import { openDatabase } from '../../../src/db/database.js';
import type { SoapClient } from '../../../src/soap/client.js';
import type { Record as XmlRecord } from '../../../src/soap/xml.js';
import { freshPostgresUrl, type Engine } from '../../setup/engines.js';
import { generator, runSeed } from '../../sampling.js';
import { eventually } from '../harness.js';
import { LEASE_MS, TwoFronts } from './fronts.js';

/**
 * Issue 20: several fronts on one metadata database, active-active. Two
 * `vbs serve front` processes share one database (a SQLite file, or a schema
 * of the run's PostgreSQL) and one pair of delegates: load goes through both
 * at once; a front SIGKILLed mid-attach and mid-copy (crash points) has its
 * work finished by the other within the claim lease; `vbs admin check` stays
 * clean; the CLI, given both fronts, goes to the second when the first is
 * down. One file per engine (two-fronts.test.ts, two-fronts-postgres.test.ts),
 * each sharing one deployment among its cases, so the two run side by side.
 */
export function describeTwoFronts(engine: Engine): void {
  let c: TwoFronts;
  let a: SoapClient;
  let b: SoapClient;
  let database: string;
  const VMS = ['vm1', 'vm2', 'vm3', 'vm4'];

  beforeAll(async () => {
    database = engine === 'postgres' ? freshPostgresUrl() : 'vbs.db';
    c = await TwoFronts.create(VMS, database);
    a = c.soap('front-a');
    b = c.soap('front-b');
  }, 90_000);

  afterAll(async () => {
    await c?.destroy();
  });

  const volumeOf = async (via: SoapClient, id: string): Promise<XmlRecord | undefined> =>
    ((await via.call('DescribeVolumes', { volumeId: [id] }).catch(() => ({ volume: [] }))).volume as XmlRecord[] | undefined)?.[0];

  /** Waits (bounded) until the volume, read through `via`, is in `status`. */
  const volumeIs = (via: SoapClient, id: string, status: string, ms = 30_000) =>
    eventually(async () => ((await volumeOf(via, id))?.status === status ? true : undefined), ms);

  async function snapshotCompleted(via: SoapClient, id: string): Promise<void> {
    await eventually(async () => {
      const s = ((await via.call('DescribeSnapshots', { snapshotId: [id] })).snapshot as XmlRecord[])[0];
      return s?.status === 'completed' ? true : undefined;
    });
  }

  async function clean(): Promise<void> {
    const r = await c.cli('--json', 'admin', 'check');
    expect(r.stdout ? (JSON.parse(r.stdout) as { finding: unknown[] }).finding : r.stderr).toEqual([]);
    expect(r.code).toBe(0);
  }

  const attachTo = (via: SoapClient, volumeId: string, vmId: string, mode = 'w') => via.call('AttachVolume', { volumeId, vmmHost: 'localhost', vmId, device: 'xvdb', mode });
  const detachFrom = (via: SoapClient, volumeId: string, vmId: string) => via.call('DetachVolume', { volumeId, vmmHost: 'localhost', vmId });

  describe(`two fronts on one database (${engine})`, () => {
    it('serve load through both at once: each sees the other\'s records, one CAS decides racing attaches, the check is clean', async () => {
      const next = generator(runSeed());
      const pick = () => (next() < 0.5 ? a : b);
      const other = (x: SoapClient) => (x === a ? b : a);
      // Creates through both fronts at once, each seen through the other.
      const made = await Promise.all(
        Array.from({ length: 6 }, async (_, i) => {
          const via = pick();
          const v = (await via.call('CreateVolume', { size: 1, clientToken: `load-${i}` })).volume as XmlRecord;
          await volumeIs(other(via), String(v.volumeId), 'available');
          return String(v.volumeId);
        }),
      );
      expect(new Set(made).size).toBe(6);
      // The records are where the engine says: in the database both fronts were given, and only there.
      const db = openDatabase(engine === 'postgres' ? database : join(c.dir, database));
      try {
        expect((db.prepare(`SELECT count(*) AS n FROM volumes WHERE volume_id IN (${made.map(() => '?').join(',')})`).get(...made) as { n: number }).n).toBe(6);
      } finally {
        db.close();
      }
      expect(existsSync(join(c.dir, 'vbs.db'))).toBe(engine === 'sqlite');
      // A token repeated on the other front names the same volume.
      const repeat = (await b.call('CreateVolume', { size: 1, clientToken: 'load-0' })).volume as XmlRecord;
      expect(made).toContain(String(repeat.volumeId));

      // Attach, snapshot, detach and delete, spread over both fronts at once.
      await Promise.all(
        made.slice(0, 4).map(async (vol, i) => {
          await attachTo(pick(), vol, VMS[i]!);
          await volumeIs(pick(), vol, 'in-use');
          const snap = (await pick().call('CreateSnapshot', { volumeId: vol, clientToken: `snap-${i}` })).snapshot as XmlRecord;
          await snapshotCompleted(pick(), String(snap.snapshotId));
          await detachFrom(pick(), vol, VMS[i]!);
          await volumeIs(pick(), vol, 'available');
        }),
      );
      await Promise.all(made.slice(4).map((vol) => pick().call('DeleteVolume', { volumeId: vol })));

      // Two read-write attaches of one volume, one through each front, at the same moment: exactly one wins.
      const contested = made[0]!;
      const results = await Promise.allSettled([attachTo(a, contested, 'vm1'), attachTo(b, contested, 'vm2')]);
      const won = results.filter((r) => r.status === 'fulfilled');
      expect(won).toHaveLength(1);
      const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect(lost.reason).toBeInstanceOf(VbsError);
      expect(['VolumeInUse', 'IncorrectState', 'ServiceUnavailable']).toContain((lost.reason as VbsError).code);
      const attachments = (await volumeOf(a, contested))!.attachments as XmlRecord[];
      expect(attachments).toHaveLength(1);
      await detachFrom(b, contested, String(attachments[0]!.vmId));
      await volumeIs(a, contested, 'available');
      await clean();
    }, 120_000);

    it('a front SIGKILLed mid-attach: the other rolls the attach back within the lease, and the volume attaches again', async () => {
      const vol = String(((await b.call('CreateVolume', { size: 1, clientToken: 'kill-attach' })).volume as XmlRecord).volumeId);
      await volumeIs(b, vol, 'available');
      await c.kill('front-a');
      // Killed after the iSCSI/file steps, before the disk is attached to the VM.
      await c.start('front-a', 'AttachVolume/3/after');
      const cut = await attachTo(c.soap('front-a'), vol, 'vm3').catch((e: unknown) => e);
      expect(cut).toBeInstanceOf(VbsError);
      expect(await c.exited('front-a')).toBe('SIGKILL');
      // Front B takes the dead front's claim (its process is gone) and rolls the attach back, well within the lease.
      await volumeIs(b, vol, 'available', LEASE_MS);
      expect((await volumeOf(b, vol))!.attachments ?? []).toEqual([]);
      expect(c.log('front-b')).toContain('took over a workflow whose runner is gone');
      await clean();
      await attachTo(b, vol, 'vm3');
      await volumeIs(b, vol, 'in-use');
      await detachFrom(b, vol, 'vm3');
      await volumeIs(b, vol, 'available');
    }, 90_000);

    it('a front SIGKILLed mid-copy (a volume from a snapshot, committed while it copies, never answered): the other finishes the create', async () => {
      const src = String(((await b.call('CreateVolume', { size: 1, clientToken: 'kill-copy-src' })).volume as XmlRecord).volumeId);
      await volumeIs(b, src, 'available');
      const snap = String(((await b.call('CreateSnapshot', { volumeId: src, clientToken: 'kill-copy-snap' })).snapshot as XmlRecord).snapshotId);
      await snapshotCompleted(b, snap);
      await c.start('front-a', 'CreateVolume/1/after');
      const cut = await c
        .soap('front-a')
        .call('CreateVolume', { size: 1, snapshotId: snap, clientToken: 'kill-copy' })
        .catch((e: unknown) => e);
      expect(cut).toBeInstanceOf(VbsError);
      expect(await c.exited('front-a')).toBe('SIGKILL');
      // The create's one step and its commit are journaled together (src/workflows/engine.ts): B's watch of the copy makes it
      // available. The client's retry (same token) on B names that volume.
      const again = (await b.call('CreateVolume', { size: 1, snapshotId: snap, clientToken: 'kill-copy' })).volume as XmlRecord;
      await volumeIs(b, String(again.volumeId), 'available', LEASE_MS);
      const all = ((await b.call('DescribeVolumes', { filter: [{ name: 'snapshotId', value: [snap] }] })).volume as XmlRecord[]) ?? [];
      expect(all.map((v) => v.volumeId)).toEqual([again.volumeId]);
      await clean();
    }, 90_000);

    it('the CLI, given both fronts, goes to the second when the first is down; creates carry their token', async () => {
      expect(c.isRunning('front-a')).toBe(false);
      const created = await c.cli('--json', 'create-volume', '1', '--wait');
      expect(created.code).toBe(0);
      expect(created.stderr).toContain(`${c.url('front-a')} did not answer`);
      const vol = (JSON.parse(created.stdout) as { volumeId: string }).volumeId;
      const listed = await c.cli('--json', 'describe-volumes', vol);
      expect(listed.code).toBe(0);
      expect((JSON.parse(listed.stdout) as { status: string }[])[0]!.status).toBe('available');
      // Back up: the first front serves again, on the same database.
      await c.start('front-a');
      await volumeIs(c.soap('front-a'), vol, 'available');
      await clean();
    }, 90_000);
  });
}
