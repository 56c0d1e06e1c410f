import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SoapClient } from '../../src/soap/client.js';
import { settleAndCheck } from './invariants.js';
import { startRaceDeployment, type RaceDeployment } from './race-deployment.js';
import { clients, newVolume } from './race-helpers.js';
import { assignVms } from './harness.js';

let d: RaceDeployment;
let alice: SoapClient;
beforeAll(async () => {
  d = await startRaceDeployment({ capacityGiB: 8, hosts: [{ name: 'localhost', vms: ['vm1', 'vm2'] }], front: { delegateTimeoutMs: 1500 } });
  alice = (await clients(d, 'alice', 1))[0]!;
  await assignVms(d.soap('admin'), 'alice', 'localhost', ['vm1']); // a user attaches only into VMs they own
}, 120_000);
afterAll(async () => {
  await d?.stop();
});

describe('a hypervisor command that outlasts the front timeout', () => {
  it('is rolled back once it lands: no disk is left on the VM without a record', async () => {
    const vol = await newVolume(alice);
    // The next block-attach takes 4 s; the front gives up after 1.5 s.
    const hang = join(d.dir, 'vmm-sim', 'hang');
    mkdirSync(hang, { recursive: true });
    writeFileSync(join(hang, 'xm.block-attach'), '4');
    writeFileSync(join(hang, 'xm.block-attach.count'), '1');
    await expect(alice.call('AttachVolume', { volumeId: vol, vmmHost: 'localhost', vmId: 'vm1', device: 'xvdf' })).rejects.toMatchObject({
      code: 'ServiceUnavailable',
      message: expect.stringMatching(/AttachVolume failed at step 4 of 4 \(vmm-delegate.AttachDisk\): .*did not answer within 1500 ms/),
    });
    // The undo's detach waits on the VM for the late attach, then removes it
    // (at once, or as a retried leftover): VBS and the VM end up agreeing.
    await settleAndCheck(d.dir, 60_000);
    await alice.call('AttachVolume', { volumeId: vol, vmmHost: 'localhost', vmId: 'vm1', device: 'xvdf' });
    await settleAndCheck(d.dir);
  });
});
