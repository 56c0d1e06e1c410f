import { describe, expect, it } from 'vitest';
import { byPathDevice, iscsiLun } from '../../../src/delegates/vmm/iscsi-target.js';
import { volumeIdOf } from '../../../src/delegates/vmm/volume-of.js';

const IQN = 'iqn.2010-10.org.example:vol-0123456789abcdef0';

describe('iSCSI sources', () => {
  it('normalises the portal and names the by-path device udev makes', () => {
    const lun = iscsiLun({ portal: '10.0.0.5', iqn: IQN, lun: 1 });
    expect(lun).toEqual({ portal: '10.0.0.5:3260', iqn: IQN, lun: 1 });
    expect(byPathDevice(lun)).toBe(`/dev/disk/by-path/ip-10.0.0.5:3260-iscsi-${IQN}-lun-1`);
    expect(iscsiLun({ portal: '127.0.0.1:13260', iqn: IQN, lun: '0' }).lun).toBe(0);
  });

  it.each([
    [{ portal: '127.0.0.1;reboot', iqn: IQN, lun: 1 }, /source.portal/],
    [{ portal: '127.0.0.1:99999', iqn: IQN, lun: 1 }, /source.portal/],
    [{ portal: '300.0.0.1', iqn: IQN, lun: 1 }, /source.portal/],
    [{ portal: 'target.example.com', iqn: IQN, lun: 1 }, /source.portal/],
    [{ portal: '-p127.0.0.1', iqn: IQN, lun: 1 }, /source.portal/],
    [{ portal: '127.0.0.1', iqn: 'iqn.2010-10.org.example:../../etc', lun: 1 }, /source.iqn/],
    [{ portal: '127.0.0.1', iqn: 'iqn.2010-10.org.example:a b', lun: 1 }, /source.iqn/],
    [{ portal: '127.0.0.1', iqn: '--login', lun: 1 }, /source.iqn/],
    [{ portal: '127.0.0.1', iqn: `iqn.2010-10.org.example:${'a'.repeat(300)}`, lun: 1 }, /source.iqn/],
    [{ portal: '127.0.0.1', iqn: IQN, lun: -1 }, /source.lun/],
    [{ portal: '127.0.0.1', iqn: IQN, lun: 1.5 }, /source.lun/],
    [{ portal: '127.0.0.1', iqn: IQN, lun: '1; true' }, /source.lun/],
  ])('refuses %j as a client fault', (source, param) => {
    expect(() => iscsiLun(source)).toThrow(expect.objectContaining({ code: 'InvalidParameterValue', message: expect.stringMatching(param) }));
  });

  it("carries the export's CHAP account, both parts or neither; a fault names the field, never the secret", () => {
    const secret = 'S3cretS3cretS3cret_-xyz';
    expect(iscsiLun({ portal: '10.0.0.5', iqn: IQN, lun: 1, chapUser: 'vol-0123456789abcdef0.host1', chapSecret: secret }).chap).toEqual({ user: 'vol-0123456789abcdef0.host1', secret });
    expect(iscsiLun({ portal: '10.0.0.5', iqn: IQN, lun: 1 }).chap).toBeUndefined();
    expect(() => iscsiLun({ portal: '10.0.0.5', iqn: IQN, lun: 1, chapUser: 'u.h' })).toThrow(expect.objectContaining({ code: 'MissingParameter', message: expect.stringMatching(/source\.chapSecret/) }));
    expect(() => iscsiLun({ portal: '10.0.0.5', iqn: IQN, lun: 1, chapSecret: secret })).toThrow(expect.objectContaining({ code: 'MissingParameter', message: expect.stringMatching(/source\.chapUser/) }));
    const bad = 'short,with=separators';
    let message = '';
    try {
      iscsiLun({ portal: '10.0.0.5', iqn: IQN, lun: 1, chapUser: 'u.h', chapSecret: bad });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/source\.chapSecret is invalid/);
    expect(message).not.toContain('separators');
  });

  it('asks for a missing field', () => {
    expect(() => iscsiLun({ iqn: IQN, lun: 1 })).toThrow(expect.objectContaining({ code: 'MissingParameter' }));
  });
});

describe('volumeIdOf', () => {
  const roots = ['/srv/vbs', '/mnt/lustre/volumes/'];
  it('recognises volume files directly in a volume root', () => {
    expect(volumeIdOf('/srv/vbs/vol-0123456789abcdef0.img', roots)).toBe('vol-0123456789abcdef0');
    expect(volumeIdOf('/mnt/lustre/volumes/vol-00000000000000abc.img', roots)).toBe('vol-00000000000000abc');
  });

  it('ignores other files, snapshots and folders outside the roots', () => {
    expect(volumeIdOf('/srv/other/vol-0123456789abcdef0.img', roots)).toBeUndefined();
    expect(volumeIdOf('/srv/vbs/sub/vol-0123456789abcdef0.img', roots)).toBeUndefined();
    expect(volumeIdOf('/srv/vbs/snap-0123456789abcdef0.img', roots)).toBeUndefined();
    expect(volumeIdOf('/srv/vbs/vol-0123456789ABCDEF0.img', roots)).toBeUndefined();
    expect(volumeIdOf('local-lvm:vm-100-disk-0', roots)).toBeUndefined();
  });

  it('recognises the LUN devices of VBS targets', () => {
    expect(volumeIdOf(`/dev/disk/by-path/ip-10.0.0.5:3260-iscsi-${IQN}-lun-1`, [])).toBe('vol-0123456789abcdef0');
    expect(volumeIdOf(`iscsi://10.0.0.5:3260/${IQN}/1`, [])).toBe('vol-0123456789abcdef0');
    expect(volumeIdOf('/dev/disk/by-path/ip-10.0.0.5:3260-iscsi-iqn.2010-10.org.example:web-lun-1', [])).toBeUndefined();
  });
});
