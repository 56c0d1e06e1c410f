import { describe, expect, it } from 'vitest';
import type { AttachmentRow, SnapshotRow, VolumeRow } from '../../src/db/metadata.js';
import { judge, storedImages, unsweptOf, type Observation, type SimVm, type VolumeDelegateView } from '../../src/soak/invariants.js';
import { Prng } from '../../src/soak/prng.js';
import { parseSoakOptions, UsageError } from '../../src/soak/options.js';
import { SOAK_FRONT_SETTINGS } from '../../src/soak/front-settings.js';
import { QUIET_TIMEOUT_MS } from '../../src/soak/settle.js';

/**
 * The soak's invariant checker on made-up observations: a consistent
 * deployment passes, and each known kind of damage is named.
 */
const GiB = 1024 ** 3;
const VOL_A = 'vol-0000000000000000a';
const VOL_B = 'vol-0000000000000000b';
const SNAP_A = 'snap-0000000000000000a';
const ROOT = '/srv/vbs/volumes';
const fileDelegate: VolumeDelegateView = { name: 'local', root: ROOT };
const lvmDelegate: VolumeDelegateView = { name: 'local', lvm: { simState: '/sim', vg: 'vbs', target: 'iet', iqnPrefix: 'iqn.2026-11.org.vbs' } };

function volume(id: string, status: VolumeRow['status']): VolumeRow {
  return { volume_id: id, owner: 'admin', size_gib: 1, comment: '', snapshot_id: null, status, status_message: null, delegate: 'local', create_time: '', create_attempts: 1, page_seq: 1 };
}

function snapshot(id: string, of: string, status: SnapshotRow['status']): SnapshotRow {
  return { snapshot_id: id, owner: 'admin', volume_id: of, size_gib: 1, comment: '', status, status_message: null, progress: 100, delegate: 'local', create_time: '', create_attempts: 1, page_seq: 1 };
}

function attachment(id: string, vm: string, device: string, mode: 'r' | 'w' = 'w'): AttachmentRow {
  return { volume_id: id, vmm_host: 'localhost', vm_id: vm, device, mode, status: 'attached', attach_time: '', source: null };
}

function observation(o: {
  volumes?: VolumeRow[];
  snapshots?: SnapshotRow[];
  attachments?: AttachmentRow[];
  objects?: string[];
  vms?: SimVm[];
  delegate?: VolumeDelegateView;
  targets?: string[];
  sessions?: string[];
}): Observation {
  const delegate = o.delegate ?? fileDelegate;
  // The host sees a volume's file exactly when the delegate holds it.
  const files = new Set((o.objects ?? []).map((id) => `${ROOT}/${id}.img`));
  return {
    view: { dir: '/srv/vbs', database: '/srv/vbs/vbs.db', volumeDelegates: [delegate], vmmHosts: [{ name: 'localhost', simState: '/sim' }] },
    metadata: { volumes: o.volumes ?? [], snapshots: o.snapshots ?? [], attachments: o.attachments ?? [], runningWorkflows: [], leftovers: [] },
    objects: (o.objects ?? []).map((id) => ({ delegate, id, bytes: GiB, partial: false })),
    targets: new Map([['local', o.targets ?? []]]),
    hosts: [{ host: { name: 'localhost', simState: '/sim' }, vms: o.vms ?? [], sessions: o.sessions ?? [], existingFiles: files }],
  };
}

const disk = (id: string, dev: string, mode = 'w') => ({ dev, target: `${ROOT}/${id}.img`, mode, kind: 'file' });

describe('the invariant checker', () => {
  it('finds nothing wrong in a consistent deployment', () => {
    const obs = observation({
      volumes: [volume(VOL_A, 'in-use'), volume(VOL_B, 'available')],
      snapshots: [snapshot(SNAP_A, VOL_A, 'completed')],
      attachments: [attachment(VOL_A, 'vm1', 'xvdb')],
      objects: [VOL_A, VOL_B, SNAP_A],
      vms: [{ name: 'vm1', disks: [disk(VOL_A, 'xvdb')] }, { name: 'vm2', disks: [] }],
    });
    expect(judge(obs)).toEqual([]);
  });

  it('reports a disk on a VM with no attachment behind it', () => {
    const obs = observation({
      volumes: [volume(VOL_A, 'available')],
      objects: [VOL_A],
      vms: [{ name: 'vm3', disks: [disk(VOL_A, 'xvdd')] }],
    });
    expect(judge(obs)).toEqual([`vm3/xvdd at localhost holds ${VOL_A} with no attachment record`]);
  });

  it('reports a deleted volume that is still attached, in the metadata and on the VM', () => {
    const obs = observation({
      volumes: [],
      attachments: [attachment(VOL_B, 'vm2', 'xvdc')],
      vms: [{ name: 'vm2', disks: [disk(VOL_B, 'xvdc')] }],
    });
    const bad = judge(obs);
    expect(bad).toContain(`attachment of ${VOL_B} to vm2 has no volume row`);
    // The VM still points at the volume's file, which the delete removed.
    expect(bad).toContain(`vm2/xvdc at localhost points to a missing file ${ROOT}/${VOL_B}.img`);
  });

  it('reports a second read-write attachment, missing data and data without a record', () => {
    const obs = observation({
      volumes: [volume(VOL_A, 'in-use'), volume(VOL_B, 'available')],
      snapshots: [snapshot(SNAP_A, VOL_A, 'completed')],
      attachments: [attachment(VOL_A, 'vm1', 'xvdb'), attachment(VOL_A, 'vm2', 'xvdb')],
      objects: [VOL_A, 'vol-00000000000000ccc'],
      vms: [{ name: 'vm1', disks: [disk(VOL_A, 'xvdb')] }, { name: 'vm2', disks: [disk(VOL_A, 'xvdb')] }],
    });
    expect(judge(obs)).toEqual(
      expect.arrayContaining([
        `${VOL_A} has 2 read-write attachments`,
        `vol-00000000000000ccc has a file on local but no row`,
        `${VOL_B} is available but has no file`,
        `${SNAP_A} is completed but has no file`,
      ]),
    );
  });

  it('reports transient states once quiet, but not while requests run', () => {
    const obs = observation({ volumes: [volume(VOL_A, 'creating')], objects: [] });
    expect(judge(obs)).toEqual([`${VOL_A} is still creating`]);
    expect(judge(obs, { quiet: false })).toEqual([]);
  });

  it('reports an iSCSI target and a session that no attachment needs, and an attachment without its target', () => {
    const iqn = (id: string) => `iqn.2026-11.org.vbs:${id}`;
    const byPath = (id: string) => `/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-${iqn(id)}-lun-1`;
    const obs = observation({
      delegate: lvmDelegate,
      volumes: [volume(VOL_A, 'in-use'), volume(VOL_B, 'available')],
      attachments: [attachment(VOL_A, 'vm1', 'xvdb')],
      objects: [VOL_A, VOL_B],
      targets: [iqn(VOL_B)],
      sessions: [iqn(VOL_A), iqn(VOL_B)],
      vms: [{ name: 'vm1', disks: [{ dev: 'xvdb', target: byPath(VOL_A), mode: 'w', kind: 'phy' }] }],
    });
    expect(judge(obs).sort()).toEqual(
      [
        `target ${iqn(VOL_B)} on local serves ${VOL_B}, which has no attachment`,
        `${VOL_A} is attached but local has no target for it`,
        `localhost has an iSCSI session to ${iqn(VOL_B)} with no attachment of ${VOL_B} there`,
      ].sort(),
    );
  });
});

describe('the invariant checker on an rbd pool and QEMU disks', () => {
  const rbdDelegate: VolumeDelegateView = { name: 'local', rbd: { cephConf: '/etc/ceph/ceph.conf', keyring: '/k', pool: 'vbs', clientId: 'vbs' } };
  const VOL_C = 'vol-0000000000000000c';
  const SNAP_B = 'snap-0000000000000000b';
  // As `rbd ls -l --format json` prints them.
  const pool = [
    { image: VOL_A, size: GiB },
    { image: VOL_A, snapshot: `gone.${SNAP_B}`, size: GiB },
    { image: `part.${VOL_B}`, size: GiB },
    { image: `gone.${VOL_C}`, size: GiB },
    { image: `gone.${VOL_C}`, snapshot: SNAP_A, size: GiB },
    { image: 'gone.vol-0000000000000000d', size: 2 * GiB },
    { image: 'vol-0000000000000000e', size: GiB, parent: { pool: 'vbs', image: VOL_A, snapshot: 'gone.snap-0000000000000000e' } },
    { image: VOL_A, snapshot: 'gone.snap-0000000000000000e', size: GiB },
    { image: 'not-ours', size: GiB },
  ];

  it('reads images and snapshots named by ids as objects, part. images as partial, gone. ones as none', () => {
    expect(storedImages(rbdDelegate, pool).map((o) => [o.id, o.bytes, o.partial])).toEqual([
      [VOL_A, GiB, false],
      [VOL_B, GiB, true],
      [SNAP_A, GiB, false],
      ['vol-0000000000000000e', GiB, false],
    ]);
  });

  it('names the deferred deletes nothing reads any more: a gone. image without snapshots, a gone. snapshot without clones', () => {
    expect(unsweptOf(pool, 'vbs').sort()).toEqual([`${VOL_A}@gone.${SNAP_B}`, 'gone.vol-0000000000000000d'].sort());
  });

  it('matches a QEMU disk on an rbd image with its attachment, and reports one without', () => {
    const rbdDisk = (id: string, dev: string) => ({ dev, target: `rbd:vbs/${id}`, mode: 'w' });
    const base = {
      delegate: rbdDelegate,
      volumes: [volume(VOL_A, 'in-use'), volume(VOL_B, 'available')],
      attachments: [attachment(VOL_A, 'vm1', 'xvdb')],
      objects: [VOL_A, VOL_B],
    };
    expect(judge(observation({ ...base, vms: [{ name: 'vm1', disks: [rbdDisk(VOL_A, 'xvdb')] }] }))).toEqual([]);
    expect(judge(observation({ ...base, vms: [{ name: 'vm1', disks: [rbdDisk(VOL_A, 'xvdb'), rbdDisk(VOL_B, 'xvdc')] }] }))).toEqual([
      `vm1/xvdc at localhost holds ${VOL_B} with no attachment record`,
    ]);
    const unswept: Observation = { ...observation({ ...base, vms: [{ name: 'vm1', disks: [rbdDisk(VOL_A, 'xvdb')] }] }), unswept: new Map([['local', ['gone.vol-0000000000000000d']]]) };
    expect(judge(unswept)).toEqual(['gone.vol-0000000000000000d on local is a deferred delete nothing reads, yet it was not removed']);
  });
});

describe('the soak options and its seeded choices', () => {
  it('replays the same choices from the same seed', () => {
    const draw = (seed: number) => {
      const p = new Prng(seed);
      return Array.from({ length: 20 }, () => p.int(0, 1000));
    };
    expect(draw(42)).toEqual(draw(42));
    expect(draw(42)).not.toEqual(draw(43));
  });

  it('parses the issue\'s options and refuses anything else', () => {
    expect(parseSoakOptions(['--seconds', '180', '--seed', '7', '--clients', '4', '--backend', 'lvm-iscsi', '--min-operations', '50'], () => 1)).toEqual({
      seconds: 180,
      seed: 7,
      clients: 4,
      backend: 'lvm-iscsi',
      minOperations: 50,
      out: undefined,
    });
    // Issue 16: at least 8 clients, and a floor of work (hundreds of requests in a 2-minute run).
    expect(parseSoakOptions([], () => 99)).toMatchObject({ seed: 99, backend: 'file', clients: 8, seconds: 60, minOperations: 100 });
    expect(parseSoakOptions(['--seconds', '120'], () => 1).minOperations).toBe(200);
    expect(parseSoakOptions(['--backend', 'rbd', '--ceph-conf', '/c/ceph.conf', '--ceph-pool', 'p', '--seconds', '120'], () => 1)).toMatchObject({
      backend: 'rbd',
      ceph: { conf: '/c/ceph.conf', pool: 'p' },
      minOperations: 40,
    });
    for (const bad of [['--backend', 'rbd'], ['--ceph-conf', '/c'], ['--ceph-pool', 'p'], ['--backend', 'zfs'], ['--seconds', '0'], ['--seconds', '1e3'], ['--clients', '-1'], ['--min-operations', 'x'], ['--bogus'], ['extra']]) {
      expect(() => parseSoakOptions(bad, () => 1), bad.join(' ')).toThrow(UsageError);
    }
  });
});

describe("the soak's front settings", () => {
  it('let unfinished work be tried several times within the window the soak waits for it to settle', () => {
    expect(SOAK_FRONT_SETTINGS.retryMaxDelayMs * 4).toBeLessThanOrEqual(QUIET_TIMEOUT_MS);
    expect(SOAK_FRONT_SETTINGS.claimLeaseMs).toBeLessThan(SOAK_FRONT_SETTINGS.retryMaxDelayMs);
  });
});
