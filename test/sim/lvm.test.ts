import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { cleanup, sim, tmp } from './helpers.js';

afterAll(cleanup);

const MiB = 1024 * 1024;
let dir: string;

beforeEach(() => {
  dir = tmp();
  // 49 extents of 4 MiB, like a 200 MiB loop-device PV after metadata
  const r = sim(dir, ['lvm', 'vgcreate', 'vg0', String(49 * 4 * MiB)]);
  expect(r.code).toBe(0);
  expect(r.stdout).toBe('  Volume group "vg0" successfully created\n');
});

function lvNames(): string[] {
  const r = sim(dir, ['lvs', '--noheadings', '-o', 'lv_name', 'vg0']);
  return r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
}

describe('lvcreate', () => {
  it('creates an LV with a sparse backing file of its size', () => {
    const r = sim(dir, ['lvcreate', '-L', '100M', '-n', 'vol1', 'vg0']);
    expect(r).toEqual({ code: 0, stdout: '  Logical volume "vol1" created.\n', stderr: '' });
    const path = sim(dir, ['lvm', 'path', 'vg0/vol1']);
    expect(path.code).toBe(0);
    expect(statSync(path.stdout.trim()).size).toBe(100 * MiB);
  });

  it('accepts the size units lvcreate accepts', () => {
    expect(sim(dir, ['lvcreate', '-L', '4194304b', '-n', 'b', 'vg0']).code).toBe(0);
    expect(sim(dir, ['lvcreate', '-L8192K', '-n', 'k', 'vg0']).code).toBe(0);
    expect(sim(dir, ['lvcreate', '--size=8m', '--name=m', 'vg0']).code).toBe(0);
    expect(sim(dir, ['lvcreate', '-L', '0.0078125G', '-n', 'g', 'vg0']).code).toBe(0);
    expect(sim(dir, ['lvcreate', '-L', '8', '-n', 'default_mib', 'vg0']).code).toBe(0);
    expect(sim(dir, ['lvcreate', '-l', '2', '-n', 'ext', 'vg0']).code).toBe(0);
    const sizes = sim(dir, ['lvs', '--noheadings', '--units', 'b', '--nosuffix', '-o', 'lv_name,lv_size', 'vg0']);
    expect(sizes.stdout).toBe(
      [
        '  b           4194304',
        '  default_mib 8388608',
        '  ext         8388608',
        '  g           8388608',
        '  k           8388608',
        '  m           8388608',
        '',
      ].join('\n'),
    );
  });

  it('rounds up to whole extents and says so', () => {
    const r = sim(dir, ['lvcreate', '-L', '1.5M', '-n', 'small', 'vg0']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('  Rounding up size to full physical extent 4.00 MiB\n  Logical volume "small" created.\n');
  });

  it('refuses a duplicate name (exit 5)', () => {
    expect(sim(dir, ['lvcreate', '-L', '4M', '-n', 'vol1', 'vg0']).code).toBe(0);
    const r = sim(dir, ['lvcreate', '-L', '4M', '-n', 'vol1', 'vg0']);
    expect(r.code).toBe(5);
    expect(r.stderr).toBe('  Logical Volume "vol1" already exists in volume group "vg0"\n');
  });

  it('refuses when free space is insufficient (exit 5)', () => {
    expect(sim(dir, ['lvcreate', '-L', '100M', '-n', 'vol1', 'vg0']).code).toBe(0);
    const r = sim(dir, ['lvcreate', '-L', '150M', '-n', 'vol2', 'vg0']);
    expect(r.code).toBe(5);
    expect(r.stdout).toBe('  Rounding up size to full physical extent 152.00 MiB\n');
    expect(r.stderr).toBe('  Volume group "vg0" has insufficient free space (24 extents): 38 required.\n');
    expect(lvNames()).toEqual(['vol1']);
  });

  it('refuses an unknown VG (exit 5)', () => {
    const r = sim(dir, ['lvcreate', '-L', '4M', '-n', 'x', 'novg']);
    expect(r.code).toBe(5);
    expect(r.stderr).toBe('  Volume group "novg" not found\n  Cannot process volume group novg\n');
  });

  it('refuses bad command lines (exit 3)', () => {
    const q = sim(dir, ['lvcreate', '-L', '12q', '-n', 'x', 'vg0']);
    expect(q.code).toBe(3);
    expect(q.stderr).toBe("  Can't parse size argument.\n  Invalid argument for --size: 12q\n  Error during parsing of command line.\n");
    const zero = sim(dir, ['lvcreate', '-L', '0', '-n', 'x', 'vg0']);
    expect(zero.code).toBe(3);
    expect(zero.stderr).toBe("  --size may not be zero.\n  Run `lvcreate --help' for more information.\n");
    const nosize = sim(dir, ['lvcreate', '-n', 'x', 'vg0']);
    expect(nosize.code).toBe(3);
    expect(nosize.stderr).toBe("  No command with matching syntax recognised.  Run 'lvcreate --help' for more information.\n");
    const name = sim(dir, ['lvcreate', '-L', '4M', '-n', 'bad!name', 'vg0']);
    expect(name.code).toBe(3);
    expect(name.stderr).toBe('  Logical volume name "bad!name" is invalid.\n');
    const reserved = sim(dir, ['lvcreate', '-L', '4M', '-n', 'snapshot1', 'vg0']);
    expect(reserved.code).toBe(3);
    expect(reserved.stderr).toBe('  Names starting "snapshot" are reserved. Please choose a different LV name.\n');
    const opt = sim(dir, ['lvcreate', '--bogus', '-L', '4M', 'vg0']);
    expect(opt.code).toBe(3);
    expect(opt.stderr).toBe("lvcreate: unrecognized option '--bogus'\n  Error during parsing of command line.\n");
    const vgs = sim(dir, ['lvcreate', '-L', '4M', '-n', 'other/x', 'vg0']);
    expect(vgs.code).toBe(3);
    expect(vgs.stderr).toContain('Inconsistent volume group names given: "other" and "vg0"');
    expect(lvNames()).toEqual([]);
  });

  it('makes snapshots that copy the origin at that moment', () => {
    expect(sim(dir, ['lvcreate', '-L', '8M', '-n', 'orig', 'vg0']).code).toBe(0);
    const origin = sim(dir, ['lvm', 'path', 'vg0/orig']).stdout.trim();
    writeFileSync(origin, Buffer.from('before'), { flag: 'r+' });
    const r = sim(dir, ['lvcreate', '-s', '-L', '4M', '-n', 'snap', 'vg0/orig']);
    expect(r).toEqual({ code: 0, stdout: '  Logical volume "snap" created.\n', stderr: '' });
    writeFileSync(origin, Buffer.from('after!'), { flag: 'r+' });
    const snap = sim(dir, ['lvm', 'path', '/dev/vg0/snap']).stdout.trim();
    expect(readFileSync(snap).subarray(0, 6).toString()).toBe('before');
    expect(statSync(snap).size).toBe(8 * MiB);
    const lvs = sim(dir, ['lvs', '--noheadings', '--units', 'b', '--nosuffix', '-o', 'lv_name,lv_size,origin,lv_attr', 'vg0']);
    expect(lvs.stdout).toBe('  orig 8388608        owi-a-s---\n  snap 4194304 orig   swi-a-s---\n');
  });

  it('refuses snapshots of missing origins and of snapshots', () => {
    const missing = sim(dir, ['lvcreate', '-s', '-L', '4M', '-n', 's', 'vg0/nope']);
    expect(missing.code).toBe(5);
    expect(missing.stderr).toBe('  Snapshot origin LV nope not found in Volume group vg0.\n');
    expect(sim(dir, ['lvcreate', '-L', '4M', '-n', 'o', 'vg0']).code).toBe(0);
    expect(sim(dir, ['lvcreate', '-s', '-L', '4M', '-n', 's1', '/dev/vg0/o']).code).toBe(0);
    const ofSnap = sim(dir, ['lvcreate', '-s', '-L', '4M', '-n', 's2', 'vg0/s1']);
    expect(ofSnap.code).toBe(5);
    expect(ofSnap.stderr).toBe('  Snapshots of snapshots are not supported.\n');
    const zero = sim(dir, ['lvcreate', '-s', '-Zn', '-L', '4M', '-n', 's3', 'vg0/o']);
    expect(zero.code).toBe(3);
    expect(zero.stderr).toContain('Option --zero is unsupported with snapshots.');
  });
});

describe('lvremove', () => {
  it('removes with -f and deletes the backing file', () => {
    expect(sim(dir, ['lvcreate', '-L', '4M', '-n', 'vol1', 'vg0']).code).toBe(0);
    const backing = sim(dir, ['lvm', 'path', 'vg0/vol1']).stdout.trim();
    const r = sim(dir, ['lvremove', '-f', 'vg0/vol1']);
    expect(r).toEqual({ code: 0, stdout: '  Logical volume "vol1" successfully removed.\n', stderr: '' });
    expect(existsSync(backing)).toBe(false);
    expect(lvNames()).toEqual([]);
  });

  it('refuses a missing LV or VG (exit 5)', () => {
    const lv = sim(dir, ['lvremove', '-f', 'vg0/ghost']);
    expect(lv.code).toBe(5);
    expect(lv.stderr).toBe('  Failed to find logical volume "vg0/ghost"\n');
    const vg = sim(dir, ['lvremove', '-f', 'novg/x']);
    expect(vg.code).toBe(5);
    expect(vg.stderr).toBe('  Volume group "novg" not found\n  Cannot process volume group novg\n');
    const none = sim(dir, ['lvremove']);
    expect(none.code).toBe(3);
    expect(none.stderr).toContain('No command with matching syntax recognised.');
  });

  it('asks before removing an active LV without -f', () => {
    expect(sim(dir, ['lvcreate', '-L', '4M', '-n', 'vol1', 'vg0']).code).toBe(0);
    const no = sim(dir, ['lvremove', 'vg0/vol1'], { input: 'n\n' });
    expect(no.code).toBe(5);
    expect(no.stdout).toBe('Do you really want to remove active logical volume vg0/vol1? [y/n]:   Logical volume "vol1" not removed.\n');
    expect(lvNames()).toEqual(['vol1']);
    const yes = sim(dir, ['lvremove', 'vg0/vol1'], { input: 'y\n' });
    expect(yes.code).toBe(0);
    expect(yes.stdout).toContain('Logical volume "vol1" successfully removed.');
    expect(lvNames()).toEqual([]);
  });

  it('removes an origin together with its snapshots (-f), and asks first without -f', () => {
    expect(sim(dir, ['lvcreate', '-L', '4M', '-n', 'o', 'vg0']).code).toBe(0);
    expect(sim(dir, ['lvcreate', '-s', '-L', '4M', '-n', 's', 'vg0/o']).code).toBe(0);
    const no = sim(dir, ['lvremove', 'vg0/o'], { input: '' });
    expect(no.code).toBe(5);
    expect(no.stdout).toContain('Removing origin o will also remove 1 snapshots(s). Proceed? [y/n]: ');
    expect(lvNames()).toEqual(['o', 's']);
    const r = sim(dir, ['lvremove', '-f', 'vg0/o']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('  Logical volume "s" successfully removed.\n  Logical volume "o" successfully removed.\n');
    expect(lvNames()).toEqual([]);
  });

  it('refuses an LV that is in use by a VM (exit 5)', () => {
    expect(sim(dir, ['lvcreate', '-L', '4M', '-n', 'vol1', 'vg0']).code).toBe(0);
    expect(sim(dir, ['vm', 'create', 'vm1']).code).toBe(0);
    expect(sim(dir, ['xm', 'block-attach', 'vm1', 'phy:/dev/vg0/vol1', 'xvdb', 'w']).code).toBe(0);
    const r = sim(dir, ['lvremove', '-f', 'vg0/vol1']);
    expect(r.code).toBe(5);
    expect(r.stderr).toBe('  Logical volume vg0/vol1 in use.\n');
    expect(sim(dir, ['lvs', '--noheadings', '-o', 'lv_attr', 'vg0/vol1']).stdout).toBe('  -wi-ao----\n');
    expect(sim(dir, ['xm', 'block-detach', 'vm1', 'xvdb']).code).toBe(0);
    expect(sim(dir, ['lvremove', '-f', '/dev/vg0/vol1']).code).toBe(0);
  });

  it('keeps the removals that succeeded when another target fails', () => {
    expect(sim(dir, ['lvcreate', '-L', '4M', '-n', 'a', 'vg0']).code).toBe(0);
    const r = sim(dir, ['lvremove', '-f', 'vg0/a', 'vg0/ghost']);
    expect(r.code).toBe(5);
    expect(lvNames()).toEqual([]);
  });
});

describe('lvs / vgs', () => {
  beforeEach(() => {
    expect(sim(dir, ['lvcreate', '-L', '100M', '-n', 'vol1', 'vg0']).code).toBe(0);
    expect(sim(dir, ['lvcreate', '-L', '12M', '-n', 'vol3', 'vg0']).code).toBe(0);
  });

  it('prints the requested columns like lvm2 2.03', () => {
    const r = sim(dir, ['lvs', '--noheadings', '--units', 'b', '--nosuffix', '-o', 'lv_name,lv_size,origin,lv_path,lv_attr,vg_name', 'vg0']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('  vol1 104857600        /dev/vg0/vol1 -wi-a----- vg0 \n  vol3  12582912        /dev/vg0/vol3 -wi-a----- vg0 \n');
  });

  it('prints headings and human sizes by default', () => {
    const r = sim(dir, ['lvs', '-o', 'lv_name,lv_size,origin', 'vg0']);
    expect(r.stdout).toBe('  LV   LSize   Origin\n  vol1 100.00m       \n  vol3  12.00m       \n');
    const full = sim(dir, ['lvs', '--units', 'b', 'vg0']);
    expect(full.stdout.split('\n')[0]).toBe('  LV   VG   Attr       LSize      Pool Origin Data%  Meta%  Move Log Cpy%Sync Convert');
  });

  it('supports --separator and -o +field', () => {
    const r = sim(dir, ['lvs', '--noheadings', '--separator', ':', '--units', 'm', '-o', 'lv_name,lv_size', 'vg0/vol3']);
    expect(r.stdout).toBe('  vol3:12.00m\n');
    const plus = sim(dir, ['lvs', '--noheadings', '-o', '+lv_path', 'vg0/vol1']);
    expect(plus.stdout.trimEnd().endsWith('/dev/vg0/vol1')).toBe(true);
  });

  it('reports missing VGs and LVs with exit 5', () => {
    const vg = sim(dir, ['lvs', 'nosuch']);
    expect(vg.code).toBe(5);
    expect(vg.stderr).toBe('  Volume group "nosuch" not found\n  Cannot process volume group nosuch\n');
    const lv = sim(dir, ['lvs', '--noheadings', '-o', 'lv_name', 'vg0/nosuch', 'vg0/vol1']);
    expect(lv.code).toBe(5);
    expect(lv.stderr).toBe('  Failed to find logical volume "vg0/nosuch"\n');
    expect(lv.stdout).toBe('  vol1\n');
    const field = sim(dir, ['lvs', '-o', 'lv_frob', 'vg0']);
    expect(field.code).toBe(5);
    expect(field.stderr).toContain('Unrecognised field: lv_frob');
  });

  it('vgs shows size and free space', () => {
    const r = sim(dir, ['vgs', '--noheadings', '--units', 'b', '--nosuffix', '-o', 'vg_name,vg_size,vg_free', 'vg0']);
    expect(r).toEqual({ code: 0, stdout: `  vg0  205520896 88080384\n`, stderr: '' });
    const def = sim(dir, ['vgs', '--units', 'b']);
    expect(def.stdout).toBe('  VG   #PV #LV #SN Attr   VSize      VFree    \n  vg0    1   2   0 wz--n- 205520896B 88080384B\n');
    const missing = sim(dir, ['vgs', 'nosuch']);
    expect(missing.code).toBe(5);
    expect(missing.stderr).toBe('  Volume group "nosuch" not found\n  Cannot process volume group nosuch\n');
  });

  it('the lvm multi-call form runs the same tools', () => {
    expect(sim(dir, ['lvm', 'lvs', '--noheadings', '-o', 'lv_name', 'vg0']).stdout).toBe('  vol1\n  vol3\n');
  });
});

describe('lvm management verbs', () => {
  it('refuses bad vgcreate arguments and duplicate VGs', () => {
    expect(sim(dir, ['lvm', 'vgcreate', 'vg1']).code).toBe(2);
    expect(sim(dir, ['lvm', 'vgcreate', 'vg1', '12abc']).code).toBe(2);
    const dup = sim(dir, ['lvm', 'vgcreate', 'vg0', '1073741824']);
    expect(dup.code).toBe(5);
    expect(dup.stderr).toBe('  A volume group called vg0 already exists.\n');
  });

  it('path fails for an unknown LV', () => {
    const r = sim(dir, ['lvm', 'path', 'vg0/none']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no logical volume vg0/none');
  });

  it('vgremove refuses a VG with LVs', () => {
    expect(sim(dir, ['lvcreate', '-L', '4M', '-n', 'x', 'vg0']).code).toBe(0);
    expect(sim(dir, ['lvm', 'vgremove', 'vg0']).code).toBe(5);
    expect(sim(dir, ['lvremove', '-f', 'vg0']).code).toBe(0);
    expect(sim(dir, ['lvm', 'vgremove', 'vg0']).code).toBe(0);
    expect(sim(dir, ['vgs', 'vg0']).code).toBe(5);
  });
});
