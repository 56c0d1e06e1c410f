import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { openDatabase } from '../../src/db/database.js';
import { eventually, startVbs, type Vbs } from './harness.js';

/**
 * Issue 16 end to end (`vbs up`: the real front, volume delegate and VMM
 * delegate over mutual TLS, the simulated hypervisor): an old attach's undos,
 * queued from a stale copy after the volume was detached and attached to the
 * same VM again, reach the delegates with their old generation and are
 * refused there; the front drops them, and the newer attachment keeps its
 * disk and export.
 */
let vbs: Vbs;
beforeAll(async () => {
  vbs = await startVbs();
});
afterAll(async () => {
  await vbs?.stop();
});

/** A volume through the front's SOAP interface, once it is available. */
async function availableVolume(): Promise<string> {
  const c = vbs.soap();
  const volumeId = String(((await c.call('CreateVolume', { size: 1 })).volume as XmlRecord).volumeId);
  await eventually(async () => {
    const [v] = (await c.call('DescribeVolumes', { volumeId: [volumeId] })).volume as XmlRecord[];
    return v?.status === 'available' ? true : undefined;
  });
  return volumeId;
}

describe('generations end to end', () => {
  it("an old attach's undos run after a newer attach of the same volume to the same VM change nothing on the hosts", async () => {
    const c = vbs.soap();
    const volumeId = await availableVolume();
    const attach = { volumeId, vmmHost: 'localhost', vmId: 'vm1', device: 'xvdb' };
    // Attach and detach answer once their workflow is done.
    await c.call('AttachVolume', attach);
    await c.call('DetachVolume', { volumeId });
    await c.call('AttachVolume', attach);

    // The first attach's undos, queued now from its journaled data (a copy a
    // runner that lost its claim would still hold), due at once.
    const db = openDatabase(join(vbs.dir, 'vbs.db'));
    try {
      const first = db.prepare(`SELECT id, data FROM workflows WHERE kind = 'AttachVolume' AND resource_id = ? ORDER BY id LIMIT 1`).get(volumeId) as { id: number; data: string };
      expect((JSON.parse(first.data) as { generation?: number }).generation).toBe(2);
      // Written as SQL: the journal itself refuses a write from a runner that holds no claim.
      const keep = db.prepare(`INSERT INTO leftovers (workflow_id, kind, step, data, error, created_at, next_attempt_at, resource_id) VALUES (?, 'AttachVolume', ?, ?, 'from a stale copy', ?, ?, ?)`);
      for (const step of ['vmm-delegate.AttachDisk', 'volume-delegate.ExportVolume']) {
        keep.run(first.id, step, first.data, new Date().toISOString(), new Date(0).toISOString(), volumeId);
      }
      // The front's retry timer runs them; refused as stale, they are dropped.
      await eventually(async () => ((db.prepare('SELECT count(*) AS n FROM leftovers').get() as { n: number }).n === 0 ? true : undefined), 60_000);
    } finally {
      db.close();
    }
    // The metadata (attached to vm1) still matches what the hosts have: the disk and the export are there.
    expect(await c.call('CheckConsistency', {})).toEqual({ clean: true, finding: [] });
  });
});
