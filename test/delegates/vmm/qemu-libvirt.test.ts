import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CommandCatalog } from '../../../src/commands/catalog.js';
import { DEFAULT_COMMANDS_FILE } from '../../../src/core/paths.js';
import { VmmAdapter } from '../../../src/delegates/vmm/adapter.js';
import { iscsiLun } from '../../../src/delegates/vmm/iscsi-target.js';
import { iscsiDiskXml, iscsiUrl } from '../../../src/delegates/vmm/libvirt-disk.js';
import { parseVirshDomXml } from '../../../src/delegates/vmm/listing/libvirt.js';
import { parseQmpVmNames, parseQueryBlock } from '../../../src/delegates/vmm/listing/qmp.js';
import { volumeIdOf } from '../../../src/delegates/vmm/volume-of.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const VBS = join(ROOT, 'bin', 'vbs.js');
const IQN = 'iqn.2026-11.org.vbs:vol-0123456789abcdef0';
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

// QEMU 7.2's query-block for a file disk and an iSCSI disk that vbs-qmp added (trimmed).
const QUERY_BLOCK = JSON.stringify([
  { device: '', qdev: 'sdb', inserted: { 'node-name': 'vbs-sdb', drv: 'raw', ro: true, file: '/srv/vbs/vol-0123456789abcdef0.img', image: { filename: '/srv/vbs/vol-0123456789abcdef0.img' } } },
  {
    device: '',
    qdev: '/machine/peripheral/sdc/virtio-backend',
    inserted: {
      'node-name': 'vbs-sdc',
      drv: 'iscsi',
      ro: false,
      file: `json:{"lun": 1, "portal": "127.0.0.1:13260", "initiator-name": "iqn.2026-11.org.vbs.qemu:vm1", "driver": "iscsi", "transport": "tcp", "target": "${IQN}"}`,
    },
  },
  { device: 'ide1-cd0', qdev: '/machine/unattached/device[23]', removable: true },
]);

describe('the qmp listing format', () => {
  it('reads device ids, images and the block layer read-only flag from query-block', () => {
    expect(parseQueryBlock('vm1', QUERY_BLOCK)).toEqual([
      { device: 'sdb', target: '/srv/vbs/vol-0123456789abcdef0.img', mode: 'r' },
      { device: 'sdc', target: `iscsi://127.0.0.1:13260/${IQN}/1`, mode: 'w' },
    ]);
    expect(volumeIdOf(`iscsi://127.0.0.1:13260/${IQN}/1`, [])).toBe('vol-0123456789abcdef0');
  });

  it('reads a block node VBS added that no device uses (vbs-qmp marks it vbs-orphan) as a partial disk', () => {
    const orphan = JSON.stringify([{ qdev: 'sde', inserted: { 'node-name': 'vbs-sde', drv: 'raw', ro: false, file: '/srv/vbs/vol-0123456789abcdef0.img' }, 'vbs-orphan': true }]);
    expect(parseQueryBlock('vm1', orphan)).toEqual([{ device: 'sde', target: '/srv/vbs/vol-0123456789abcdef0.img', mode: 'w', partial: true }]);
  });

  it('refuses output that is not query-block JSON', () => {
    expect(() => parseQueryBlock('vm1', 'error: no VM')).toThrow(/JSON/);
    expect(() => parseQueryBlock('vm1', '{}')).toThrow(/list/);
  });

  it('lists the VMs one a line', () => {
    expect(parseQmpVmNames('vm1\nvm2\n')).toEqual(['vm1', 'vm2']);
  });
});

describe('the libvirt network disk of an iSCSI LUN', () => {
  const lun = iscsiLun({ portal: '127.0.0.1:13260', iqn: IQN, lun: 1 });

  it('is read back by the virsh listing as the same iscsi:// name, read-only with <readonly/>', () => {
    const domain = (disk: string) => `<domain type='qemu'><name>vm1</name><devices>${disk}</devices></domain>`;
    const ro = iscsiDiskXml(lun, 'sdb', 'r');
    expect(ro).toContain("<source protocol='iscsi' name='iqn.2026-11.org.vbs:vol-0123456789abcdef0/1'>");
    expect(ro).toContain("<host name='127.0.0.1' port='13260'/>");
    expect(parseVirshDomXml('vm1', domain(ro))).toEqual([{ device: 'sdb', target: iscsiUrl(lun), mode: 'r' }]);
    expect(parseVirshDomXml('vm1', domain(iscsiDiskXml(lun, 'sdb', 'w')))).toEqual([{ device: 'sdb', target: iscsiUrl(lun), mode: 'w' }]);
  });

  it('takes only a SCSI disk name as its target', () => {
    expect(() => iscsiDiskXml(lun, "sdb'/><x", 'w')).toThrow(expect.objectContaining({ code: 'InvalidParameterValue' }));
    expect(() => iscsiDiskXml(lun, 'scsi1', 'w')).toThrow(expect.objectContaining({ code: 'InvalidParameterValue' }));
  });
});

describe('the shipped libvirt and qemu adapters', () => {
  it('attach iSCSI LUNs directly (no kernel initiator) and are complete', () => {
    const c = CommandCatalog.fromFile(DEFAULT_COMMANDS_FILE);
    for (const a of ['libvirt', 'qemu']) {
      expect(VmmAdapter.choose(c, a)).toBe(a);
      expect(c.setting(`vmm.${a}.option.iscsi`)).toBe('direct');
    }
    expect(c.pattern('vmm.libvirt.attach-iscsi').text).toBe('virsh attach-device <vmId> <path> --live');
  });

  it('refuse an unknown option.iscsi, and a direct adapter without attach-iscsi', () => {
    const base = 'vmm.x.attach = virsh attach-disk <vmId> <path> <vmDev>\nvmm.x.detach = virsh detach-disk <vmId> <vmDev>\n';
    expect(() => VmmAdapter.choose(CommandCatalog.fromText(`${base}vmm.x.option.iscsi = magic\n`), 'x')).toThrow(/option.iscsi 'magic'/);
    expect(() => VmmAdapter.choose(CommandCatalog.fromText(`${base}vmm.x.option.iscsi = direct\n`), 'x')).toThrow(/lacks vmm.x.attach-iscsi/);
  });
});

describe('a VMM delegate that names no adapter (fail closed)', () => {
  it('refuses to start, saying what to set', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vbs-noadapter-'));
    dirs.push(dir);
    // The shipped commands.properties names no adapter, and neither does this configuration.
    writeFileSync(join(dir, 'vmm.json'), JSON.stringify({ role: 'vmm-delegate', hostName: 'h1', listen: { port: 0 }, tls: { key: 'k', cert: 'c', ca: 'a' } }));
    const r = spawnSync(process.execPath, [VBS, 'serve', 'vmm-delegate', '--config', join(dir, 'vmm.json')], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(1);
    expect(r.stdout).not.toContain('ready');
    expect(r.stderr).toMatch(/no VMM adapter is chosen: set "adapter" in the vmm-delegate configuration \(or vmm\.adapter in .*commands\.properties\) to one of sim, xen, xl, libvirt, qemu, proxmox/);
  });

  it('with the qemu adapter, refuses to start without the folder of the QMP sockets', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vbs-noqmp-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'vmm.json'), JSON.stringify({ role: 'vmm-delegate', hostName: 'h1', adapter: 'qemu', listen: { port: 0 }, tls: { key: 'k', cert: 'c', ca: 'a' } }));
    const r = spawnSync(process.execPath, [VBS, 'serve', 'vmm-delegate', '--config', join(dir, 'vmm.json')], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/needs "qmpDir"/);
  });
});

describe('vbs up --vmm', () => {
  it.each([
    [['--vmm', 'hyperv'], /--vmm must be sim, libvirt, qemu/],
    [['--vmm', 'libvirt', '--qmp-dir', '/tmp'], /--qmp-dir goes with --vmm qemu/],
  ])('refuses %j as a usage error before starting anything', (args, message) => {
    const dir = mkdtempSync(join(tmpdir(), 'vbs-up-usage-'));
    dirs.push(dir);
    const r = spawnSync(process.execPath, [VBS, 'up', '--data', join(dir, 'data'), '--port', '0', ...args], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(existsSync(join(dir, 'data'))).toBe(false);
  });
});
