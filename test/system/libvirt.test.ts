import { execFileSync } from 'node:child_process';
import { chmodSync, closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VMM_DELEGATE_SERVICE } from '../../src/services/vmm-delegate.js';
import { SoapClient } from '../../src/soap/client.js';
import { ROOT, startVbs, type Vbs } from '../e2e/harness.js';
import { startTgtd } from '../sim/real-target.js';
import { json, volume, type Volume } from './cli.js';
import { LIBVIRT_HAS_KVM, LibvirtDaemons, LibvirtDomain, requireRoot, sector, virsh } from './host.js';

/**
 * The libvirt adapter against real libvirt domains (type qemu, TCG, without
 * /dev/kvm; paused, no guest, a virtio-scsi controller), through
 * `vbs up --vmm libvirt` and the CLI. libvirtd is started here when it does
 * not run (CI has no systemd), and stopped only if this file started it.
 */
let dir: string;
let data: string;
let nbdDir: string;
let daemons: LibvirtDaemons | undefined;
let vbs: Vbs | undefined;
const doms: Record<string, LibvirtDomain> = {};
const name = (n: number) => `vbs-sys-${process.pid}-${n}`;

beforeAll(async () => {
  requireRoot();
  dir = mkdtempSync(join(tmpdir(), 'vbs-sys-libvirt-'));
  // QEMU runs as libvirt-qemu: it must be able to reach the volume files
  // (search permission on the folders), and to make the NBD socket the test reads through.
  chmodSync(dir, 0o711);
  data = join(dir, 'data');
  nbdDir = join(dir, 'nbd');
  mkdirSync(nbdDir);
  chmodSync(nbdDir, 0o777);
  daemons = await LibvirtDaemons.ensure(dir);
  for (const n of [1, 2]) doms[n] = await LibvirtDomain.start(name(n));
  vbs = await startVbs(['--vmm', 'libvirt'], data);
});

afterAll(async () => {
  await vbs?.stop(true);
  for (const d of Object.values(doms)) await d.remove();
  await daemons?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const volumeFile = (id: string) => join(data, 'volumes', `${id}.img`);

async function newVolume(label: string): Promise<{ id: string; bytes: Buffer }> {
  const v = await json<Volume>(vbs!, 'create-volume', '1', label, '--wait');
  const bytes = sector(label);
  const fd = openSync(volumeFile(v.volumeId), 'r+');
  try {
    writeSync(fd, bytes, 0, bytes.length, 0);
  } finally {
    closeSync(fd);
  }
  return { id: v.volumeId, bytes };
}

/** The domain's disks as its live XML shows them: target, source, and <readonly/>. */
async function disks(d: LibvirtDomain): Promise<{ target: string; source: string; readonly: boolean }[]> {
  const xml = await d.xml();
  return xml
    .split('<disk ')
    .slice(1)
    .map((disk) => ({
      target: /<target dev='([^']+)'/.exec(disk)![1]!,
      source: /<source file='([^']+)'/.exec(disk)?.[1] ?? '',
      readonly: /<readonly\/>/.test(disk.split('</disk>')[0]!),
    }));
}

describe('vbs up --vmm libvirt', { timeout: 180_000 }, () => {
  it('runs domains of the type this machine can run, and writes the adapter into vmm-delegate.json', async () => {
    expect(await doms[1]!.xml()).toContain(`<domain type='${LIBVIRT_HAS_KVM ? 'kvm' : 'qemu'}'`);
    expect(JSON.parse(readFileSync(join(data, 'vmm-delegate.json'), 'utf8'))).toMatchObject({ adapter: 'libvirt' });
  });

  it('attaches a file volume read-write as a SCSI disk that serves the bytes written before, and detaches it', async () => {
    const { id, bytes } = await newVolume('libvirt-rw');
    await json(vbs!, 'attach-volume', id, 'localhost', name(1), 'sdb', '--wait');
    expect(await doms[1]!.blklist()).toEqual([{ type: 'file', device: 'disk', target: 'sdb', source: volumeFile(id) }]);
    expect(await disks(doms[1]!)).toEqual([{ target: 'sdb', source: volumeFile(id), readonly: false }]);
    expect(await doms[1]!.read('sdb', nbdDir)).toEqual(bytes);
    const check = await vbs!.cli('admin', 'check');
    expect(check.code, check.stdout + check.stderr).toBe(0);

    await json(vbs!, 'detach-volume', id, '--wait');
    expect(await doms[1]!.blklist()).toEqual([]);
    await json(vbs!, 'delete-volume', id);
  });

  it('shares a volume read-only on two domains: <readonly/>, and QEMU refuses writes', async () => {
    const { id, bytes } = await newVolume('libvirt-ro');
    for (const n of [1, 2]) await json(vbs!, 'attach-volume', id, 'localhost', name(n), 'sdc', '--mode', 'r', '--wait');
    for (const n of [1, 2]) {
      expect(await disks(doms[n]!)).toEqual([{ target: 'sdc', source: volumeFile(id), readonly: true }]);
      expect(await doms[n]!.read('sdc', nbdDir)).toEqual(bytes);
      expect(await doms[n]!.qemuIo('sdc', 'write -P 0 0 512')).toMatch(/Block node is read-only/);
    }
    await json(vbs!, 'detach-volume', id, '--vmm-host', 'localhost', '--vm-id', name(1), '--wait');
    expect(await doms[1]!.blklist()).toEqual([]);
    expect((await doms[2]!.blklist()).map((d) => d.target)).toEqual(['sdc']);
    await json(vbs!, 'detach-volume', id, '--wait');
    expect(await doms[2]!.blklist()).toEqual([]);
    await json(vbs!, 'delete-volume', id);
  });

  it('rolls back an attach whose step fails: the domain keeps exactly the disks it had', async () => {
    const keep = await newVolume('libvirt-keep');
    await json(vbs!, 'attach-volume', keep.id, 'localhost', name(1), 'sdb', '--wait');
    const before = await doms[1]!.xml();
    const { id } = await newVolume('libvirt-fail');

    // libvirt itself refuses this operator's attach pattern (no such bus).
    const shipped = readFileSync(join(ROOT, 'commands.properties'), 'utf8');
    const props = join(dir, 'failing.properties');
    writeFileSync(props, shipped.replace(/^vmm\.libvirt\.attach = .*$/m, 'vmm.libvirt.attach = virsh attach-disk <vmId> <path> <vmDev> --targetbus nosuchbus --live'));
    await vbs!.stop(true);
    vbs = await startVbs(['--vmm', 'libvirt', '--commands', props], data);

    const r = await vbs.cli('attach-volume', id, 'localhost', name(1), 'sdc', '--wait');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/vmm\.libvirt\.attach exited with 1/);
    expect(await doms[1]!.xml()).toBe(before);
    expect(await volume(vbs, id)).toMatchObject({ status: 'available', attachments: [] });

    // Detaching and deleting need none of the failing patterns.
    await json(vbs, 'detach-volume', keep.id, '--wait');
    for (const v of [keep.id, id]) await json(vbs, 'delete-volume', v);
    expect(await doms[1]!.blklist()).toEqual([]);
  });

  it('attaches an iSCSI LUN as a network disk that QEMU opens itself, read-only, with no kernel initiator', async () => {
    // The VMM delegate called directly, as the front calls it (its certificate),
    // with a LUN of a tgtd of this test's own.
    const target = await startTgtd();
    const front = JSON.parse(readFileSync(join(data, 'front.json'), 'utf8')) as { vmmHosts: { url: string }[] };
    const pem = (f: string) => readFileSync(join(data, 'pki', f));
    const vmm = new SoapClient({ def: VMM_DELEGATE_SERVICE, url: front.vmmHosts[0]!.url, tls: { key: pem('front.key'), cert: pem('front.crt'), ca: pem('ca.crt') } });
    try {
      const volumeId = 'vol-0000000000000000d';
      const iqn = `iqn.2026-11.org.vbs:${volumeId}`;
      const lunFile = join(dir, 'lun.img');
      const bytes = sector('libvirt-iscsi');
      writeFileSync(lunFile, Buffer.concat([bytes, Buffer.alloc(1024 * 1024 - 512)]));
      target.add(iqn, lunFile);
      const source = { kind: 'iscsi', portal: target.portal, iqn, lun: 1 };
      const url = `iscsi://${target.portal}/${iqn}/1`;

      // Discovery and login have nothing to do: the device is QEMU's own connection.
      await vmm.call('DiscoverTarget', { volumeId, source });
      expect(await vmm.call('LoginTarget', { volumeId, source })).toMatchObject({ device: url });
      await vmm.call('AttachDisk', { volumeId, vmId: name(2), device: 'sdd', mode: 'r', source });
      const xml = await doms[2]!.xml();
      const disk = xml.split('<disk ').find((d) => d.includes("<target dev='sdd'"))!.split('</disk>')[0]!;
      expect(disk).toMatch(/^type='network'/);
      expect(disk).toContain(`<source protocol='iscsi' name='${iqn}/1'`);
      expect(disk).toContain('<readonly/>');
      expect((await vmm.call('ListDisks', { vmId: [name(2)] })).disk).toEqual([{ vmId: name(2), device: 'sdd', target: url, mode: 'r', volumeId }]);
      expect(await doms[2]!.read('sdd', nbdDir)).toEqual(bytes);
      expect(await doms[2]!.qemuIo('sdd', 'write -P 0 0 512')).toMatch(/Block node is read-only/);

      await vmm.call('DetachDisk', { volumeId, vmId: name(2), device: 'sdd', source });
      expect(await doms[2]!.blklist()).toEqual([]);
      await vmm.call('LogoutTarget', { volumeId, source });
    } finally {
      vmm.close();
      await target.stop();
    }
  });

  it("logs a network disk in with the export's CHAP account from a libvirt secret: none or a wrong secret refused, the right one admitted, the secret gone at detach", async () => {
    // A tgtd of this test's own whose target requires CHAP, and the VMM delegate called as the front calls it.
    const target = await startTgtd();
    const front = JSON.parse(readFileSync(join(data, 'front.json'), 'utf8')) as { vmmHosts: { url: string }[] };
    const pem = (f: string) => readFileSync(join(data, 'pki', f));
    const vmm = new SoapClient({ def: VMM_DELEGATE_SERVICE, url: front.vmmHosts[0]!.url, tls: { key: pem('front.key'), cert: pem('front.crt'), ca: pem('ca.crt') } });
    const vbsSecrets = async () => (await virsh('secret-list')).split('\n').filter((l) => l.includes(`vbs/${name(1)}/`));
    try {
      const volumeId = 'vol-0000000000000000e';
      const iqn = `iqn.2026-11.org.vbs:${volumeId}`;
      const lunFile = join(dir, 'chap-lun.img');
      const bytes = sector('libvirt-chap');
      writeFileSync(lunFile, Buffer.concat([bytes, Buffer.alloc(1024 * 1024 - 512)]));
      const tid = target.add(iqn, lunFile);
      const user = `${volumeId}.host1`;
      const secret = 'Lv7_qR2-mX9zTp4KwB8nYc3J';
      // The account, as the volume delegate makes it (a test's secret on tgtadm's argv is no deployment's).
      for (const args of [
        ['--op', 'new', '--mode', 'account', '--user', user, '--password', secret],
        ['--op', 'bind', '--mode', 'account', '--tid', String(tid), '--user', user],
      ]) {
        execFileSync('tgtadm', ['-C', String(target.control), '--lld', 'iscsi', ...args]);
      }
      const plain = { kind: 'iscsi', portal: target.portal, iqn, lun: 1 };
      const wrong = 'Wrong_0123456789abcdefgh';
      const attach = (source: Record<string, string | number>) => vmm.call('AttachDisk', { volumeId, vmId: name(1), device: 'sde', mode: 'w', source });

      // No account: QEMU's login is refused, and the domain is left as it was.
      await expect(attach(plain)).rejects.toThrow();
      const refused = await attach({ ...plain, chapUser: user, chapSecret: wrong }).catch((e: unknown) => e as Error);
      expect(refused).toBeInstanceOf(Error);
      expect(String(refused.message)).not.toContain(wrong);
      expect((await doms[1]!.blklist()).map((d) => d.target)).not.toContain('sde');
      expect(await vbsSecrets()).toEqual([]);

      await attach({ ...plain, chapUser: user, chapSecret: secret });
      expect(await doms[1]!.read('sde', nbdDir)).toEqual(bytes);
      const xml = await doms[1]!.xml();
      const disk = xml.split('<disk ').find((d) => d.includes("<target dev='sde'"))!.split('</disk>')[0]!;
      expect(disk).toContain(`<auth username='${user}'>`);
      expect(disk).toContain(`<secret type='iscsi' usage='vbs/${name(1)}/sde'/>`);
      expect(xml).not.toContain(secret);
      const [line] = await vbsSecrets();
      expect(line).toBeDefined();
      // Private: libvirt gives nobody the value back.
      const uuid = line!.trim().split(/\s+/)[0]!;
      await expect(virsh('secret-get-value', uuid)).rejects.toThrow();

      await vmm.call('DetachDisk', { volumeId, vmId: name(1), device: 'sde', source: { ...plain, chapUser: user, chapSecret: secret } });
      expect((await doms[1]!.blklist()).map((d) => d.target)).not.toContain('sde');
      expect(await vbsSecrets()).toEqual([]);
    } finally {
      vmm.close();
      await target.stop();
    }
  });
});
