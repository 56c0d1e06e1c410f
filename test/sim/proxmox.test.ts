import { hostname } from 'node:os';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { cleanup, disksOf, file, sim, tmp } from './helpers.js';

afterAll(cleanup);

const NODE = hostname().split('.')[0];
const USAGE = '\n\nqm set <vmid> [OPTIONS]\n';

let dir: string;
let files: string;

beforeEach(() => {
  dir = tmp();
  files = tmp('hostsim-files-');
  for (const n of ['100', '101', '102']) expect(sim(dir, ['vm', 'create', n]).code).toBe(0);
});

describe('qm set / qm config', () => {
  it('hot-plugs a disk and shows it in qm config with its size', () => {
    const img = file(files, 'a.img', 1024 ** 3);
    const r = sim(dir, ['qm', 'set', '100', '--scsi1', img]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`update VM 100: -scsi1 ${img}\n`);
    expect(r.stderr).toBe('');
    const c = sim(dir, ['qm', 'config', '100']);
    expect(c.code).toBe(0);
    expect(c.stdout).toBe(`cores: 1\nmemory: 512\nscsi1: ${img},size=1G\nscsihw: virtio-scsi-pci\n`);
    expect(disksOf(dir, '100')).toEqual([{ dev: 'scsi1', target: img, mode: 'w', kind: 'file' }]);
  });

  it('attaches read-only with ro=1 (virtio, scsi) and shares read-only disks', () => {
    const img = file(files, 'a.img');
    expect(sim(dir, ['qm', 'set', '100', '--virtio2', `${img},ro=1`]).code).toBe(0);
    expect(sim(dir, ['qm', 'set', '101', `--scsi3=${img},ro=1`]).code).toBe(0);
    expect(sim(dir, ['qm', 'config', '100']).stdout).toContain(`virtio2: ${img},ro=1,size=1M\n`);
    expect(disksOf(dir, '101')).toEqual([{ dev: 'scsi3', target: img, mode: 'r', kind: 'file' }]);
  });

  it('refuses ro on a bus without it (ide, sata)', () => {
    const img = file(files, 'a.img');
    const r = sim(dir, ['qm', 'set', '100', '--ide1', `${img},ro=1`]);
    expect(r.code).toBe(255);
    expect(r.stderr).toBe(
      '400 Parameter verification failed.\nide1: invalid format - format error\n' +
        `ide1.ro: property is not defined in schema and the schema does not allow additional properties${USAGE}`,
    );
    expect(disksOf(dir, '100')).toEqual([]);
  });

  it('refuses an unknown vmid with the missing configuration file (exit 2)', () => {
    const img = file(files, 'a.img');
    const r = sim(dir, ['qm', 'set', '555', '--scsi1', img]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`Configuration file 'nodes/${NODE}/qemu-server/555.conf' does not exist\n`);
    expect(r.stdout).toBe('');
    expect(sim(dir, ['qm', 'config', '555']).code).toBe(2);
  });

  it('validates the vmid', () => {
    const low = sim(dir, ['qm', 'set', '99', '--scsi1', '/x']);
    expect(low.code).toBe(255);
    expect(low.stderr).toBe(`400 Parameter verification failed.\nvmid: value must have a minimum value of 100${USAGE}`);
    const word = sim(dir, ['qm', 'config', 'abc']);
    expect(word.code).toBe(255);
    expect(word.stderr).toContain("vmid: type check ('integer') failed - got 'abc'");
  });

  it('refuses a missing volume', () => {
    const r = sim(dir, ['qm', 'set', '100', '--scsi1', `${files}/none.img`]);
    expect(r.code).toBe(255);
    expect(r.stderr).toBe(`volume ${files}/none.img does not exist\n`);
    expect(disksOf(dir, '100')).toEqual([]);
  });

  it('refuses a slot already in use on the VM', () => {
    const a = file(files, 'a.img');
    const b = file(files, 'b.img');
    expect(sim(dir, ['qm', 'set', '100', '--scsi1', a]).code).toBe(0);
    const r = sim(dir, ['qm', 'set', '100', '--scsi1', b]);
    expect(r.code).toBe(255);
    expect(r.stderr).toBe(
      `400 Parameter verification failed.\nscsi1: hotplug problem - adding drive failed: Duplicate ID 'drive-scsi1' for drive${USAGE}`,
    );
    expect(disksOf(dir, '100').map((d) => d.target)).toEqual([a]);
  });

  it('refuses a disk another VM holds read-write (QEMU write lock)', () => {
    const img = file(files, 'a.img');
    expect(sim(dir, ['qm', 'set', '100', '--scsi1', img]).code).toBe(0);
    const rw = sim(dir, ['qm', 'set', '101', '--scsi1', img]);
    expect(rw.code).toBe(255);
    expect(rw.stderr).toBe(
      '400 Parameter verification failed.\nscsi1: hotplug problem - adding drive failed: Failed to get "write" lock\n' +
        `Is another process using the image [${img}]?${USAGE}`,
    );
    const ro = sim(dir, ['qm', 'set', '101', '--scsi1', `${img},ro=1`]);
    expect(ro.code).toBe(255);
    expect(ro.stderr).toContain('Failed to get shared "write" lock');
    expect(disksOf(dir, '101')).toEqual([]);
  });

  it('refuses a writer while a read-only holder exists, even on the same VM', () => {
    const img = file(files, 'a.img');
    expect(sim(dir, ['qm', 'set', '100', '--scsi1', `${img},ro=1`]).code).toBe(0);
    const same = sim(dir, ['qm', 'set', '100', '--scsi2', img]);
    expect(same.code).toBe(255);
    expect(same.stderr).toContain('Failed to get "write" lock');
    expect(sim(dir, ['qm', 'set', '102', '--scsi2', img]).code).toBe(255);
  });

  it('conflicts with Xen attachments of the same file', () => {
    const img = file(files, 'a.img');
    expect(sim(dir, ['vm', 'create', 'xen1']).code).toBe(0);
    expect(sim(dir, ['xm', 'block-attach', 'xen1', `file:${img}`, 'xvdb', 'w']).code).toBe(0);
    expect(sim(dir, ['qm', 'set', '100', '--scsi1', `${img},ro=1`]).code).toBe(255);
  });

  it('deletes a disk, and only warns for a slot that is not set (as qm does)', () => {
    const img = file(files, 'a.img');
    expect(sim(dir, ['qm', 'set', '100', '--scsi1', img]).code).toBe(0);
    const d = sim(dir, ['qm', 'set', '100', '--delete', 'scsi1']);
    expect(d.code).toBe(0);
    expect(d.stdout).toBe('update VM 100: -delete scsi1\n');
    expect(disksOf(dir, '100')).toEqual([]);
    const again = sim(dir, ['qm', 'set', '100', '--delete', 'scsi1']);
    expect(again.code).toBe(0);
    expect(again.stderr).toBe("cannot delete 'scsi1' - not set in current configuration!\n");
    // freed: another VM may now write it
    expect(sim(dir, ['qm', 'set', '101', '--scsi1', img]).code).toBe(0);
  });

  it('rejects unknown options and bad argument counts', () => {
    const unknown = sim(dir, ['qm', 'set', '100', '--scsi99', '/x']);
    expect(unknown.code).toBe(255);
    expect(unknown.stderr).toBe(
      `400 Parameter verification failed.\nscsi99: property is not defined in schema and the schema does not allow additional properties${USAGE}`,
    );
    const none = sim(dir, ['qm', 'set']);
    expect(none.code).toBe(255);
    expect(none.stderr).toBe('400 not enough arguments\nqm set <vmid> [OPTIONS]\n');
    const missing = sim(dir, ['qm', 'set', '100', '--scsi1']);
    expect(missing.code).toBe(255);
    expect(missing.stderr).toContain('400 unable to parse option');
    const cmd = sim(dir, ['qm', 'frob']);
    expect(cmd.code).toBe(255);
    expect(cmd.stderr).toBe("ERROR: unknown command 'qm frob'\n");
  });

  it('stores simple settings', () => {
    expect(sim(dir, ['qm', 'set', '100', '--memory', '2048']).code).toBe(0);
    expect(sim(dir, ['qm', 'config', '100']).stdout).toContain('memory: 2048\n');
  });
});
