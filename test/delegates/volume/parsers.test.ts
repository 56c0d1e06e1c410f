import { describe, expect, it } from 'vitest';
import { lowestFreeTid } from '../../../src/delegates/volume/iscsi-exports.js';
import { parseIetVolume, parseTgtAccounts, parseTgtShow } from '../../../src/delegates/volume/iscsi-targets.js';
import { parseLvs, parseVgs } from '../../../src/delegates/volume/lvm-tools.js';

describe('lvs and vgs reports', () => {
  it('reads names, byte sizes, origins and attributes', () => {
    const out = '  cow.snap-0123456789abcdef0,1073741824,vol-0123456789abcdef0,swi-a-s---\n  vol-0123456789abcdef0,1073741824,,owi-a-s---\n';
    expect(parseLvs(out)).toEqual([
      { name: 'cow.snap-0123456789abcdef0', sizeBytes: 1073741824, origin: 'vol-0123456789abcdef0', attr: 'swi-a-s---' },
      { name: 'vol-0123456789abcdef0', sizeBytes: 1073741824, attr: 'owi-a-s---' },
    ]);
    expect(parseLvs('')).toEqual([]);
  });

  it('refuses what it does not understand instead of guessing', () => {
    expect(() => parseLvs('  vol-0123456789abcdef0,1.00g,,-wi-a-----\n')).toThrow(/not a number/);
    expect(() => parseLvs('  LV VG Attr LSize\n')).toThrow(/unexpected line/);
    expect(parseVgs('  8589934592,4294967296\n')).toEqual({ sizeBytes: 8589934592, freeBytes: 4294967296 });
    expect(() => parseVgs('  8589934592,4294967296\n  1,1\n')).toThrow();
    expect(() => parseVgs('  8.00g,4.00g\n')).toThrow();
  });
});

describe('/proc/net/iet/volume', () => {
  it('reads targets and their LUNs', () => {
    const text = 'tid:2 name:iqn.2026-11.org.vbs:vol-0123456789abcdef0\n\tlun:1 state:0 iotype:fileio iomode:wt blocks:2097152 blocksize:512 path:/dev/vbs/vol-0123456789abcdef0\ntid:1 name:iqn.2001-04.com.example:other\n';
    expect(parseIetVolume(text)).toEqual([
      { tid: 2, iqn: 'iqn.2026-11.org.vbs:vol-0123456789abcdef0', luns: [{ lun: 1, path: '/dev/vbs/vol-0123456789abcdef0' }], acl: ['ALL'], sessions: [], accounts: [] },
      { tid: 1, iqn: 'iqn.2001-04.com.example:other', luns: [], acl: ['ALL'], sessions: [], accounts: [] },
    ]);
    expect(() => parseIetVolume('\tlun:1 path:/x\n')).toThrow();
  });
});

describe('tgtadm --op show --mode target', () => {
  // Captured from tgtd 1.0.85 (Debian 12) on this machine.
  const show = `Target 1: iqn.2026-11.org.vbs:vol-1123456789abcdef0
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
    LUN information:
        LUN: 0
            Type: controller
            SCSI ID: IET     00010000
            SCSI SN: beaf10
            Size: 0 MB, Block size: 1
            Online: Yes
            Removable media: No
            Prevent removal: No
            Readonly: No
            SWP: No
            Thin-provisioning: No
            Backing store type: null
            Backing store path: None
            Backing store flags: 
    Account information:
    ACL information:
Target 3: iqn.2026-11.org.vbs:vol-0123456789abcdef0
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
        I_T nexus: 1
            Initiator: iqn.2010-10.org.example:vm1 alias: none
            Connection: 0
                IP Address: 127.0.0.1
    LUN information:
        LUN: 0
            Type: controller
            Backing store path: None
        LUN: 1
            Type: disk
            SCSI ID: IET     00030001
            Size: 67 MB, Block size: 512
            Backing store type: rdwr
            Backing store path: /tmp/tgtt/a.img
            Backing store flags: 
    Account information:
        vol-0123456789abcdef0.host1
        someone (outgoing)
    ACL information:
        ALL
`;
  it('reads targets, data LUNs, open sessions and who is let in', () => {
    expect(parseTgtShow(show)).toEqual([
      { tid: 1, iqn: 'iqn.2026-11.org.vbs:vol-1123456789abcdef0', luns: [], acl: [], sessions: [], accounts: [] },
      { tid: 3, iqn: 'iqn.2026-11.org.vbs:vol-0123456789abcdef0', luns: [{ lun: 1, path: '/tmp/tgtt/a.img', sizeMB: 67 }], acl: ['ALL'], sessions: [{ sid: 1, initiator: 'iqn.2010-10.org.example:vm1', cids: [0] }], accounts: ['vol-0123456789abcdef0.host1'] },
    ]);
    expect(parseTgtAccounts('Account list:\n    vol-0123456789abcdef0.host1\n    other\n')).toEqual(['vol-0123456789abcdef0.host1', 'other']);
    expect(parseTgtAccounts('Account list:\n')).toEqual([]);
    expect(parseTgtShow('')).toEqual([]);
    expect(() => parseTgtShow('    LUN information:\n')).toThrow();
  });
});

describe('target ids', () => {
  it('takes the lowest id not in use, never 0', () => {
    const t = (tid: number) => ({ tid, iqn: `iqn.2026-11.org.vbs:t${tid}`, luns: [], acl: [], sessions: [], accounts: [] });
    expect(lowestFreeTid([])).toBe(1);
    expect(lowestFreeTid([t(1), t(2), t(4)])).toBe(3);
    expect(lowestFreeTid([t(2)])).toBe(1);
  });
});
