import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanupDirs, eventually, lvmConfig, lvNames, openLvm, simSite } from './helpers.js';
import { faultOf } from '../../fault-of.js';

afterEach(cleanupDirs);

const VOL = (n: number) => `vol-${n.toString(16).padStart(17, '0')}`;

/**
 * Issue 16 item 6: a create still waiting for the space lock must be visible
 * to a delete (the front's undo after its create call timed out). Before, the
 * delete answered "nothing there", the record was dropped, and the queued
 * lvcreate then made an LV no record owned.
 */
describe('lvm-iscsi: a delete racing a create that waits for the space lock', { timeout: 120_000 }, () => {
  it('cancels the queued create: it makes nothing, and no LV is left', async () => {
    const site = simSite(4);
    const { backend } = await openLvm(lvmConfig(site));
    // The first create's lvcreate holds the space lock for a while.
    mkdirSync(join(site.state, 'hang'), { recursive: true });
    writeFileSync(join(site.state, 'hang', 'lvcreate'), '4');
    writeFileSync(join(site.state, 'hang', 'lvcreate.count'), '1');
    await backend.createVolume(VOL(1), 1);

    // The second waits behind it; its caller gives up and deletes what it asked for.
    const queued = faultOf(backend.createVolume(VOL(2), 1));
    expect(await backend.delete(VOL(2))).toBe(true);
    expect((await queued).code).toBe('IncorrectState');

    // Everything settles: the first create is made, the second never is.
    await eventually(async () => ((await backend.describe(VOL(1))).state === 'ready' ? true : undefined));
    expect(await backend.describe(VOL(2))).toEqual({ id: VOL(2), state: 'absent' });
    expect(lvNames(site.state)).toEqual([VOL(1)]);
    expect((await backend.capacity()).provisionedBytes).toBe(1024 ** 3);
  });
});
