import { QmpError, type QmpClient } from './client.js';

/**
 * Hot-plugging a disk into a running QEMU over QMP, the way libvirt does it
 * with -blockdev: a block node (`vbs-<dev>`) for the image, then a `scsi-hd`
 * device (id `<dev>`) on the VM's virtio-scsi bus. A `scsi-hd` is released
 * without a guest's help (a virtio-blk one waits forever for a guest OS), so
 * detach works on paused VMs and ones without a guest. A read-only disk is
 * read-only in the block layer (`read-only: true`), not just a flag.
 */
export type DiskImage =
  | { kind: 'file'; path: string }
  | { kind: 'iscsi'; host: string; port: number; iqn: string; lun: number; initiator?: string; chap?: { user: string; secret: string } }
  /** A Ceph RBD image QEMU opens itself; `key`: the cephx key, handed to QEMU as a secret object. */
  | { kind: 'rbd'; pool: string; image: string; servers: { host: string; port: number }[]; user: string; key: string };

export interface Attachment {
  /** The device id in the VM, which is also the name VBS gives the disk (sdb). */
  readonly dev: string;
  readonly image: DiskImage;
  readonly readOnly: boolean;
}

/** The SCSI bus disks are added to: the virtio-scsi-pci controller with id scsi0. */
export const SCSI_BUS = 'scsi0.0';
/** The iSCSI initiator name QEMU uses for a VM when the export names none (a target that admits anyone). */
export const INITIATOR_PREFIX = 'iqn.2026-11.org.vbs.qemu';
/** How long a device may take to go away after device_del (scsi-hd needs no guest: milliseconds). */
const DEVICE_DELETED_TIMEOUT_MS = 10_000;

const NODE_PREFIX = 'vbs-';
export const nodeName = (dev: string): string => `${NODE_PREFIX}${dev}`;
/** The QEMU secret object holding a disk's CHAP secret (given over QMP, never on a command line). */
const secretId = (dev: string): string => `vbs-chap-${dev}`;
/** The QEMU secret object holding a disk's cephx key (the same way). */
const keyId = (dev: string): string => `vbs-key-${dev}`;

async function objectExists(qmp: QmpClient, id: string): Promise<boolean> {
  const children = (await qmp.execute('qom-list', { path: '/objects' })) as { name?: string }[];
  return children.some((c) => c.name === id);
}

/** Removes a disk's secret objects (CHAP secret, cephx key), if it has them. */
async function dropSecret(qmp: QmpClient, dev: string): Promise<void> {
  for (const id of [secretId(dev), keyId(dev)]) if (await objectExists(qmp, id)) await qmp.execute('object-del', { id });
}

interface BlockInfo {
  qdev?: string;
  device?: string;
  inserted?: { 'node-name'?: string; file?: string; ro?: boolean; drv?: string; image?: { filename?: string } };
  /** Set by listDisks on a node VBS added that no device uses (see orphanNodes). */
  'vbs-orphan'?: true;
}

interface NamedNode {
  'node-name'?: string;
  file?: string;
  ro?: boolean;
  drv?: string;
}

export async function queryBlock(qmp: QmpClient): Promise<BlockInfo[]> {
  return (await qmp.execute('query-block')) as BlockInfo[];
}

/**
 * The block nodes VBS added (`vbs-<dev>`) that no device uses: what an attach
 * cut short between blockdev-add and device_add (the tool killed) leaves. Such
 * a node holds the image open, read-write for a writer, yet query-block, which
 * lists devices, does not show it; each is reported as the disk `<dev>`,
 * marked `vbs-orphan`, so a detach (or an attach's undo) sees it and removes it.
 */
export async function orphanNodes(qmp: QmpClient, devices: readonly BlockInfo[]): Promise<BlockInfo[]> {
  const used = new Set(devices.map((b) => b.inserted?.['node-name']).filter((n) => n !== undefined));
  const nodes = (await qmp.execute('query-named-block-nodes', { flat: true })) as NamedNode[];
  return nodes
    .filter((n) => n['node-name']?.startsWith(NODE_PREFIX) && !used.has(n['node-name']))
    .map((n) => ({ qdev: n['node-name']!.slice(NODE_PREFIX.length), inserted: { 'node-name': n['node-name'], file: n.file, ro: n.ro, drv: n.drv }, 'vbs-orphan': true }));
}

/** The VM's disks as the listing shows them: query-block, then the orphan nodes of VBS's own naming. */
export async function listDisks(qmp: QmpClient): Promise<BlockInfo[]> {
  const devices = await queryBlock(qmp);
  return [...devices, ...(await orphanNodes(qmp, devices))];
}

/** The device id of a query-block entry (QEMU names hot-plugged devices by their id, or their QOM path). */
export function deviceIdOf(b: BlockInfo): string | undefined {
  const q = b.qdev ?? '';
  const m = /^\/machine\/peripheral\/([^/]+)(?:\/.*)?$/.exec(q);
  return m ? m[1] : q || undefined;
}

async function nodeExists(qmp: QmpClient, name: string): Promise<boolean> {
  const nodes = (await qmp.execute('query-named-block-nodes', { flat: true })) as { 'node-name'?: string }[];
  return nodes.some((n) => n['node-name'] === name);
}

function blockdevOptions(a: Attachment, vmId: string): Record<string, unknown> {
  const common = { 'node-name': nodeName(a.dev), 'read-only': a.readOnly };
  if (a.image.kind === 'file') {
    return { ...common, driver: 'raw', file: { driver: 'file', filename: a.image.path } };
  }
  if (a.image.kind === 'rbd') {
    // QEMU's rbd driver (librbd): the monitors given here, cephx with the key object attachDisk made.
    return {
      ...common,
      driver: 'rbd',
      pool: a.image.pool,
      image: a.image.image,
      server: a.image.servers.map((s) => ({ host: s.host, port: String(s.port) })),
      user: a.image.user,
      'key-secret': keyId(a.dev),
      'auth-client-required': ['cephx'],
    };
  }
  // QEMU's own initiator (libiscsi): no kernel session, no host device.
  return {
    ...common,
    driver: 'iscsi',
    transport: 'tcp',
    portal: `${a.image.host}:${a.image.port}`,
    target: a.image.iqn,
    lun: a.image.lun,
    // The name the target's ACL admits for this host (fencing), else one per VM.
    'initiator-name': a.image.initiator ?? `${INITIATOR_PREFIX}:${vmId}`,
    // The export's CHAP account: the secret is the object attachDisk made, by id.
    ...(a.image.chap ? { user: a.image.chap.user, 'password-secret': secretId(a.dev) } : {}),
  };
}

/**
 * Adds the disk. A device of that id already there is refused; a block node
 * left behind by an attach cut short (no device uses it) is removed first.
 * When device_add fails the node just added is removed again, so a failed
 * attach leaves the VM as it was.
 */
export async function attachDisk(qmp: QmpClient, vmId: string, a: Attachment): Promise<void> {
  if ((await queryBlock(qmp)).some((b) => deviceIdOf(b) === a.dev)) {
    throw new QmpError('device_add', 'GenericError', `Duplicate device ID '${a.dev}': the VM already has a disk ${a.dev}`);
  }
  const node = nodeName(a.dev);
  if (await nodeExists(qmp, node)) await qmp.execute('blockdev-del', { 'node-name': node });
  await dropSecret(qmp, a.dev);
  if (a.image.kind === 'iscsi' && a.image.chap) await qmp.execute('object-add', { 'qom-type': 'secret', id: secretId(a.dev), data: a.image.chap.secret, format: 'raw' });
  if (a.image.kind === 'rbd') await qmp.execute('object-add', { 'qom-type': 'secret', id: keyId(a.dev), data: a.image.key, format: 'base64' });
  try {
    await qmp.execute('blockdev-add', blockdevOptions(a, vmId));
  } catch (err) {
    await dropSecret(qmp, a.dev).catch(() => undefined);
    throw err;
  }
  try {
    await qmp.execute('device_add', { driver: 'scsi-hd', id: a.dev, drive: node, bus: SCSI_BUS });
  } catch (err) {
    await qmp.execute('blockdev-del', { 'node-name': node }).catch(() => undefined);
    await dropSecret(qmp, a.dev).catch(() => undefined);
    throw err;
  }
}

/**
 * ModifyVolume: block_resize of the disk's node to the size its volume grew
 * to. On a file QEMU grows the image to that size (already that size: a
 * no-op); on an iSCSI LUN it re-reads the capacity and refuses a size the
 * target does not serve yet. QEMU never shrinks for us: the caller's size
 * comes from the grown volume. A device that is not there is an error.
 */
export async function resizeDisk(qmp: QmpClient, dev: string, bytes: number): Promise<void> {
  if (!(await queryBlock(qmp)).some((b) => deviceIdOf(b) === dev)) throw new QmpError('block_resize', 'DeviceNotFound', `Device '${dev}' not found`);
  await qmp.execute('block_resize', { 'node-name': nodeName(dev), size: bytes });
}

/**
 * Removes the disk: device_del, then (once QEMU reports DEVICE_DELETED) its
 * block node. A device that is not there is an error, as with virsh and xm;
 * its stray node, if any, is removed all the same.
 */
export async function detachDisk(qmp: QmpClient, dev: string): Promise<void> {
  const node = nodeName(dev);
  const present = (await queryBlock(qmp)).some((b) => deviceIdOf(b) === dev);
  if (!present) {
    if (await nodeExists(qmp, node)) {
      await qmp.execute('blockdev-del', { 'node-name': node });
      await dropSecret(qmp, dev);
      return;
    }
    throw new QmpError('device_del', 'DeviceNotFound', `Device '${dev}' not found`);
  }
  await qmp.execute('device_del', { id: dev });
  await qmp.waitForEvent((e) => e.event === 'DEVICE_DELETED' && e.data?.device === dev, DEVICE_DELETED_TIMEOUT_MS, `DEVICE_DELETED for ${dev}`);
  if (await nodeExists(qmp, node)) await qmp.execute('blockdev-del', { 'node-name': node });
  await dropSecret(qmp, dev);
}
