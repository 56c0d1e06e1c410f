import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { cleanup, disksOf, file, sim, simAsync, tmp, vms } from './helpers.js';

afterAll(cleanup);

const XM_ATTACH_USAGE =
  'Usage: xm block-attach <Domain> <BackDev> <FrontDev> <Mode> [BackDomain]\n\nCreate a new virtual block device.\n';

let dir: string;
let files: string;

beforeEach(() => {
  dir = tmp();
  files = tmp('hostsim-files-');
  for (const n of ['vm1', 'vm2', 'vm3']) expect(sim(dir, ['vm', 'create', n]).code).toBe(0);
});

describe('management verbs', () => {
  it('creates, lists and destroys VMs with domain ids', () => {
    expect(sim(dir, ['vm', 'create', 'fixed', '--domid', '42']).stdout).toBe('42\n');
    expect(vms(dir).map((v) => [v.name, v.domid])).toEqual([
      ['vm1', 1],
      ['vm2', 2],
      ['vm3', 3],
      ['fixed', 42],
    ]);
    expect(sim(dir, ['vm', 'destroy', 'vm2']).code).toBe(0);
    expect(vms(dir).map((v) => v.name)).toEqual(['vm1', 'vm3', 'fixed']);
  });

  it('refuses duplicate names and domain ids, and unknown VMs', () => {
    const dup = sim(dir, ['vm', 'create', 'vm1']);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toContain('already exists');
    const id = sim(dir, ['vm', 'create', 'other', '--domid', '1']);
    expect(id.code).toBe(1);
    expect(id.stderr).toContain('domain id 1 is in use');
    const gone = sim(dir, ['vm', 'destroy', 'nope']);
    expect(gone.code).toBe(1);
    expect(vms(dir)).toHaveLength(3);
  });

  it('rejects bad usage with exit 2', () => {
    expect(sim(dir, ['vm']).code).toBe(2);
    expect(sim(dir, ['vm', 'create']).code).toBe(2);
    expect(sim(dir, ['vm', 'create', 'bad name']).code).toBe(2);
    expect(sim(dir, ['vm', 'create', 'x', '--domid', 'abc']).code).toBe(2);
  });
});

describe('xm', () => {
  it('attaches a file read-write and shows it in block-list and vm list', () => {
    const img = file(files, 'a.img');
    const r = sim(dir, ['xm', 'block-attach', 'vm1', `file:${img}`, 'xvdb', 'w']);
    expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(disksOf(dir, 'vm1')).toEqual([{ dev: 'xvdb', target: img, mode: 'w', kind: 'file' }]);
    const list = sim(dir, ['xm', 'block-list', 'vm1']);
    expect(list.code).toBe(0);
    expect(list.stdout).toBe(
      'Vdev  BE handle state evt-ch ring-ref BE-path\n' +
        '51728    0    51728   4      9      8     /local/domain/0/backend/vbd/1/51728  \n',
    );
  });

  it('finds a domain by numeric id too', () => {
    const img = file(files, 'a.img');
    expect(sim(dir, ['xm', 'block-attach', '2', `file:${img}`, 'xvdc', 'r']).code).toBe(0);
    expect(disksOf(dir, 'vm2')).toEqual([{ dev: 'xvdc', target: img, mode: 'r', kind: 'file' }]);
  });

  it('refuses an unknown domain', () => {
    const img = file(files, 'a.img');
    const r = sim(dir, ['xm', 'block-attach', 'ghost', `file:${img}`, 'xvdb', 'w']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("Error: Domain 'ghost' does not exist.\n");
    expect(r.stdout).toBe('');
  });

  it('refuses a device name already used on the VM', () => {
    const a = file(files, 'a.img');
    const b = file(files, 'b.img');
    expect(sim(dir, ['xm', 'block-attach', 'vm1', `file:${a}`, 'xvdb', 'w']).code).toBe(0);
    const r = sim(dir, ['xm', 'block-attach', 'vm1', `file:${b}`, 'xvdb', 'r']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('Error: Device xvdb (51728, vbd) is already connected.\n');
    expect(r.stdout).toBe(XM_ATTACH_USAGE);
    expect(disksOf(dir, 'vm1')).toHaveLength(1);
  });

  it('refuses a target file that does not exist', () => {
    const r = sim(dir, ['xm', 'block-attach', 'vm1', `file:${files}/missing.img`, 'xvdb', 'w']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`Error: Device 51728 (vbd) could not be connected. ${files}/missing.img does not exist.\n`);
    expect(disksOf(dir, 'vm1')).toEqual([]);
  });

  it('refuses a phy: device that does not exist', () => {
    const r = sim(dir, ['xm', 'block-attach', 'vm1', 'phy:/dev/nosuchvg/nosuchlv', 'xvdb', 'w']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('Error: Device 51728 (vbd) could not be connected. /dev/nosuchvg/nosuchlv does not exist.\n');
  });

  it('refuses a file attached read-write elsewhere, in any mode', () => {
    const img = file(files, 'a.img');
    expect(sim(dir, ['xm', 'block-attach', 'vm1', `file:${img}`, 'xvdb', 'w']).code).toBe(0);
    const rw = sim(dir, ['xm', 'block-attach', 'vm2', `file:${img}`, 'xvdb', 'w']);
    expect(rw.code).toBe(1);
    expect(rw.stderr).toBe(
      'Error: Device 51728 (vbd) could not be connected.\n' +
        `File ${img} is loopback-mounted through /dev/loop0,\n` +
        'which is mounted in a guest domain,\nand so cannot be mounted now.\n',
    );
    expect(rw.stdout).toBe(XM_ATTACH_USAGE);
    const ro = sim(dir, ['xm', 'block-attach', 'vm2', `file:${img}`, 'xvdb', 'r']);
    expect(ro.code).toBe(1);
    expect(ro.stderr).toContain('which is mounted read-write in a guest domain,\nand so cannot be mounted read-only now.');
    expect(disksOf(dir, 'vm2')).toEqual([]);
  });

  it('shares a read-only file between VMs but refuses to add a writer', () => {
    const img = file(files, 'a.img');
    expect(sim(dir, ['xm', 'block-attach', 'vm1', `file:${img}`, 'xvdb', 'r']).code).toBe(0);
    expect(sim(dir, ['xm', 'block-attach', 'vm2', `file:${img}`, 'xvdb', 'r']).code).toBe(0);
    const w = sim(dir, ['xm', 'block-attach', 'vm3', `file:${img}`, 'xvdb', 'w']);
    expect(w.code).toBe(1);
    expect(w.stderr).toContain('which is mounted in a guest domain,\nand so cannot be mounted now.');
    expect(disksOf(dir, 'vm3')).toEqual([]);
  });

  it('lets w! skip the sharing check, as the block script does', () => {
    const img = file(files, 'a.img');
    expect(sim(dir, ['xm', 'block-attach', 'vm1', `file:${img}`, 'xvdb', 'w']).code).toBe(0);
    expect(sim(dir, ['xm', 'block-attach', 'vm2', `file:${img}`, 'xvdb', 'w!']).code).toBe(0);
    expect(disksOf(dir, 'vm2')[0]?.mode).toBe('w');
  });

  it('sees a symlinked path as the same file', async () => {
    const img = file(files, 'a.img');
    const { symlinkSync } = await import('node:fs');
    symlinkSync(img, `${files}/link.img`);
    expect(sim(dir, ['xm', 'block-attach', 'vm1', `file:${img}`, 'xvdb', 'w']).code).toBe(0);
    expect(sim(dir, ['xm', 'block-attach', 'vm2', `file:${files}/link.img`, 'xvdb', 'r']).code).toBe(1);
  });

  it('detaches by name, /dev path or number, and refuses devices not attached', () => {
    const a = file(files, 'a.img');
    const b = file(files, 'b.img');
    expect(sim(dir, ['xm', 'block-attach', 'vm1', `file:${a}`, 'xvdb', 'w']).code).toBe(0);
    expect(sim(dir, ['xm', 'block-attach', 'vm1', `file:${b}`, '/dev/xvdc', 'r']).code).toBe(0);
    const missing = sim(dir, ['xm', 'block-detach', 'vm1', 'xvdd']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('Error: Device 51760 not connected\n');
    expect(missing.stdout).toContain('Usage: xm block-detach <Domain> <DevId> [-f|--force]');
    expect(sim(dir, ['xm', 'block-detach', 'vm1', '/dev/xvdb']).code).toBe(0);
    expect(sim(dir, ['xm', 'block-detach', 'vm1', '51744', '-f']).code).toBe(0);
    expect(disksOf(dir, 'vm1')).toEqual([]);
    // the file is free again
    expect(sim(dir, ['xm', 'block-attach', 'vm2', `file:${a}`, 'xvdb', 'w']).code).toBe(0);
  });

  it('refuses detaching from an unknown domain', () => {
    const r = sim(dir, ['xm', 'block-detach', 'ghost', 'xvdb']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("Error: Domain 'ghost' does not exist.\n");
  });

  it('checks argument counts like xm', () => {
    const r = sim(dir, ['xm', 'block-attach', 'vm1', 'file:/x', 'xvdb']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("Error: 'xm block-attach' requires between 4 and 5 arguments.\n\n");
    expect(r.stdout).toBe(XM_ATTACH_USAGE);
    const d = sim(dir, ['xm', 'block-detach', 'vm1']);
    expect(d.code).toBe(1);
    expect(d.stderr).toBe("Error: 'xm block-detach' requires between 2 and 3 arguments.\n\n");
    const l = sim(dir, ['xm', 'block-list']);
    expect(l.code).toBe(1);
    expect(l.stdout).toContain('No domain parameter given');
    const none = sim(dir, ['xm']);
    expect(none.code).toBe(1);
    expect(none.stdout).toContain('Usage: xm <subcommand> [args]');
    const bad = sim(dir, ['xm', 'frob']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('Error: Subcommand frob not found!');
  });

  it('refuses an invalid guest device name', () => {
    const img = file(files, 'a.img');
    const r = sim(dir, ['xm', 'block-attach', 'vm1', `file:${img}`, 'floppy', 'w']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('Error: Unable to find number for device (floppy)\n');
  });

  it('lists domains like xm list', () => {
    const r = sim(dir, ['xm', 'list']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('Name                                      ID   Mem VCPUs      State   Time(s)');
    expect(lines[1]).toMatch(/^Domain-0 +0 +1024 +2 +r----- +\d+\.\d$/);
    expect(lines.slice(2).map((l) => l.split(/ +/)[0])).toEqual(['vm1', 'vm2', 'vm3']);
    const one = sim(dir, ['xm', 'list', 'ghost']);
    expect(one.code).toBe(1);
    expect(one.stderr).toBe("Error: Domain 'ghost' does not exist.\n");
  });

  it('lets exactly one of 8 parallel read-write attaches of one file win', async () => {
    const img = file(files, 'shared.img');
    const names = Array.from({ length: 8 }, (_, i) => `p${i}`);
    for (const n of names) expect(sim(dir, ['vm', 'create', n]).code).toBe(0);
    const results = await Promise.all(names.map((n) => simAsync(dir, ['xm', 'block-attach', n, `file:${img}`, 'xvdb', 'w'])));
    const winners = results.filter((r) => r.code === 0);
    expect(winners).toHaveLength(1);
    for (const r of results.filter((x) => x.code !== 0)) {
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('and so cannot be mounted now.');
    }
    const holders = vms(dir).filter((v) => v.disks.some((d) => d.target === img));
    expect(holders).toHaveLength(1);
  });

  it('loses no update when 8 attaches of different files run in parallel', async () => {
    const names = Array.from({ length: 8 }, (_, i) => `q${i}`);
    for (const n of names) expect(sim(dir, ['vm', 'create', n]).code).toBe(0);
    const results = await Promise.all(
      names.map((n) => simAsync(dir, ['xm', 'block-attach', n, `file:${file(files, `${n}.img`)}`, 'xvdb', 'w'])),
    );
    expect(results.map((r) => r.code)).toEqual(names.map(() => 0));
    for (const n of names) expect(disksOf(dir, n)).toHaveLength(1);
  });
});

describe('xl', () => {
  it('attaches with a key=value disk spec', () => {
    const img = file(files, 'a.img');
    const r = sim(dir, ['xl', 'block-attach', 'vm1', `format=raw,vdev=xvdb,access=rw,target=${img}`]);
    expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(disksOf(dir, 'vm1')).toEqual([{ dev: 'xvdb', target: img, mode: 'w', kind: 'file' }]);
  });

  it('accepts the positional forms, split over several arguments or not', () => {
    const a = file(files, 'a.img');
    const b = file(files, 'b.img');
    const c = file(files, 'c.img');
    expect(sim(dir, ['xl', 'block-attach', 'vm1', a, 'xvdb', 'ro']).code).toBe(0);
    expect(sim(dir, ['xl', 'block-attach', 'vm1', `${b},raw,xvdc,rw`]).code).toBe(0);
    expect(sim(dir, ['xl', 'block-attach', 'vm1', `file:${c},xvdd,r`]).code).toBe(0);
    expect(disksOf(dir, 'vm1').map((d) => [d.dev, d.mode])).toEqual([
      ['xvdb', 'r'],
      ['xvdc', 'w'],
      ['xvdd', 'r'],
    ]);
  });

  it('refuses an unknown domain', () => {
    const r = sim(dir, ['xl', 'block-attach', 'ghost', 'vdev=xvdb,target=/x']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('ghost is an invalid domain identifier\n');
    const d = sim(dir, ['xl', 'block-detach', 'ghost', 'xvdb']);
    expect(d.code).toBe(1);
    expect(d.stderr).toBe('ghost is an invalid domain identifier (rc=-6)\n');
  });

  it('refuses a missing target', () => {
    const r = sim(dir, ['xl', 'block-attach', 'vm1', `vdev=xvdb,access=rw,target=${files}/none.img`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^libxl: error: libxl_device\.c:\d+:libxl__device_disk_set_backend: Disk vdev=xvdb failed to stat: .*none\.img: No such file or directory\n/);
    expect(r.stderr.endsWith('libxl_device_disk_add failed.\n')).toBe(true);
    expect(disksOf(dir, 'vm1')).toEqual([]);
  });

  it('refuses a device name already in use', () => {
    const a = file(files, 'a.img');
    const b = file(files, 'b.img');
    expect(sim(dir, ['xl', 'block-attach', 'vm1', `vdev=xvdb,target=${a}`]).code).toBe(0);
    const r = sim(dir, ['xl', 'block-attach', 'vm1', `vdev=xvdb,target=${b}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Domain 1:device already exists in xenstore');
    expect(r.stderr).toContain('libxl_device_disk_add failed.');
  });

  it('refuses sharing a read-write file, through the hotplug script error', () => {
    const img = file(files, 'a.img');
    expect(sim(dir, ['xm', 'block-attach', 'vm1', `file:${img}`, 'xvdb', 'w']).code).toBe(0);
    const r = sim(dir, ['xl', 'block-attach', 'vm2', `vdev=xvdb,access=ro,target=${img}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`script: File ${img} is loopback-mounted through /dev/loop0,\nwhich is mounted read-write in a guest domain,\nand so cannot be mounted read-only now.`);
    expect(r.stderr).toContain('libxl_device_disk_add failed.');
  });

  it('reports disk spec parse errors', () => {
    const r = sim(dir, ['xl', 'block-attach', 'vm1', 'target=/x']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("command line: config parsing error in disk specification: no vdev specified in `target=/x'\n");
    const acc = sim(dir, ['xl', 'block-attach', 'vm1', 'vdev=xvdb,access=rwx,target=/x']);
    expect(acc.code).toBe(1);
    expect(acc.stderr).toContain("unknown value for access: `rwx'");
  });

  it('checks argument counts like xl (exit 2, help on stdout)', () => {
    const r = sim(dir, ['xl', 'block-attach', 'vm1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("'xl block-attach' requires at least 2 arguments.\n\n");
    expect(r.stdout).toContain('block-attach <Domain> <disk-spec-component(s)>...');
    const d = sim(dir, ['xl', 'block-detach', 'vm1']);
    expect(d.code).toBe(2);
    expect(d.stderr).toBe("'xl block-detach' requires at least 2 arguments.\n\n");
  });

  it('detaches, and refuses devices not connected', () => {
    const img = file(files, 'a.img');
    expect(sim(dir, ['xl', 'block-attach', 'vm1', `vdev=xvdb,target=${img}`]).code).toBe(0);
    const r = sim(dir, ['xl', 'block-detach', 'vm1', 'xvdc']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('Error: Device xvdc not connected.\n');
    expect(sim(dir, ['xl', 'block-detach', 'vm1', 'xvdb']).code).toBe(0);
    expect(disksOf(dir, 'vm1')).toEqual([]);
  });

  it('lists block devices with a header, skipping unknown domains', () => {
    const img = file(files, 'a.img');
    expect(sim(dir, ['xl', 'block-attach', 'vm2', `vdev=xvdb,access=ro,target=${img}`]).code).toBe(0);
    const r = sim(dir, ['xl', 'block-list', 'vm2', 'ghost']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('ghost is an invalid domain identifier\n');
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^Vdev  BE  handle state evt-ch ring-ref BE-path +$/);
    expect(lines[1]).toMatch(/^51728 0   2      4     \d+ +\d+ +\/local\/domain\/0\/backend\/vbd\/2\/51728$/);
  });
});
