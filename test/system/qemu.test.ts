import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, startVbs, type Vbs } from '../e2e/harness.js';
import { parseQueryBlock } from '../../src/delegates/vmm/listing/qmp.js';
import { json, volume, type Volume } from './cli.js';
import { QemuVm, requireRoot, sector } from './host.js';

/**
 * The qemu adapter against real QEMU VMs (paused, no guest, TCG where there
 * is no KVM), through `vbs up --vmm qemu` and the CLI: the VM's block layer
 * is what is checked (QMP query-block, qemu-io on the VM's device).
 */
const TOOL = join(ROOT, 'dist', 'qmp', 'tool.js');
let dir: string;
let qmpDir: string;
let data: string;
let vbs: Vbs | undefined;
const vms: Record<string, QemuVm> = {};

beforeAll(async () => {
  requireRoot();
  dir = mkdtempSync(join(tmpdir(), 'vbs-sys-qemu-'));
  qmpDir = join(dir, 'qmp');
  data = join(dir, 'data');
  mkdirSync(qmpDir);
  for (const name of ['vm1', 'vm2']) vms[name] = await QemuVm.start(qmpDir, name);
  vms.bare = await QemuVm.start(qmpDir, 'bare', { scsi: false });
  vbs = await startVbs(['--vmm', 'qemu', '--qmp-dir', qmpDir], data);
});

afterAll(async () => {
  await vbs?.stop(true);
  for (const vm of Object.values(vms)) await vm.stop();
  rmSync(dir, { recursive: true, force: true });
});

const volumeFile = (id: string) => join(data, 'volumes', `${id}.img`);

function writeSector(file: string, bytes: Buffer): void {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, bytes, 0, bytes.length, 0);
  } finally {
    closeSync(fd);
  }
}

async function newVolume(label: string): Promise<{ id: string; bytes: Buffer }> {
  const v = await json<Volume>(vbs!, 'create-volume', '1', label, '--wait');
  const bytes = sector(label);
  writeSector(volumeFile(v.volumeId), bytes);
  return { id: v.volumeId, bytes };
}

describe('vbs up --vmm qemu', { timeout: 180_000 }, () => {
  it('writes the adapter and the QMP folder into vmm-delegate.json', () => {
    const cfg = JSON.parse(readFileSync(join(data, 'vmm-delegate.json'), 'utf8')) as Record<string, unknown>;
    expect(cfg).toMatchObject({ adapter: 'qemu', qmpDir });
    expect(cfg.simState).toBeUndefined();
  });

  it('attaches a file volume read-write: the VM serves the bytes written before, and detaches it', async () => {
    const { id, bytes } = await newVolume('qemu-rw');
    const a = await json<{ status: string; mode: string }>(vbs!, 'attach-volume', id, 'localhost', 'vm1', 'sdb', '--wait');
    expect(a).toMatchObject({ status: 'attached', mode: 'w' });
    expect(await vms.vm1!.disks()).toEqual([{ dev: 'sdb', file: volumeFile(id), ro: false }]);
    expect(await vms.vm1!.read('sdb', dir)).toEqual(bytes);
    // The delegate's own listing, through the consistency check, agrees.
    const check = await vbs!.cli('admin', 'check');
    expect(check.code, check.stdout + check.stderr).toBe(0);

    await json(vbs!, 'detach-volume', id, '--wait');
    expect(await vms.vm1!.disks()).toEqual([]);
    expect((await volume(vbs!, id)).status).toBe('available');
    await json(vbs!, 'delete-volume', id);
  });

  it('shares a volume read-only on two VMs, read-only in their block layer', async () => {
    const { id, bytes } = await newVolume('qemu-ro');
    for (const vm of ['vm1', 'vm2']) await json(vbs!, 'attach-volume', id, 'localhost', vm, 'sdc', '--mode', 'r', '--wait');
    for (const vm of ['vm1', 'vm2']) {
      expect(await vms[vm]!.disks()).toEqual([{ dev: 'sdc', file: volumeFile(id), ro: true }]);
      expect(await vms[vm]!.read('sdc', dir)).toEqual(bytes);
      // A write through the VM's device is refused by QEMU itself.
      expect(await vms[vm]!.qemuIo('sdc', 'write -P 0 0 512')).toMatch(/Block node is read-only/);
    }
    expect(readFileSync(volumeFile(id)).subarray(0, 512)).toEqual(bytes);
    expect((await volume(vbs!, id)).attachments.map((a) => `${a.vmId}:${a.mode}`).sort()).toEqual(['vm1:r', 'vm2:r']);

    await json(vbs!, 'detach-volume', id, '--vmm-host', 'localhost', '--vm-id', 'vm1', '--wait');
    expect(await vms.vm1!.disks()).toEqual([]);
    expect(await vms.vm2!.disks()).toEqual([{ dev: 'sdc', file: volumeFile(id), ro: true }]);
    await json(vbs!, 'detach-volume', id, '--wait');
    expect(await vms.vm2!.disks()).toEqual([]);
    await json(vbs!, 'delete-volume', id);
  });

  it('rolls back an attach whose step fails: the VM keeps exactly the disks it had', async () => {
    const keep = await newVolume('qemu-keep');
    await json(vbs!, 'attach-volume', keep.id, 'localhost', 'vm1', 'sdb', '--wait');
    const before = await vms.vm1!.disks();
    const { id } = await newVolume('qemu-fail');

    // An operator's commands.properties whose attach step fails: the shipped
    // file with vmm.qemu.attach replaced by a command that fails.
    const shipped = readFileSync(join(ROOT, 'commands.properties'), 'utf8');
    const props = join(dir, 'failing.properties');
    writeFileSync(props, shipped.replace(/^vmm\.qemu\.attach = .*$/m, 'vmm.qemu.attach = false'));
    await vbs!.stop(true);
    vbs = await startVbs(['--vmm', 'qemu', '--qmp-dir', qmpDir, '--commands', props], data);

    const r = await vbs.cli('attach-volume', id, 'localhost', 'vm1', 'sdc', '--wait');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/vmm\.qemu\.attach exited with 1/);
    expect(await vms.vm1!.disks()).toEqual(before);
    expect(await volume(vbs, id)).toMatchObject({ status: 'available', attachments: [] });

    // Detaching and deleting need none of the failing patterns.
    await json(vbs, 'detach-volume', keep.id, '--wait');
    for (const v of [keep.id, id]) await json(vbs, 'delete-volume', v);
    expect(await vms.vm1!.disks()).toEqual([]);
  });
});

describe('vbs-qmp, the qemu adapter\'s tool', () => {
  const tool = (...args: string[]) => {
    try {
      return { code: 0, out: execFileSync(process.execPath, [TOOL, '--dir', qmpDir, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) };
    } catch (e) {
      const err = e as { status: number; stderr: string };
      return { code: err.status, out: err.stderr };
    }
  };
  let img: string;
  beforeAll(() => {
    img = join(dir, 'tool.img');
    writeFileSync(img, Buffer.alloc(1024 * 1024));
    chmodSync(img, 0o600);
  });

  it('lists the VMs with a socket in its folder', () => {
    expect(tool('list-vms')).toEqual({ code: 0, out: 'bare\nvm1\nvm2\n' });
  });

  it('refuses a second disk on a device id, leaving the first', async () => {
    expect(tool('attach', 'vm2', 'sdd', 'file', img, 'rw').code).toBe(0);
    const r = tool('attach', 'vm2', 'sdd', 'file', img, 'ro');
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/already has a disk sdd/);
    expect(await vms.vm2!.disks()).toEqual([{ dev: 'sdd', file: img, ro: false }]);
    expect(tool('detach', 'vm2', 'sdd').code).toBe(0);
    expect(await vms.vm2!.disks()).toEqual([]);
    expect(tool('detach', 'vm2', 'sdd')).toMatchObject({ code: 1, out: expect.stringMatching(/not found/) });
  });

  it('removes its block node again when the device cannot be added (a VM without the SCSI controller)', async () => {
    const r = tool('attach', 'bare', 'sdb', 'file', img, 'rw');
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/scsi0/);
    const nodes = (await vms.bare!.qmp((c) => c.execute('query-named-block-nodes', { flat: true }))) as unknown[];
    expect(nodes).toEqual([]);
  });

  it('lists a block node left without its device (killed between blockdev-add and device_add) and removes it on detach', async () => {
    await vms.vm2!.qmp((c) => c.execute('blockdev-add', { 'node-name': 'vbs-sde', driver: 'raw', 'read-only': false, file: { driver: 'file', filename: img } }));
    const listed = tool('query-block', 'vm2');
    expect(listed.code).toBe(0);
    expect(parseQueryBlock('vm2', listed.out)).toEqual([{ device: 'sde', target: img, mode: 'w', partial: true }]);
    expect(tool('detach', 'vm2', 'sde').code).toBe(0);
    const nodes = (await vms.vm2!.qmp((c) => c.execute('query-named-block-nodes', { flat: true }))) as { 'node-name'?: string }[];
    expect(nodes.map((n) => n['node-name'])).not.toContain('vbs-sde');
    expect(parseQueryBlock('vm2', tool('query-block', 'vm2').out)).toEqual([]);
  });

  it('refuses bad arguments (usage, exit 2) before it connects', () => {
    expect(tool('attach', 'vm1', 'sdb', 'file', 'relative.img', 'rw').code).toBe(2);
    expect(tool('attach', 'vm1', 'sdb;x', 'file', img, 'rw').code).toBe(2);
    expect(tool('attach', '../vm1', 'sdb', 'file', img, 'rw').code).toBe(2);
    expect(tool('attach', 'vm1', 'sdb', 'iscsi', '127.0.0.1', '3260', 'not-an-iqn', '1', 'ro').code).toBe(2);
    expect(tool('attach', 'vm1', 'sdb', 'file', img, 'rx').code).toBe(2);
    expect(tool('attach', 'nosuchvm', 'sdb', 'file', img, 'rw')).toMatchObject({ code: 1, out: expect.stringMatching(/no VM nosuchvm/) });
  });
});
