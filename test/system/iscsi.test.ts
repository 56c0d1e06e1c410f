import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, startVbs, type Vbs } from '../e2e/harness.js';
import { backendOf, lvFile, tgtTargets } from '../e2e/lvm-iscsi/site.js';
import { json, volume, type Volume } from './cli.js';
import { QemuVm, requireRoot, sector } from './host.js';

/**
 * The classic data path for real: volumes are LVs (of the simulated VG, each
 * a sparse file), exported by a real tgtd, and QEMU VMs read them over iSCSI
 * with QEMU's own initiator (the qemu adapter's attach-iscsi; no kernel
 * session). Bytes written into the LV's file before the attach are what the
 * VM's disk serves.
 */
let dir: string;
let qmpDir: string;
let data: string;
let vbs: Vbs | undefined;
const vms: Record<string, QemuVm> = {};
const ARGS = () => ['--backend', 'lvm-iscsi', '--target', 'tgt', '--vmm', 'qemu', '--qmp-dir', qmpDir];

beforeAll(async () => {
  requireRoot();
  dir = mkdtempSync(join(tmpdir(), 'vbs-sys-iscsi-'));
  qmpDir = join(dir, 'qmp');
  data = join(dir, 'data');
  mkdirSync(qmpDir);
  for (const name of ['vm1', 'vm2']) vms[name] = await QemuVm.start(qmpDir, name);
  vbs = await startVbs(ARGS(), data);
});

afterAll(async () => {
  await vbs?.stop(true);
  for (const vm of Object.values(vms)) await vm.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function newVolume(label: string): Promise<{ id: string; bytes: Buffer }> {
  const v = await json<Volume>(vbs!, 'create-volume', '1', label, '--wait');
  const file = lvFile(backendOf(data), v.volumeId);
  expect(file).toBeDefined();
  const bytes = sector(label);
  const fd = openSync(file!, 'r+');
  try {
    writeSync(fd, bytes, 0, bytes.length, 0);
  } finally {
    closeSync(fd);
  }
  return { id: v.volumeId, bytes };
}

const iqnOf = (id: string) => `iqn.2026-11.org.vbs:${id}`;
const targets = () => tgtTargets(backendOf(data).tgtControlPort!).map((t) => t.iqn).sort();

/** The VM's iSCSI disks: device, target and LUN from QEMU's own description of the image, and ro. */
async function iscsiDisks(vm: QemuVm): Promise<{ dev: string; target: string; ro: boolean }[]> {
  return (await vm.disks()).map((d) => {
    const opts = JSON.parse(d.file.replace(/^json:/, '')) as { driver: string; portal: string; target: string; lun: number };
    expect(opts).toMatchObject({ driver: 'iscsi', portal: backendOf(data).portal, lun: 1 });
    return { dev: d.dev, target: opts.target, ro: d.ro };
  });
}

// Real daemons on a shared 2-core machine: generous bounds (each restart of vbs up starts a tgtd and three services).
describe('lvm-iscsi with a real tgtd, QEMU VMs reading over iSCSI', { timeout: 300_000 }, () => {
  it('attaches read-write: the VM reads over iSCSI the bytes written into the LV before', async () => {
    const { id, bytes } = await newVolume('iscsi-rw');
    await json(vbs!, 'attach-volume', id, 'localhost', 'vm1', 'sdb', '--wait');
    expect(targets()).toEqual([iqnOf(id)]);
    expect(await iscsiDisks(vms.vm1!)).toEqual([{ dev: 'sdb', target: iqnOf(id), ro: false }]);
    expect(await vms.vm1!.read('sdb', dir)).toEqual(bytes);
    const check = await vbs!.cli('admin', 'check');
    expect(check.code, check.stdout + check.stderr).toBe(0);

    await json(vbs!, 'detach-volume', id, '--wait');
    expect(await vms.vm1!.disks()).toEqual([]);
    expect(targets()).toEqual([]);
    await json(vbs!, 'delete-volume', id);
  });

  it('shares one target read-only with two VMs, read-only in their block layer', async () => {
    const { id, bytes } = await newVolume('iscsi-ro');
    for (const vm of ['vm1', 'vm2']) await json(vbs!, 'attach-volume', id, 'localhost', vm, 'sdc', '--mode', 'r', '--wait');
    expect(targets()).toEqual([iqnOf(id)]);
    for (const vm of ['vm1', 'vm2']) {
      expect(await iscsiDisks(vms[vm]!)).toEqual([{ dev: 'sdc', target: iqnOf(id), ro: true }]);
      expect(await vms[vm]!.read('sdc', dir)).toEqual(bytes);
      expect(await vms[vm]!.qemuIo('sdc', 'write -P 0 0 512')).toMatch(/Block node is read-only/);
    }
    await json(vbs!, 'detach-volume', id, '--vmm-host', 'localhost', '--vm-id', 'vm1', '--wait');
    expect(targets()).toEqual([iqnOf(id)]);
    await json(vbs!, 'detach-volume', id, '--wait');
    expect(targets()).toEqual([]);
    expect(await vms.vm2!.disks()).toEqual([]);
    await json(vbs!, 'delete-volume', id);
  });

  it('rolls back each attach step that fails: the VM keeps exactly its disks, and no target is left', async () => {
    const shipped = readFileSync(join(ROOT, 'commands.properties'), 'utf8');
    const failing = async (key: string) => {
      const props = join(dir, `failing-${key}.properties`);
      const re = new RegExp(`^${key.replace(/\./g, '\\.')} = .*$`, 'm');
      expect(shipped).toMatch(re);
      writeFileSync(props, shipped.replace(re, `${key} = false`));
      await vbs!.stop(true);
      vbs = await startVbs([...ARGS(), '--commands', props], data);
    };
    const attachFails = async (id: string, key: string, before: unknown) => {
      const r = await vbs!.cli('attach-volume', id, 'localhost', 'vm1', 'sdc', '--wait');
      expect(r.code, key).toBe(1);
      expect(r.stderr, key).toContain(`${key} exited with 1`);
      expect(await vms.vm1!.disks(), key).toEqual(before);
      expect(targets(), key).not.toContain(iqnOf(id));
      expect(await volume(vbs!, id), key).toMatchObject({ status: 'available', attachments: [] });
    };
    const { id } = await newVolume('iscsi-fail');
    // A disk the VM has of its own (a plain file, attached over QMP): every
    // failed attach must leave the VM with exactly that. No iSCSI disk stays
    // attached across the restarts below: each brings a new tgtd.
    const own = join(dir, 'own.img');
    writeFileSync(own, Buffer.alloc(1024 * 1024));
    await vms.vm1!.qmp(async (c) => {
      await c.execute('blockdev-add', { driver: 'raw', 'node-name': 'own', file: { driver: 'file', filename: own } });
      await c.execute('device_add', { driver: 'scsi-hd', id: 'sda', drive: 'own', bus: 'scsi0.0' });
    });
    const before = await vms.vm1!.disks();
    expect(before).toEqual([{ dev: 'sda', file: own, ro: false }]);

    // The export step at its first and at its last tgtadm command (a
    // half-made target must go), and the attach step (discovery and login
    // have nothing to do: QEMU is the initiator).
    for (const key of ['iscsi.tgt.add-target', 'iscsi.tgt.bind', 'vmm.qemu.attach-iscsi']) {
      await failing(key);
      await attachFails(id, key, before);
      expect(targets(), key).toEqual([]);
    }

    // Deleting needs none of the failing patterns.
    await json(vbs!, 'delete-volume', id);
    expect(targets()).toEqual([]);
  });
});
