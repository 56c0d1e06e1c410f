import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { VMM_DELEGATE_SERVICE } from '../../src/services/vmm-delegate.js';
import { eventually } from './harness.js';
import { Cluster } from './crash/cluster.js';
import { Tools, VMS } from './crash/matrix.js';

/**
 * Issue 16, item 10, through SOAP on real processes (file back end, the VMM
 * host simulated): a killed front listens before its recovery ends, answering
 * work on a resource still being recovered with the retryable
 * ServiceUnavailable; and a retried DetachVolume on a stalled detach is never
 * answered IncorrectState.
 */
let c: Cluster;
let t: Tools;
beforeAll(async () => {
  c = await Cluster.create(VMS);
  t = new Tools(c);
}, 120_000);
afterAll(async () => {
  await c?.destroy();
});

/** A simulator fault file (src/sim/faults.ts) in the VMM host's state folder; `count`: how many commands it applies to. */
function fault(kind: 'hang' | 'fail', name: string, content: string, count?: number): string {
  const dir = join(c.dir, 'vmm-sim', kind);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, name);
  writeFileSync(file, content);
  if (count !== undefined) writeFileSync(`${file}.count`, `${count}\n`);
  return file;
}

function clearFault(file: string): void {
  rmSync(file, { force: true });
  rmSync(`${file}.count`, { force: true });
}

async function attachedVolume(vmId: string, device: string): Promise<string> {
  const vol = await t.availableVolume();
  await t.attach(vol, vmId, device, 'w');
  await eventually(async () => ((await t.attachmentsOf(vol))[0]?.status === 'attached' ? true : undefined));
  return vol;
}

describe('a killed front recovers in the background', () => {
  it('listens while a recovery step hangs on the VMM host: DescribeVolumes answers, work on the recovering volume is ServiceUnavailable, and the detach then finishes', async () => {
    const vol = await attachedVolume('vm1', 'xvdb');
    // The front dies with the detach journaled and nothing done yet.
    await c.restart('front', { crashAt: 'DetachVolume/1/before' });
    await expect(t.detach(vol, 'vm1')).rejects.toThrow();
    expect(await c.waitExit('front')).toBe('SIGKILL');

    // Its restart's recovery of that detach blocks on the host, once, for a while.
    const hang = fault('hang', 'xm.block-detach', '12', 1);
    await c.start('front');
    const blocked = await eventually(async () => (readFileSync(`${hang}.count`, 'utf8').trim() === '0' ? true : undefined), 30_000, 50);
    expect(blocked).toBe(true);
    // The front answers while the step hangs.
    const [a] = await t.attachmentsOf(vol);
    expect(a).toMatchObject({ vmId: 'vm1', status: 'detaching' });
    await expect(t.detach(vol, 'vm1')).rejects.toMatchObject({ code: 'ServiceUnavailable', message: expect.stringMatching(/being recovered/) });
    await expect(t.api().call('DeleteVolume', { volumeId: vol })).rejects.toMatchObject({ code: 'ServiceUnavailable' });
    // Once the host answers, the detach is finished.
    await t.waitVolume(vol, 'available');
    expect(await t.attachmentsOf(vol)).toEqual([]);
    clearFault(hang);
    await t.api().call('DeleteVolume', { volumeId: vol });
  }, 120_000);
});

describe('a retried DetachVolume on a stalled detach', () => {
  it('is ServiceUnavailable while the host cannot finish it, and finishes it once the host answers: never IncorrectState', async () => {
    const vol = await attachedVolume('vm2', 'xvdc');
    // The VMM delegate dies right after detaching the disk, before it answers: the outcome is unknown, so the detach stalls.
    await c.restart('vmm-delegate', { crashAt: `${VMM_DELEGATE_SERVICE.name}.DetachDisk/after` });
    await expect(t.detach(vol, 'vm2')).rejects.toMatchObject({ code: 'ServiceUnavailable' });
    expect(await c.waitExit('vmm-delegate')).toBe('SIGKILL');
    expect((await t.attachmentsOf(vol))[0]).toMatchObject({ status: 'detaching' });

    // The host is still down: the retry is told to retry.
    await expect(t.detach(vol, 'vm2')).rejects.toMatchObject({ code: 'ServiceUnavailable' });

    // Back (the front's timer may finish it first: then the retry is answered by that detach or finds nothing to do).
    await c.start('vmm-delegate');
    const retried = await t.detach(vol, 'vm2').then(
      (r) => r,
      (e: unknown) => e,
    );
    // IncorrectState only as "not attached": the detach was already finished when the retry came.
    if (retried instanceof Error) expect(retried).toMatchObject({ code: expect.stringMatching(/^(ServiceUnavailable|IncorrectState)$/), message: expect.not.stringMatching(/detaching/) });
    else expect((retried as XmlRecord).attachment).toMatchObject({ volumeId: vol, vmId: 'vm2' });
    await t.waitVolume(vol, 'available');
    expect(await t.attachmentsOf(vol)).toEqual([]);
  }, 120_000);
});

describe('a restarted front tries what it kept at once', () => {
  // Back-offs are about hosts the last front saw down; a new front has not
  // seen them at all (its health probes start with every host up, so no
  // "return" is ever seen). Without a try at start, an undo kept as a
  // leftover waited its whole back-off: up to retryMaxDelayMs, five minutes by default.
  it('an attach\'s undo kept while the VMM host was down, due again only in an hour, is done once the front restarts with the host back', async () => {
    const vol = await t.availableVolume();
    const configFile = join(c.dir, 'front.json');
    const config = readFileSync(configFile, 'utf8');
    writeFileSync(configFile, JSON.stringify({ ...(JSON.parse(config) as object), retryFirstDelayMs: 3_600_000, retryMaxDelayMs: 3_600_000 }));
    try {
      await c.restart('front');
      // The host dies right after attaching the disk, before it answers: the attach is rolled back, and its DetachDisk waits.
      await c.restart('vmm-delegate', { crashAt: `${VMM_DELEGATE_SERVICE.name}.AttachDisk/after` });
      await expect(t.attach(vol, 'vm3', 'xvdd', 'w')).rejects.toMatchObject({ code: 'ServiceUnavailable' });
      expect(await c.waitExit('vmm-delegate')).toBe('SIGKILL');
      expect((await t.attachmentsOf(vol))[0]).toMatchObject({ status: 'detaching' });
      await c.kill('front');
      await c.start('vmm-delegate');
      await c.start('front');
      await t.waitVolume(vol, 'available');
      expect(await t.attachmentsOf(vol)).toEqual([]);
    } finally {
      writeFileSync(configFile, config);
      await c.restart('front');
    }
  }, 120_000);
});
