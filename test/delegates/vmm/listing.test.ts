import { describe, expect, it } from 'vitest';
import { parseVirshDomXml, parseVirshNames } from '../../../src/delegates/vmm/listing/libvirt.js';
import { parseQmConfig, parseQmList } from '../../../src/delegates/vmm/listing/proxmox.js';
import { parseSxp } from '../../../src/delegates/vmm/listing/sxp.js';
import { parseXenListTable, parseXlLong, parseXmLong } from '../../../src/delegates/vmm/listing/xen.js';

// Output of the host simulator (src/sim/xen.ts), whose formats follow xm's main.py and xend.
const XM_LIST = `Name                                      ID   Mem VCPUs      State   Time(s)
Domain-0                                   0  1024     2     r-----    120.3
vm1                                        1   512     1     -b----      1.2
100                                        2   512     1     -b----      1.2
`;

const XM_LONG_SIM = `(domain
    (domid 1)
    (name vm1)
    (memory 512)
    (maxmem 512)
    (vcpus 1)
    (state -b----)
    (device
        (vbd
            (backend 0)
            (dev xvdb:disk)
            (uname file:/srv/vbs/vol-0123456789abcdef0.img)
            (mode r)
        )
    )
)
`;

// xend's SXP of a running domain as `xm list --long` prints it (Xen 3.x/4.0):
// the image, vif and several block back ends, a CD-ROM and a forced-write disk.
const XM_LONG_XEND = `(domain
    (domid 7)
    (on_crash restart)
    (uuid 5d9e0c0e-4b2d-3a3f-8c4e-0e1f2a3b4c5d)
    (bootloader_args )
    (vcpus 1)
    (name web-01)
    (on_poweroff destroy)
    (on_reboot restart)
    (cpus (()))
    (bootloader /usr/bin/pygrub)
    (maxmem 512)
    (memory 512)
    (image (linux (kernel ) (args 'root=/dev/xvda1 ro')))
    (status 2)
    (state -b----)
    (device
        (vif
            (bridge xenbr0)
            (mac 00:16:3e:47:5d:a2)
            (script /etc/xen/scripts/vif-bridge)
            (uuid 1e1f0d0c-0000-0000-0000-000000000001)
            (backend 0)
        )
    )
    (device
        (vbd
            (uuid 7a0a4a2c-0000-0000-0000-000000000002)
            (bootable 1)
            (driver paravirtualised)
            (dev xvda:disk)
            (uname phy:vg0/web-01-root)
            (mode w)
            (backend 0)
        )
    )
    (device
        (tap
            (uuid 7a0a4a2c-0000-0000-0000-000000000003)
            (bootable 0)
            (dev xvdb:disk)
            (uname tap:aio:/srv/vbs/vol-00000000000000abc.img)
            (mode w!)
            (backend 0)
        )
    )
    (device
        (vbd
            (uuid 7a0a4a2c-0000-0000-0000-000000000004)
            (dev /dev/xvdc:disk)
            (uname phy:/dev/disk/by-path/ip-10.0.0.5:3260-iscsi-iqn.2010-10.org.example:vol-0123456789abcdef0-lun-1)
            (mode r)
            (backend 0)
        )
    )
    (device (vbd (dev hdc:cdrom) (uname file:/isos/boot.iso) (mode r) (backend 0)))
)
`;

// libxl's JSON (`xl list -l <vm>`, Xen 4.x): fields at their default are left out.
const XL_LONG = JSON.stringify(
  [
    {
      domid: 3,
      config: {
        c_info: { type: 'pvh', name: 'vm1', uuid: '2f7a3c6e-1111-2222-3333-444455556666' },
        b_info: { max_memkb: 524288, target_memkb: 524288 },
        disks: [
          { pdev_path: '/dev/vg0/vm1-root', vdev: 'xvda', backend: 'phy', format: 'raw', removable: 1, readwrite: 1 },
          { pdev_path: '/srv/vbs/vol-0123456789abcdef0.img', vdev: 'xvdb', backend: 'qdisk', format: 'raw', removable: 1 },
          { vdev: 'hdc', backend: 'qdisk', format: 'empty', removable: 1, is_cdrom: 1 },
        ],
        nics: [{ devid: 0, mac: '00:16:3e:00:00:01', bridge: 'xenbr0' }],
      },
    },
  ],
  null,
  4,
);

// `virsh dumpxml` of a running KVM domain (libvirt's formatdomain schema).
const VIRSH_XML = `<domain type='kvm' id='4'>
  <name>vm1</name>
  <uuid>8a4b6c1e-9d7f-4e2a-b3c5-1f0e2d3c4b5a</uuid>
  <memory unit='KiB'>131072</memory>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/vm1.qcow2' index='3'/>
      <backingStore/>
      <target dev='vda' bus='virtio'/>
      <alias name='virtio-disk0'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/srv/vbs/vol-0123456789abcdef0.img' index='2'/>
      <target dev='sdb' bus='scsi'/>
      <readonly/>
      <alias name='scsi0-0-0-1'/>
    </disk>
    <disk type='block' device='disk'>
      <driver name='qemu' type='raw'/>
      <source dev='/dev/disk/by-path/ip-10.0.0.5:3260-iscsi-iqn.2010-10.org.example:vol-00000000000000abc-lun-1' index='1'/>
      <target dev='sdc' bus='scsi'/>
    </disk>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw'/>
      <source protocol='iscsi' name='iqn.2010-10.org.example:vol-0000000000000def0/1'>
        <host name='10.0.0.5' port='3260'/>
      </source>
      <target dev='sdd' bus='scsi'/>
    </disk>
    <disk type='file' device='cdrom'>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>
    <controller type='scsi' index='0' model='virtio-scsi'/>
  </devices>
</domain>
`;

// `qm list` on a Proxmox VE node.
const QM_LIST = `      VMID NAME                 STATUS     MEM(MB)    BOOTDISK(GB) PID
       100 web                  running    2048              32.00 1843
       101 db                   stopped    4096               0.00 0
`;

// `qm config 100`: a storage volume, a VBS volume by path (read-only), a CD-ROM and an empty drive.
const QM_CONFIG = `boot: order=scsi0;ide2
cores: 2
ide2: local:iso/debian-12.iso,media=cdrom,size=628M
memory: 2048
name: web
sata1: none,media=cdrom
scsi0: local-lvm:vm-100-disk-0,iothread=1,size=32G
scsi1: /srv/vbs/vol-0123456789abcdef0.img,ro=1,size=1G
virtio2: file=/dev/disk/by-path/ip-10.0.0.5:3260-iscsi-iqn.2010-10.org.example:vol-00000000000000abc-lun-1,cache=none
scsihw: virtio-scsi-single
unused0: local-lvm:vm-100-disk-1
`;

describe('xm / xl listings', () => {
  it('reads the domain names of xm list and xl list, leaving out Domain-0', () => {
    expect(parseXenListTable(XM_LIST)).toEqual(['vm1', '100']);
    expect(parseXenListTable('Name                                        ID   Mem VCPUs\tState\tTime(s)\n')).toEqual([]);
  });

  it('reads the disks from the SXP of xm list --long (the simulator)', () => {
    expect(parseXmLong('vm1', XM_LONG_SIM)).toEqual([{ device: 'xvdb', target: '/srv/vbs/vol-0123456789abcdef0.img', mode: 'r' }]);
  });

  it('reads vbd and tap devices of xend SXP, unwrapping file:, phy: and tap:aio:, skipping CD-ROMs', () => {
    expect(parseXmLong('web-01', XM_LONG_XEND)).toEqual([
      { device: 'xvda', target: '/dev/vg0/web-01-root', mode: 'w' },
      { device: 'xvdb', target: '/srv/vbs/vol-00000000000000abc.img', mode: 'w' },
      { device: 'xvdc', target: '/dev/disk/by-path/ip-10.0.0.5:3260-iscsi-iqn.2010-10.org.example:vol-0123456789abcdef0-lun-1', mode: 'r' },
    ]);
    expect(parseXmLong('7', XM_LONG_XEND)).toHaveLength(3);
    expect(parseXmLong('other', `${XM_LONG_SIM}${XM_LONG_XEND}`)).toEqual([]);
  });

  it('parses nested S-expressions', () => {
    expect(parseSxp('(a (b 1) (c (d 2)))')).toEqual([['a', ['b', '1'], ['c', ['d', '2']]]]);
  });

  it('reads libxl JSON of xl list -l: a disk without readwrite is read-only', () => {
    expect(parseXlLong('vm1', XL_LONG)).toEqual([
      { device: 'xvda', target: '/dev/vg0/vm1-root', mode: 'w' },
      { device: 'xvdb', target: '/srv/vbs/vol-0123456789abcdef0.img', mode: 'r' },
    ]);
    expect(() => parseXlLong('vm1', 'libxl: error: ...')).toThrow(/JSON/);
  });
});

describe('libvirt listings', () => {
  it('reads virsh list --all --name', () => {
    expect(parseVirshNames('vm1\nvm-2\n\n')).toEqual(['vm1', 'vm-2']);
  });

  it('reads file, block and network disks of virsh dumpxml, with <readonly/>', () => {
    expect(parseVirshDomXml('vm1', VIRSH_XML)).toEqual([
      { device: 'vda', target: '/var/lib/libvirt/images/vm1.qcow2', mode: 'w' },
      { device: 'sdb', target: '/srv/vbs/vol-0123456789abcdef0.img', mode: 'r' },
      { device: 'sdc', target: '/dev/disk/by-path/ip-10.0.0.5:3260-iscsi-iqn.2010-10.org.example:vol-00000000000000abc-lun-1', mode: 'w' },
      { device: 'sdd', target: 'iscsi://10.0.0.5:3260/iqn.2010-10.org.example:vol-0000000000000def0/1', mode: 'w' },
    ]);
  });
});

describe('Proxmox listings', () => {
  it('reads the VMIDs of qm list', () => {
    expect(parseQmList(QM_LIST)).toEqual(['100', '101']);
  });

  it('reads the drives of qm config: paths, storage volume ids, ro=1; skips CD-ROMs, empty and unused drives', () => {
    expect(parseQmConfig('100', QM_CONFIG)).toEqual([
      { device: 'scsi0', target: 'local-lvm:vm-100-disk-0', mode: 'w' },
      { device: 'scsi1', target: '/srv/vbs/vol-0123456789abcdef0.img', mode: 'r' },
      { device: 'virtio2', target: '/dev/disk/by-path/ip-10.0.0.5:3260-iscsi-iqn.2010-10.org.example:vol-00000000000000abc-lun-1', mode: 'w' },
    ]);
  });

  it('reads the simulator\'s qm config', () => {
    const sim = 'cores: 1\nmemory: 512\nscsi1: /srv/vbs/vol-0123456789abcdef0.img,ro=1,size=1M\nscsihw: virtio-scsi-pci\n';
    expect(parseQmConfig('100', sim)).toEqual([{ device: 'scsi1', target: '/srv/vbs/vol-0123456789abcdef0.img', mode: 'r' }]);
  });
});
