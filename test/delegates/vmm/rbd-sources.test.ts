import { describe, expect, it } from 'vitest';
import { CommandCatalog } from '../../../src/commands/catalog.js';
import { CommandRunner } from '../../../src/commands/runner.js';
import { DEFAULT_COMMANDS_FILE } from '../../../src/core/paths.js';
import { CEPH_KEY, OSD_CAPS, cephUserOf, monitorsOf, osdCapsFor, rbdSource, secretUuidOf } from '../../../src/core/rbd-export.js';
import type { DelegateClient, Delegates } from '../../../src/core/delegates.js';
import { VbsError } from '../../../src/core/errors.js';
import { FIXED_PARAMS, VmmAdapter } from '../../../src/delegates/vmm/adapter.js';
import { IscsiInitiator } from '../../../src/delegates/vmm/initiator.js';
import { rbdDiskXml, rbdSecretXml } from '../../../src/delegates/vmm/libvirt-disk.js';
import { parseVirshDomXml } from '../../../src/delegates/vmm/listing/libvirt.js';
import { parseQueryBlock } from '../../../src/delegates/vmm/listing/qmp.js';
import { vmmDelegateHandlers } from '../../../src/delegates/vmm/main.js';
import { volumeIdOf } from '../../../src/delegates/vmm/volume-of.js';
import { Attachability } from '../../../src/front/attachable.js';

/**
 * rbd disk sources (issue 19) without a cluster: what an export may name,
 * how the monitors are read from a ceph.conf, the caps of an export's
 * client, the libvirt XML, the listings, and the refusals that come before
 * any command runs (a host that cannot attach rbd, a hostile value).
 */
const VOL = 'vol-0123456789abcdef0';
const KEY = 'AQB2NhdrTcbJEhAAA3vV/TdHTvf5qda+rDfVTA==';
const SOURCE = { kind: 'rbd', pool: 'vbs', image: VOL, monitors: '127.0.0.1:6789', cephUser: cephUserOf(VOL, 'host1'), cephKey: KEY };

describe('rbd sources', () => {
  it('take the pool, image, monitors, client and key, each checked', () => {
    expect(rbdSource(SOURCE)).toEqual({ pool: 'vbs', image: VOL, monitors: '127.0.0.1:6789', cephUser: `vbs.${VOL}.host1`, cephKey: KEY });
  });

  it.each([
    [{ ...SOURCE, pool: 'vbs/other' }, 'InvalidParameterValue', /source\.pool/],
    [{ ...SOURCE, image: 'vol-1@snap' }, 'InvalidParameterValue', /source\.image/],
    [{ ...SOURCE, monitors: '127.0.0.1' }, 'InvalidParameterValue', /source\.monitors/],
    [{ ...SOURCE, monitors: '127.0.0.1:6789;reboot' }, 'InvalidParameterValue', /source\.monitors/],
    [{ ...SOURCE, cephUser: 'admin key=x' }, 'InvalidParameterValue', /source\.cephUser/],
    [{ ...SOURCE, cephKey: `${KEY}\n[client.admin]` }, 'InvalidParameterValue', /source\.cephKey/],
    [{ ...SOURCE, cephKey: undefined }, 'MissingParameter', /source\.cephKey/],
  ])('refuses %j as a client fault that never repeats the key', (source, code, param) => {
    let err: unknown;
    try {
      rbdSource(source);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code, message: expect.stringMatching(param) });
    expect((err as Error).message).not.toContain(KEY);
  });

  it("read the monitors from the cluster's ceph.conf: msgr1 addresses, never a made-up port", () => {
    expect(monitorsOf('[global]\nmon host = [v2:127.0.0.1:3500,v1:127.0.0.1:3501]\n')).toBe('127.0.0.1:3501');
    expect(monitorsOf('mon_host = [v2:10.0.0.1:3300,v1:10.0.0.1:6789] [v2:10.0.0.2:3300,v1:10.0.0.2:6789]')).toBe('10.0.0.1:6789,10.0.0.2:6789');
    expect(monitorsOf('mon host = 10.0.0.1, 10.0.0.2:6790 ; a comment')).toBe('10.0.0.1:6789,10.0.0.2:6790');
    expect(() => monitorsOf('[global]\nfsid = x\n')).toThrow(/names no monitors/);
    expect(() => monitorsOf('mon host = $(reboot)')).toThrow(/not a list/);
  });

  it("give an export's client read-write on its image's objects, read on its parents', and nothing else", () => {
    const caps = osdCapsFor('vbs', { name: VOL, id: '102824b6b8d' }, [{ name: 'vol-1', id: '1022fac7b861' }]);
    expect(OSD_CAPS.test(caps)).toBe(true);
    expect(caps.split(', ')).toEqual([
      'allow rx pool=vbs object_prefix rbd_info',
      'allow rx pool=vbs object_prefix rbd_directory',
      `allow rx pool=vbs object_prefix rbd_id.${VOL}`,
      'allow rwx pool=vbs object_prefix rbd_header.102824b6b8d',
      'allow rwx pool=vbs object_prefix rbd_data.102824b6b8d.',
      'allow rwx pool=vbs object_prefix rbd_object_map.102824b6b8d',
      'allow rx pool=vbs object_prefix rbd_header.1022fac7b861',
      'allow rx pool=vbs object_prefix rbd_data.1022fac7b861.',
      'allow rx pool=vbs object_prefix rbd_object_map.1022fac7b861',
    ]);
    expect(() => osdCapsFor('vbs', { name: VOL, id: 'x, allow *' }, [])).toThrow();
    expect(OSD_CAPS.test('allow *')).toBe(false);
    expect(CEPH_KEY.test(KEY)).toBe(true);
  });

  it('name a libvirt secret by the client alone, the same every time', () => {
    const u = secretUuidOf(SOURCE.cephUser);
    expect(u).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(secretUuidOf(SOURCE.cephUser)).toBe(u);
    expect(secretUuidOf(cephUserOf(VOL, 'host2'))).not.toBe(u);
    const xml = rbdSecretXml(SOURCE.cephUser, u);
    expect(xml).toContain("<secret ephemeral='yes' private='yes'>");
    expect(xml).toContain(`<usage type='ceph'><name>vbs client.${SOURCE.cephUser}</name></usage>`);
  });

  it('become a libvirt network disk that names the secret, never the key', () => {
    const rbd = rbdSource({ ...SOURCE, monitors: '10.0.0.1:6789,10.0.0.2:6789' });
    const xml = rbdDiskXml(rbd, 'sdb', 'r', secretUuidOf(rbd.cephUser), '/etc/vbs/qemu-ceph.conf');
    expect(xml).toContain(`<source protocol='rbd' name='vbs/${VOL}'>`);
    expect(xml).toContain("<host name='10.0.0.1' port='6789'/>");
    expect(xml).toContain("<host name='10.0.0.2' port='6789'/>");
    expect(xml).toContain("<config file='/etc/vbs/qemu-ceph.conf'/>");
    expect(xml).toContain(`<auth username='${rbd.cephUser}'>`);
    expect(xml).toContain("<target dev='sdb' bus='scsi'/>");
    expect(xml).toContain('<readonly/>');
    expect(xml).not.toContain(KEY);
    expect(rbdDiskXml(rbd, 'sdb', 'w', secretUuidOf(rbd.cephUser))).not.toContain('readonly');
    expect(() => rbdDiskXml(rbd, 'sdb\'/>', 'w', 'u')).toThrow(/device/);
  });

  it('are listed by pool and image, by libvirt and by QMP alike, and recognised as the volume', () => {
    const dom = `<domain><devices><disk type='network' device='disk'><source protocol='rbd' name='vbs/${VOL}'><host name='127.0.0.1' port='6789'/></source><target dev='sdb' bus='scsi'/><readonly/></disk></devices></domain>`;
    expect(parseVirshDomXml('vm1', dom)).toEqual([{ device: 'sdb', target: `rbd:vbs/${VOL}`, mode: 'r' }]);
    const qb = JSON.stringify([{ qdev: 'sdc', inserted: { ro: false, file: `json:{"driver": "rbd", "pool": "vbs", "image": "${VOL}", "server.0.host": "127.0.0.1", "server.0.port": "6789", "user": "x"}` } }]);
    expect(parseQueryBlock('vm1', qb)).toEqual([{ device: 'sdc', target: `rbd:vbs/${VOL}`, mode: 'w' }]);
    expect(volumeIdOf(`rbd:vbs/${VOL}`, [])).toBe(VOL);
    expect(volumeIdOf(`rbd:vbs/gone.${VOL}`, [])).toBeUndefined();
  });
});

describe('a host that cannot attach rbd volumes', () => {
  function host(adapter: string) {
    const catalog = CommandCatalog.fromFile(DEFAULT_COMMANDS_FILE);
    const ran: string[] = [];
    const runner = new CommandRunner(catalog, { fixed: { ...FIXED_PARAMS, stateDir: '/nonexistent' }, onRun: (key) => void ran.push(key) });
    const a = new VmmAdapter(adapter, runner, []);
    return { adapter: a, ran, handlers: vmmDelegateHandlers('host1', a, new IscsiInitiator(adapter, runner)) };
  }

  it('says what it attaches: Xen has no rbd; libvirt and qemu do', () => {
    expect(host('xen').adapter.sourceKinds()).toEqual(['file', 'iscsi']);
    expect(host('libvirt').adapter.sourceKinds()).toEqual(['file', 'iscsi', 'rbd']);
    expect(host('qemu').adapter.sourceKinds()).toEqual(['file', 'iscsi', 'rbd']);
    expect(host('xen').handlers.DescribeHost!({}, {} as never)).toMatchObject({ sourceKinds: ['file', 'iscsi'] });
  });

  it('refuses every step with a clear fault, before any command runs', async () => {
    const { handlers, ran } = host('xen');
    for (const op of ['DiscoverTarget', 'LoginTarget', 'LogoutTarget'] as const) {
      await expect(Promise.resolve().then(() => handlers[op]!({ volumeId: VOL, source: SOURCE }, {} as never))).rejects.toMatchObject({
        code: 'InvalidParameterCombination',
        message: expect.stringContaining('cannot attach Ceph RBD volumes'),
      });
    }
    await expect(Promise.resolve().then(() => handlers.AttachDisk!({ volumeId: VOL, vmId: 'vm1', device: 'xvdb', mode: 'w', source: SOURCE }, {} as never))).rejects.toMatchObject({
      code: 'InvalidParameterCombination',
    });
    expect(ran).toEqual([]);
  });

  it('refuses a source for another volume than the one named', async () => {
    const { handlers, ran } = host('libvirt');
    await expect(Promise.resolve().then(() => handlers.LoginTarget!({ volumeId: 'vol-0000000000000000f', source: SOURCE }, {} as never))).rejects.toMatchObject({
      code: 'InvalidParameterValue',
      message: expect.stringContaining('source.image'),
    });
    expect(ran).toEqual([]);
  });
});

describe('the front, before an attach runs anything', () => {
  const client = (answer: () => Record<string, unknown>): DelegateClient => ({ call: async () => answer() as never });
  const delegates = (backend: string, kinds: (() => string[]) | undefined): Delegates => ({
    volumeDelegateNames: () => ['d1'],
    volumeDelegate: () => client(() => ({ backend })),
    vmmHostNames: () => ['h1'],
    hasVmmHost: () => true,
    vmmDelegate: () =>
      client(() => {
        if (!kinds) throw new VbsError('ServiceUnavailable', 'down');
        return { hostName: 'h1', adapter: 'x', sourceKinds: kinds() };
      }),
  });

  it('refuses an rbd volume on a host without rbd, naming both', async () => {
    await expect(new Attachability(delegates('rbd', () => ['file', 'iscsi'])).refuseUnattachable(VOL, 'd1', 'h1')).rejects.toMatchObject({
      code: 'InvalidParameterCombination',
      message: `The volume '${VOL}' is on Ceph RBD, which the VMM host 'h1' cannot attach (it attaches file, iscsi volumes).`,
    });
  });

  it('lets through what the host attaches, and what it cannot ask about (the steps refuse then)', async () => {
    await new Attachability(delegates('rbd', () => ['file', 'iscsi', 'rbd'])).refuseUnattachable(VOL, 'd1', 'h1');
    await new Attachability(delegates('lvm-iscsi', () => ['file', 'iscsi'])).refuseUnattachable(VOL, 'd1', 'h1');
    await new Attachability(delegates('rbd', undefined)).refuseUnattachable(VOL, 'd1', 'h1');
  });

  it("remembers a host's answer for a while", async () => {
    let asked = 0;
    let now = 0;
    const a = new Attachability(delegates('rbd', () => (asked++, ['file'])), () => now);
    for (let i = 0; i < 3; i++) await a.refuseUnattachable(VOL, 'd1', 'h1').catch(() => undefined);
    expect(asked).toBe(1);
    now += 61_000;
    await a.refuseUnattachable(VOL, 'd1', 'h1').catch(() => undefined);
    expect(asked).toBe(2);
  });
});
