import { execFileSync } from 'node:child_process';
import { mkdirSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PkiStore } from '../../../src/pki/store.js';
import type { Record as XmlRecord } from '../../../src/soap/xml.js';
import { cleanupDirs, HOSTSIM, tempDir } from '../volume/helpers.js';
import { killChild, startDelegate, stopDelegates, type Delegate } from '../volume/served.js';

/**
 * Issue 16 on a VMM host: the delegate refuses a call from an older workflow
 * on the volume than one it already acted on the other way, and remembers it
 * across a restart. A real `vbs serve vmm-delegate` on the sim adapter, over SOAP.
 */
afterEach(async () => {
  await stopDelegates();
  cleanupDirs();
});

const VOL = 'vol-0000000000000000f';

interface Host {
  config: string;
  simState: string;
  source: XmlRecord;
}

/** A VMM host h1 with VMs vm1 and vm2 and the volume as a file in its volume root. */
function host(): Host {
  const dir = tempDir('vbs-vmm-gen-');
  const simState = join(dir, 'sim');
  mkdirSync(join(dir, 'volumes'), { recursive: true });
  const file = join(dir, 'volumes', `${VOL}.img`);
  writeFileSync(file, '');
  truncateSync(file, 1024 * 1024);
  for (const vm of ['vm1', 'vm2']) execFileSync(process.execPath, [HOSTSIM, '--state', simState, 'vm', 'create', vm]);
  const pki = new PkiStore(join(dir, 'pki'));
  pki.ensureCa();
  pki.ensureIdentity('front', { commonName: 'vbs-front', use: 'server+client', hosts: ['127.0.0.1'] });
  pki.ensureIdentity('vmm-delegate', { commonName: 'vbs-vmm-delegate', use: 'server', hosts: ['127.0.0.1'] });
  const config = join(dir, 'vmm-delegate.json');
  const tls = { key: 'pki/vmm-delegate.key', cert: 'pki/vmm-delegate.crt', ca: 'pki/ca.crt' };
  writeFileSync(config, JSON.stringify({ role: 'vmm-delegate', hostName: 'h1', listen: { host: '127.0.0.1', port: 0 }, tls, adapter: 'sim', volumeRoots: ['volumes'], simState: 'sim' }));
  return { config, simState, source: { kind: 'file', path: file } };
}

const disks = async (d: Delegate) => ((await d.client.call('ListDisks', {})).disk ?? []) as XmlRecord[];

describe('VMM delegate generations', { timeout: 180_000 }, () => {
  it("refuses an old detach's DetachDisk delivered after a newer attach of the volume to the same VM, and still does after a restart", async () => {
    const h = host();
    let d = await startDelegate(h.config, 'vmm-delegate');
    const disk = (generation?: number) => ({ volumeId: VOL, vmId: 'vm1', device: 'xvdb', source: h.source, ...(generation === undefined ? {} : { generation }) });
    // Generation 2 attaches; 3 detaches; 4 attaches the volume to the same VM again.
    await d.client.call('AttachDisk', { ...disk(2), mode: 'w' });
    await d.client.call('DetachDisk', disk(3));
    await d.client.call('AttachDisk', { ...disk(4), mode: 'w' });
    // The same workflow retrying its step passes.
    await d.client.call('AttachDisk', { ...disk(4), mode: 'w' });
    const attached = [{ vmId: 'vm1', device: 'xvdb', target: h.source.path, mode: 'w', volumeId: VOL }];

    // Generation 3's DetachDisk, sent by a runner whose claim expired and delivered only now.
    await expect(d.client.call('DetachDisk', disk(3))).rejects.toMatchObject({ code: 'StaleGeneration' });
    // No generation (a front older than generations) is 0: refused too.
    await expect(d.client.call('DetachDisk', disk())).rejects.toMatchObject({ code: 'StaleGeneration' });
    expect(await disks(d)).toEqual(attached);

    await killChild(d.process, 'SIGKILL');
    d = await startDelegate(h.config, 'vmm-delegate');
    await expect(d.client.call('DetachDisk', disk(3))).rejects.toMatchObject({ code: 'StaleGeneration' });
    expect(await disks(d)).toEqual(attached);

    // A newer detach detaches it.
    await d.client.call('DetachDisk', disk(5));
    expect(await disks(d)).toEqual([]);
    // And an old attach's AttachDisk arriving after it does not put the disk back.
    await expect(d.client.call('AttachDisk', { ...disk(4), mode: 'w' })).rejects.toMatchObject({ code: 'StaleGeneration' });
    expect(await disks(d)).toEqual([]);
  });

  it("refuses an old LogoutTarget after a newer login to the volume's target", async () => {
    const h = host();
    const d = await startDelegate(h.config, 'vmm-delegate');
    const file = { volumeId: VOL, source: h.source };
    await d.client.call('DiscoverTarget', { ...file, generation: 6 });
    await expect(d.client.call('LogoutTarget', { ...file, generation: 5 })).rejects.toMatchObject({ code: 'StaleGeneration' });
    expect(await d.client.call('LogoutTarget', { ...file, generation: 6 })).toEqual({ return: true });
  });

  it('refuses a hostile generation as a client fault, running nothing', async () => {
    const h = host();
    const d = await startDelegate(h.config, 'vmm-delegate');
    for (const generation of [-1, 'x', '2; reboot', 1.5]) {
      await expect(d.client.call('AttachDisk', { volumeId: VOL, vmId: 'vm1', device: 'xvdb', mode: 'w', source: h.source, generation } as XmlRecord)).rejects.toMatchObject({
        code: 'InvalidParameterValue',
      });
    }
    expect(await disks(d)).toEqual([]);
  });
});
