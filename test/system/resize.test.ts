import { closeSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVbs, type Vbs } from '../e2e/harness.js';
import { json, volume, type Volume } from './cli.js';
import { QemuVm, requireRoot, sector } from './host.js';

/**
 * ModifyVolume against a real QEMU VM (paused, no guest, TCG here) through
 * `vbs up --vmm qemu` and the CLI: the volume's file grows on the file back
 * end, and QMP block_resize makes the VM's block layer serve the new size,
 * as QMP query-block shows; the bytes written before are still served.
 */
const GiB = 1024 ** 3;
let dir: string;
let qmpDir: string;
let data: string;
let vbs: Vbs | undefined;
let vm: QemuVm | undefined;

beforeAll(async () => {
  requireRoot();
  dir = mkdtempSync(join(tmpdir(), 'vbs-sys-resize-'));
  qmpDir = join(dir, 'qmp');
  data = join(dir, 'data');
  mkdirSync(qmpDir);
  vm = await QemuVm.start(qmpDir, 'vm1');
  vbs = await startVbs(['--vmm', 'qemu', '--qmp-dir', qmpDir], data);
});

afterAll(async () => {
  await vbs?.stop(true);
  await vm?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const volumeFile = (id: string) => join(data, 'volumes', `${id}.img`);

/** What the VM's block layer serves for a device, in bytes (QMP query-block). */
async function servedBytes(dev: string): Promise<number | undefined> {
  const blocks = (await vm!.qmp((c) => c.execute('query-block'))) as { qdev?: string; inserted?: { image?: { 'virtual-size'?: number } } }[];
  return blocks.find((b) => b.qdev === dev || b.qdev?.endsWith(`/${dev}`))?.inserted?.image?.['virtual-size'];
}

interface Modification {
  modificationState: string;
  targetSize: number;
  statusMessage?: string;
}

function readTail(file: string): Buffer {
  const buf = Buffer.alloc(512);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, buf, 0, 512, statSync(file).size - 512);
  } finally {
    closeSync(fd);
  }
  return buf;
}

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

describe('ModifyVolume on real QEMU', { timeout: 180_000 }, () => {
  it('a volume attached to a running QEMU grows: query-block shows the new size, and the data is still there', async () => {
    const { id, bytes } = await newVolume('resize-rw');
    await json(vbs!, 'attach-volume', id, 'localhost', 'vm1', 'sdb', '--wait');
    expect(await servedBytes('sdb')).toBe(GiB);

    const m = await json<Modification>(vbs!, 'modify-volume', id, '--size', '2', '--wait');
    expect(m).toMatchObject({ modificationState: 'completed', targetSize: 2 });
    expect(m.statusMessage).toBeUndefined();
    expect(statSync(volumeFile(id)).size).toBe(2 * GiB);
    expect(await servedBytes('sdb')).toBe(2 * GiB);
    expect(await vm!.read('sdb', dir)).toEqual(bytes);
    // The grown tail is the VM's too: a write through its device at the last sector lands in the file.
    await vm!.qemuIo('sdb', `write -P 7 ${2 * GiB - 512} 512`);
    expect(readTail(volumeFile(id))).toEqual(Buffer.alloc(512, 7));

    await json(vbs!, 'detach-volume', id, '--wait');
    expect((await volume(vbs!, id)).status).toBe('available');
    await json(vbs!, 'delete-volume', id);
  });

  it('a read-only attachment QEMU will not resize: the volume still grows, completed, and the message names the VM to rescan', async () => {
    const { id } = await newVolume('resize-ro');
    await json(vbs!, 'attach-volume', id, 'localhost', 'vm1', 'sdc', '--mode', 'r', '--wait');
    const m = await json<Modification>(vbs!, 'modify-volume', id, '--size', '2', '--wait');
    expect(m.modificationState).toBe('completed');
    expect(m.statusMessage).toMatch(/vm1 on localhost/);
    expect(statSync(volumeFile(id)).size).toBe(2 * GiB);
    const [v] = await json<{ size: number }[]>(vbs!, 'describe-volumes', id);
    expect(v!.size).toBe(2);
    await json(vbs!, 'detach-volume', id, '--wait');
    await json(vbs!, 'delete-volume', id);
  });
});
