import { describe, expect, it } from 'vitest';
import * as v from '../../src/core/validate.js';
import { attachConflict } from '../../src/core/states.js';
import { newId, SNAPSHOT_ID, VOLUME_ID } from '../../src/core/ids.js';

const code = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
};

describe('validation', () => {
  it('ids have the EBS shape', () => {
    expect(newId('vol')).toMatch(VOLUME_ID);
    expect(newId('snap')).toMatch(SNAPSHOT_ID);
    expect(code(() => v.volumeId('vol-123'))).toBe('InvalidParameterValue');
    expect(code(() => v.volumeId(undefined))).toBe('MissingParameter');
    expect(code(() => v.snapshotId('vol-0123456789abcdef0'))).toBe('InvalidParameterValue');
  });

  it.each([0, -1, 1.5, 16385, '12a', 'ten', Number.NaN])('refuses size %s', (s) => {
    expect(code(() => v.sizeGiB(s))).toBe('InvalidParameterValue');
  });

  it('accepts sizes 1..16384', () => {
    expect(v.sizeGiB(1)).toBe(1);
    expect(v.sizeGiB('16384')).toBe(16384);
  });

  it.each(['vm1; rm -rf /', '-rf', '../vm', 'a'.repeat(65), 'vm 1', ''])('refuses VM id %j', (id) => {
    expect(code(() => v.vmId(id))).toMatch(/InvalidParameterValue|MissingParameter/);
  });

  it.each(['xvdb', 'sdf', '/dev/vdc', 'scsi1', 'virtio12'])('accepts device %s', (d) => expect(v.device(d)).toBe(d));
  it.each(['/dev/../etc', 'xvdb;', 'sd', '/dev/sda1', 'nvme0n1'])('refuses device %s', (d) => {
    expect(code(() => v.device(d))).toBe('InvalidParameterValue');
  });

  it('host names are checked and case-folded', () => {
    expect(v.hostName('VMM-1.example.org')).toBe('vmm-1.example.org');
    expect(code(() => v.hostName('host;reboot'))).toBe('InvalidParameterValue');
    expect(code(() => v.hostName('-h'))).toBe('InvalidParameterValue');
  });

  it('comments: at most 255 printable characters', () => {
    expect(v.comment(undefined)).toBe('');
    expect(v.comment('data; $(x) `y` ../z')).toBe('data; $(x) `y` ../z');
    expect(code(() => v.comment('x'.repeat(256)))).toBe('InvalidParameterValue');
    expect(code(() => v.comment('a\nb'))).toBe('InvalidParameterValue');
    // Bidirectional overrides and isolates (issue 17 item 6): "backup \u202Egpj.exe" shows as "backup exe.jpg".
    for (const c of ['\u202e', '\u202a', '\u202d', '\u2066', '\u2069', '\u200f', '\u061c']) expect(code(() => v.comment(`backup ${c}gpj.exe`))).toBe('InvalidParameterValue');
    expect(v.comment('café — ünïcödé ✓')).toBe('café — ünïcödé ✓');
  });

  it('paths may not leave their root', () => {
    expect(v.pathUnder('/srv/vols', '/srv/vols/vol-1.img')).toBe('/srv/vols/vol-1.img');
    expect(code(() => v.pathUnder('/srv/vols', '/srv/vols/../etc/passwd'))).toBe('InvalidParameterValue');
    expect(code(() => v.pathUnder('/srv/vols', '/srv/volsx/a'))).toBe('InvalidParameterValue');
  });

  it('mode defaults to w and accepts only r or w', () => {
    expect(v.attachMode(undefined)).toBe('w');
    expect(v.attachMode('r')).toBe('r');
    expect(code(() => v.attachMode('rw'))).toBe('InvalidParameterValue');
  });
});

describe('read-only sharing rule', () => {
  it('many read-only attachments, or exactly one read-write', () => {
    expect(attachConflict([], 'w')).toBeNull();
    expect(attachConflict([], 'r')).toBeNull();
    expect(attachConflict(['r', 'r'], 'r')).toBeNull();
    expect(attachConflict(['r'], 'w')).toMatch(/read-only/);
    expect(attachConflict(['w'], 'r')).toMatch(/read-write/);
    expect(attachConflict(['w'], 'w')).toMatch(/read-write/);
  });
});

describe('characters XML 1.0 cannot carry', () => {
  // U+FFFE, U+FFFF, a lone surrogate, NUL, ESC, and a surrogate pair cut in half.
  const unwritable = ['\ufffe', '\uffff', '\ud800', '\u0000', '\u001b', '\udc00x'];

  it.each(unwritable.map((c) => [escape(c), c]))('are refused in every string validator (%s)', (_name, c) => {
    expect(code(() => v.comment(`before ${c} after`))).toBe('InvalidParameterValue');
    expect(code(() => v.clientToken(`tok${c}`))).toBe('InvalidParameterValue');
    expect(code(() => v.volumeId(`vol-0123456789abcdef${c}`))).toBe('InvalidParameterValue');
    expect(code(() => v.snapshotId(`snap-0123456789abcdef${c}`))).toBe('InvalidParameterValue');
    expect(code(() => v.hostName(`host${c}`))).toBe('InvalidParameterValue');
    expect(code(() => v.vmId(`vm${c}`))).toBe('InvalidParameterValue');
    expect(code(() => v.device(`xvd${c}`))).toBe('InvalidParameterValue');
    expect(code(() => v.requireString('any', `x${c}`))).toBe('InvalidParameterValue');
  });

  it('lets every character XML can carry through a comment', () => {
    const fine = 'café ✓ \ud83d\ude00 \ue000 \ufffd';
    expect(v.comment(fine)).toBe(fine);
  });
});
