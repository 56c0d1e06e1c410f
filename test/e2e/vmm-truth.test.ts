import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SoapClient } from '../../src/soap/client.js';
import type { Record as XmlRecord } from '../../src/soap/xml.js';
import { ROOT, startVbs, type Vbs } from './harness.js';
import { describeVolume, newVolume } from './race-helpers.js';

/**
 * What the front does with what the VMM delegate saw (issue 16): `vbs up`
 * with the simulated hypervisor, its faults set through the simulator's
 * fault files.
 */
let vbs: Vbs;
let admin: SoapClient;
beforeAll(async () => {
  vbs = await startVbs();
  admin = vbs.soap();
}, 120_000);
afterAll(async () => {
  await vbs?.stop();
});

const simState = () => join(vbs.dir, 'vmm-sim');
const hostsim = (...args: string[]) => execFileSync(process.execPath, [join(ROOT, 'dist', 'sim', 'hostsim.js'), '--state', simState(), ...args], { encoding: 'utf8' });
const vmDisks = (vm: string) => ((JSON.parse(hostsim('vm', 'list')) as { name: string; disks: { dev: string; target: string }[] }[]).find((v) => v.name === vm)?.disks ?? []);

/** A simulator fault file for the next `count` runs: `fail/` changes nothing, `fail-after/` acts first. */
function simFault(kind: 'fail' | 'fail-after', name: string, count: number): () => void {
  const file = join(simState(), kind, name);
  mkdirSync(join(simState(), kind), { recursive: true });
  writeFileSync(file, `${name}: injected\n`);
  writeFileSync(`${file}.count`, String(count));
  return () => {
    rmSync(file, { force: true });
    rmSync(`${file}.count`, { force: true });
  };
}

describe('the front and the VMM delegate agree on what changed (issue 16)', () => {
  it('undoes an attach whose command acted, then failed, while the listing failed: no disk is left, and the volume is available', async () => {
    const vol = await newVolume(admin);
    hostsim('vm', 'create', 'vm-acted');
    const clear = [simFault('fail-after', 'xm.block-attach', 1), simFault('fail', 'xm.list', 1)];
    try {
      await expect(admin.call('AttachVolume', { volumeId: vol, vmmHost: 'localhost', vmId: 'vm-acted', device: 'xvdf' })).rejects.toMatchObject({
        code: 'ServiceUnavailable',
        message: expect.stringContaining('outcome is unknown'),
      });
    } finally {
      clear.forEach((c) => c());
    }
    expect(vmDisks('vm-acted')).toEqual([]);
    const v = await describeVolume(admin, vol);
    expect(v.status).toBe('available');
    expect(v.attachments ?? []).toEqual([]);
  });

  it('finishes the detach of a volume whose VM was destroyed, and then deletes it', async () => {
    const vol = await newVolume(admin);
    hostsim('vm', 'create', 'vm-doomed');
    await admin.call('AttachVolume', { volumeId: vol, vmmHost: 'localhost', vmId: 'vm-doomed', device: 'xvdf' });
    expect((await describeVolume(admin, vol)).status).toBe('in-use');
    hostsim('vm', 'destroy', 'vm-doomed');
    await admin.call('DetachVolume', { volumeId: vol, vmmHost: 'localhost', vmId: 'vm-doomed' });
    const v = await describeVolume(admin, vol);
    expect(v.status).toBe('available');
    expect((v.attachments as XmlRecord[] | undefined) ?? []).toEqual([]);
    await admin.call('DeleteVolume', { volumeId: vol });
    await expect(describeVolume(admin, vol)).rejects.toMatchObject({ code: 'InvalidVolume.NotFound' });
  });

  it('has `vbs admin check --repair` detach an attachment whose VM is gone (missing-disk), leaving the volume available', async () => {
    const vol = await newVolume(admin);
    hostsim('vm', 'create', 'vm-vanished');
    await admin.call('AttachVolume', { volumeId: vol, vmmHost: 'localhost', vmId: 'vm-vanished', device: 'xvdf' });
    hostsim('vm', 'destroy', 'vm-vanished');
    const check = async (...flags: string[]) => {
      const r = await vbs.cli('--json', 'admin', 'check', ...flags);
      return (JSON.parse(r.stdout) as { finding: { kind: string; resource: string; detail: string; repaired: boolean }[] }).finding.filter((f) => f.resource === `${vol}/vm-vanished`);
    };
    expect(await check()).toEqual([expect.objectContaining({ kind: 'missing-disk', detail: expect.stringContaining("'localhost' has no VM vm-vanished"), repaired: false })]);
    expect(await check('--repair')).toEqual([expect.objectContaining({ kind: 'missing-disk', repaired: true })]);
    const v = await describeVolume(admin, vol);
    expect(v.status).toBe('available');
    expect((v.attachments as XmlRecord[] | undefined) ?? []).toEqual([]);
  });
});
