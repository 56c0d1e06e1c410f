import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVbs, type Vbs } from '../e2e/harness.js';
import { json, type Volume } from './cli.js';
import { LibvirtDaemons, LibvirtDomain, requireRoot } from './host.js';

/**
 * ModifyVolume against a real libvirt domain (type qemu, paused, no guest)
 * through `vbs up --vmm libvirt` and the CLI: `virsh blockresize` makes the
 * domain serve the grown file, as `virsh domblkinfo` shows.
 */
const GiB = 1024 ** 3;
let dir: string;
let data: string;
let daemons: LibvirtDaemons | undefined;
let vbs: Vbs | undefined;
let dom: LibvirtDomain | undefined;

beforeAll(async () => {
  requireRoot();
  dir = mkdtempSync(join(tmpdir(), 'vbs-sys-resize-libvirt-'));
  chmodSync(dir, 0o711); // QEMU runs as libvirt-qemu: it must reach the volume files
  data = join(dir, 'data');
  daemons = await LibvirtDaemons.ensure(dir);
  dom = await LibvirtDomain.start(`vbs-sys-resize-${process.pid}`);
  vbs = await startVbs(['--vmm', 'libvirt'], data);
});

afterAll(async () => {
  await vbs?.stop(true);
  await dom?.remove();
  await daemons?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** `virsh domblkinfo DOMAIN TARGET`: the capacity the domain serves for the disk, in bytes. */
function capacity(target: string): number {
  const out = execFileSync('virsh', ['domblkinfo', dom!.name, target], { encoding: 'utf8' });
  const m = /^Capacity:\s+([0-9]+)$/m.exec(out);
  if (!m) throw new Error(`virsh domblkinfo printed ${out}`);
  return Number(m[1]);
}

describe('ModifyVolume on real libvirt', { timeout: 180_000 }, () => {
  it('a volume attached to a running domain grows: virsh domblkinfo shows the new capacity', async () => {
    const v = await json<Volume>(vbs!, 'create-volume', '1', 'resize-libvirt', '--wait');
    await json(vbs!, 'attach-volume', v.volumeId, 'localhost', dom!.name, 'sdb', '--wait');
    expect(capacity('sdb')).toBe(GiB);
    const m = await json<{ modificationState: string; statusMessage?: string }>(vbs!, 'modify-volume', v.volumeId, '--size', '2', '--wait');
    expect(m.modificationState).toBe('completed');
    expect(m.statusMessage).toBeUndefined();
    expect(statSync(join(data, 'volumes', `${v.volumeId}.img`)).size).toBe(2 * GiB);
    expect(capacity('sdb')).toBe(2 * GiB);
    await json(vbs!, 'detach-volume', v.volumeId, '--wait');
    await json(vbs!, 'delete-volume', v.volumeId);
  });
});
