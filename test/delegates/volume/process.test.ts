import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { VbsError } from '../../../src/core/errors.js';
import { cleanupDirs, eventually, GiB, IQN_PREFIX, lvNames, simSite, type Site } from './helpers.js';
import { describeOne, killChild, startDelegate, stopDelegates, until, writeDelegateConfig } from './served.js';

/**
 * The Volume Delegate with the lvm-iscsi back end as a real process (`vbs
 * serve volume-delegate`), driven over SOAP with the front's certificate.
 */
afterEach(async () => {
  await stopDelegates();
  cleanupDirs();
});

const VOL = (n: number) => `vol-${n.toString(16).padStart(17, '0')}`;
const SNAP = (n: number) => `snap-${n.toString(16).padStart(17, '0')}`;
const kill = killChild;

function writeConfig(site: Site): string {
  return writeDelegateConfig({ type: 'lvm-iscsi', vg: 'vbs', iqnPrefix: IQN_PREFIX, portal: '127.0.0.1:3260', target: 'iet', stateDir: site.stateDir, simState: site.state, copyChunkMiB: 128 });
}

/** Host-simulator processes working on this state folder (children the killed delegate left behind). */
/** Simulator processes on this state folder; with `tool`, only those running that tool. */
function simProcessesOn(state: string, tool?: string): number[] {
  return readdirSync('/proc')
    .filter((d) => /^[0-9]+$/.test(d))
    .filter((d) => {
      try {
        const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
        return cmd.includes(state) && cmd.some((a) => a.endsWith('hostsim.js')) && (!tool || cmd.includes(tool));
      } catch {
        return false;
      }
    })
    .map(Number);
}

describe('volume delegate process, lvm-iscsi back end', { timeout: 180_000 }, () => {
  it('creates, snapshots, clones, exports and deletes through its SOAP interface', async () => {
    const site = simSite(8);
    const { client: c } = await startDelegate(writeConfig(site));
    expect(await c.call('GetCapacity', {})).toEqual({ backend: 'lvm-iscsi', totalBytes: 8 * GiB, freeBytes: 8 * GiB, provisionedBytes: 0 });
    // Answered once the lvcreate is done (ready), or after the quick-answer second with it still running.
    const created = await c.call('CreateVolume', { volumeId: VOL(1), sizeGiB: 1 });
    expect(created).toMatchObject({ accepted: true });
    expect(['ready', 'creating']).toContain(created.state);
    await until(c, VOL(1), 'ready');
    await c.call('CreateSnapshot', { snapshotId: SNAP(1), volumeId: VOL(1) });
    await until(c, SNAP(1), 'ready');
    await c.call('CreateVolume', { volumeId: VOL(2), sizeGiB: 2, snapshotId: SNAP(1) });
    const two = await until(c, VOL(2), 'ready');
    expect(two.sizeBytes).toBe(2 * GiB);
    const exp = await c.call('ExportVolume', { volumeId: VOL(2), vmmHost: 'localhost' });
    expect(exp.export).toEqual({ kind: 'iscsi', portal: '127.0.0.1:3260', iqn: `${IQN_PREFIX}:${VOL(2)}`, lun: 1 });
    expect(await c.call('ListExports', {})).toEqual({
      tracked: true,
      export: [{ volumeId: VOL(2), vmmHost: 'localhost', kind: 'iscsi', iqn: `${IQN_PREFIX}:${VOL(2)}`, tid: 1, lun: 1 }],
    });
    expect(await c.call('UnexportVolume', { volumeId: VOL(2), vmmHost: 'localhost' })).toMatchObject({ return: true });
    for (const id of [VOL(1), VOL(2), SNAP(1)]) expect(await c.call('DeleteObject', { id })).toEqual({ deleted: true });
    expect(await c.call('DeleteObject', { id: VOL(1) })).toEqual({ deleted: false });
    expect(lvNames(site.state)).toEqual([]);
    const err = await c.call('CreateVolume', { volumeId: '../vol', sizeGiB: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VbsError);
    expect((err as VbsError).code).toBe('InvalidParameterValue');
  });

  it('a copy cut off by a crash is never reported ready: its LVs are removed on restart and the copy can run again', async () => {
    const site = simSite(8);
    const config = writeConfig(site);
    const first = await startDelegate(config);
    await first.client.call('CreateVolume', { volumeId: VOL(1), sizeGiB: 1 });
    await until(first.client, VOL(1), 'ready');
    // The final rename hangs: the copy is whole but must not count as the snapshot.
    mkdirSync(join(site.state, 'hang'), { recursive: true });
    writeFileSync(join(site.state, 'hang', 'lvrename.rename'), '3600');
    await first.client.call('CreateSnapshot', { snapshotId: SNAP(1), volumeId: VOL(1) });
    await eventually(async () => ((await describeOne(first.client, SNAP(1))).progress === 99 ? true : undefined));
    // Wait for the hung rename itself, not for an earlier step (removing the cow LV) still running.
    await eventually(async () => (simProcessesOn(site.state, 'lvrename').length > 0 ? true : undefined));
    await kill(first.process, 'SIGKILL');
    for (const pid of simProcessesOn(site.state)) process.kill(pid, 'SIGKILL');
    expect(lvNames(site.state)).toEqual([`part.${SNAP(1)}`, VOL(1)]);
    rmSync(join(site.state, 'hang'), { recursive: true });

    const second = await startDelegate(config);
    expect(lvNames(site.state)).toEqual([VOL(1)]);
    expect(await describeOne(second.client, SNAP(1))).toEqual({ id: SNAP(1), state: 'absent' });
    // What the front's monitor does with an absent copy: start it again.
    await second.client.call('CreateSnapshot', { snapshotId: SNAP(1), volumeId: VOL(1) });
    await until(second.client, SNAP(1), 'ready');
    expect(lvNames(site.state)).toEqual([SNAP(1), VOL(1)]);
  });
});
