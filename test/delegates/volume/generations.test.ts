import { afterEach, describe, expect, it } from 'vitest';
import type { Record as XmlRecord } from '../../../src/soap/xml.js';
import { cleanupDirs, IQN_PREFIX, lvNames, simSite, type Site } from './helpers.js';
import { describeOne, killChild, startDelegate, stopDelegates, until, writeDelegateConfig } from './served.js';

/**
 * Issue 16: the volume delegate refuses a call from an older workflow on the
 * volume than one it already acted on the other way (src/delegates/generations.ts),
 * and remembers that across a restart. Driven over SOAP, lvm-iscsi on the
 * simulator (its exports leave targets to look at).
 */
afterEach(async () => {
  await stopDelegates();
  cleanupDirs();
});

const VOL = 'vol-0000000000000000e';

function writeConfig(site: Site): string {
  return writeDelegateConfig({ type: 'lvm-iscsi', vg: 'vbs', iqnPrefix: IQN_PREFIX, portal: '127.0.0.1:3260', target: 'iet', stateDir: site.stateDir, simState: site.state });
}

const exportsOf = async (c: { call(op: string, i: XmlRecord): Promise<XmlRecord> }) =>
  (((await c.call('ListExports', {})).export ?? []) as XmlRecord[]).map((e) => `${String(e.volumeId)}@${String(e.vmmHost)}`);

describe('volume delegate generations', { timeout: 180_000 }, () => {
  it("refuses a leftover UnexportVolume from an old attach after a newer attach exported again, and still does after a restart", async () => {
    const site = simSite(4);
    const config = writeConfig(site);
    let d = await startDelegate(config);
    // Generation 1 creates the volume; 2 attaches (exports), 3 detaches (unexports), 4 attaches again.
    await d.client.call('CreateVolume', { volumeId: VOL, sizeGiB: 1, generation: 1 });
    await until(d.client, VOL, 'ready');
    await d.client.call('ExportVolume', { volumeId: VOL, vmmHost: 'h1', generation: 2 });
    await d.client.call('UnexportVolume', { volumeId: VOL, vmmHost: 'h1', generation: 3 });
    await d.client.call('ExportVolume', { volumeId: VOL, vmmHost: 'h1', generation: 4 });
    // The same workflow retrying its step passes (steps are idempotent).
    await d.client.call('ExportVolume', { volumeId: VOL, vmmHost: 'h1', generation: 4 });

    // Generation 2's undo, kept as a leftover and delivered now, must not pull generation 4's target.
    await expect(d.client.call('UnexportVolume', { volumeId: VOL, vmmHost: 'h1', generation: 2 })).rejects.toMatchObject({ code: 'StaleGeneration' });
    // A caller that names no generation (a front older than generations) counts as 0: refused too.
    await expect(d.client.call('UnexportVolume', { volumeId: VOL, vmmHost: 'h1' })).rejects.toMatchObject({ code: 'StaleGeneration' });
    expect(await exportsOf(d.client)).toEqual([`${VOL}@h1`]);

    await killChild(d.process, 'SIGKILL');
    d = await startDelegate(config);
    await expect(d.client.call('UnexportVolume', { volumeId: VOL, vmmHost: 'h1', generation: 3 })).rejects.toMatchObject({ code: 'StaleGeneration' });
    expect(await exportsOf(d.client)).toEqual([`${VOL}@h1`]);

    // A newer detach withdraws it; an export other hosts' workflows make is another thing, not refused.
    await d.client.call('UnexportVolume', { volumeId: VOL, vmmHost: 'h1', generation: 5 });
    await d.client.call('ExportVolume', { volumeId: VOL, vmmHost: 'h2', generation: 2 });
    expect(await exportsOf(d.client)).toEqual([`${VOL}@h2`]);
  });

  it('refuses a create that arrives after a newer delete of the same volume, leaving nothing made', async () => {
    const site = simSite(4);
    const d = await startDelegate(writeConfig(site));
    await d.client.call('CreateVolume', { volumeId: VOL, sizeGiB: 1, generation: 1 });
    await until(d.client, VOL, 'ready');
    await d.client.call('DeleteObject', { id: VOL, generation: 2 });
    // Generation 1's create, resent by a runner that lost its claim: it must not make an LV nobody knows of.
    await expect(d.client.call('CreateVolume', { volumeId: VOL, sizeGiB: 1, generation: 1 })).rejects.toMatchObject({ code: 'StaleGeneration' });
    expect(await describeOne(d.client, VOL)).toEqual({ id: VOL, state: 'absent' });
    expect(lvNames(site.state)).toEqual([]);
  });

  it('refuses a hostile generation as a client fault, running nothing', async () => {
    const site = simSite(4);
    const d = await startDelegate(writeConfig(site));
    for (const generation of [-1, 'x', '1; reboot']) {
      await expect(d.client.call('CreateVolume', { volumeId: VOL, sizeGiB: 1, generation } as XmlRecord)).rejects.toMatchObject({ code: 'InvalidParameterValue' });
    }
    expect(lvNames(site.state)).toEqual([]);
  });
});
