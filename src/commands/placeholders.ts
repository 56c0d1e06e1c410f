import { isAbsolute } from 'node:path';
import { VbsError } from '../core/errors.js';
import { SNAPSHOT_ID, VOLUME_ID } from '../core/ids.js';
import { CEPH_KEY, CEPH_POOL, CEPH_USER, MONITORS, OSD_CAPS } from '../core/rbd-export.js';

/**
 * Every placeholder a pattern may use, with the check its value must pass.
 * A pattern naming anything else is refused when commands.properties loads,
 * so a typo is an operator's start-up error, not a user's runtime surprise.
 */
type Check = (value: string) => boolean;

const word = (re: RegExp): Check => (v) => re.test(v);
const wholeNumber: Check = (v) => /^[1-9][0-9]{0,18}$/.test(v) || v === '0';
// Absolute, normalized, no NUL, no `..` segment. Whether it is under the right
// root is checked by the service that builds it (validate.pathUnder).
const absolutePath: Check = (v) =>
  isAbsolute(v) && !v.includes('\0') && !v.split('/').includes('..') && !/[\n\r]/.test(v);

/** An RBD image or snapshot name VBS makes: an id, or an id behind `part.`/`gone.` (never `/` or `@`). */
const RBD_NAME = /^(?:(?:part|gone)\.)?(?:vol|snap)-[0-9a-f]{17}$/;

export const PLACEHOLDERS: Record<string, Check> = {
  volumeId: word(VOLUME_ID),
  snapshotId: word(SNAPSHOT_ID),
  id: (v) => VOLUME_ID.test(v) || SNAPSHOT_ID.test(v),
  vmId: word(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/),
  // A cloud's instance id (Nimbus i-0a1b2c3d, a Nova UUID, a VM name): resolver.* patterns.
  instanceId: word(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/),
  vmDev: word(/^(?:(?:xvd|sd|hd|vd)[a-z]{1,2}|(?:scsi|virtio|sata|ide)[0-9]{1,2})$/),
  mode: word(/^[rw]$/),
  // An image's format (import-image, export-image): qemu-img's driver names.
  imageFormat: word(/^(?:raw|qcow2|vmdk|vdi)$/),
  access: word(/^r[ow]$/),
  path: absolutePath,
  source: absolutePath,
  stateDir: absolutePath,
  node: absolutePath,
  vbsHome: absolutePath,
  bytes: wholeNumber,
  sizeMiB: wholeNumber,
  sizeGiB: wholeNumber,
  sizeKiB: wholeNumber,
  // LVM and iSCSI (the classic back end)
  vg: word(/^[A-Za-z0-9+_][A-Za-z0-9+_.-]{0,126}$/),
  lv: word(/^[A-Za-z0-9+_][A-Za-z0-9+_.-]{0,126}$/),
  lvPath: absolutePath,
  origin: word(/^[A-Za-z0-9+_][A-Za-z0-9+_.-]{0,126}$/),
  newLv: word(/^[A-Za-z0-9+_][A-Za-z0-9+_.-]{0,126}$/),
  pool: word(/^[A-Za-z0-9+_][A-Za-z0-9+_.-]{0,126}$/),
  offsetMiB: wholeNumber,
  countMiB: wholeNumber,
  iqn: word(/^iqn\.[0-9]{4}-[0-9]{2}\.[a-z0-9.-]+(?::[A-Za-z0-9.:_-]+)?$/),
  tid: wholeNumber,
  // An initiator's iqn name, or tgt's ALL (the ACL entry that admits anyone).
  initiator: word(/^(?:ALL|iqn\.[0-9]{4}-[0-9]{2}\.[a-z0-9.-]+(?::[A-Za-z0-9.:_-]+)?)$/),
  sid: wholeNumber,
  cid: wholeNumber,
  lun: wholeNumber,
  portal: word(/^[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?$/),
  portalHost: word(/^[A-Za-z0-9.-]{1,253}$/),
  portalPort: wholeNumber,
  controlPort: wholeNumber,
  vmmDev: absolutePath,
  // A libvirt secret's UUID (the CHAP account of a network disk: src/delegates/vmm/libvirt-secret.ts); not a secret.
  secretId: word(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/),
  // The name of a CHAP account (per export: src/core/chap.ts); not a secret.
  chapUser: word(/^[A-Za-z0-9][A-Za-z0-9.:_-]{0,222}$/),
  // Ceph RBD (the rbd back end): the cluster's configuration and key files, the
  // cephx client id, images and snapshots by name, and timeouts in seconds.
  cephConf: absolutePath,
  keyring: absolutePath,
  cephId: word(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$/),
  image: word(RBD_NAME),
  newImage: word(RBD_NAME),
  snap: word(RBD_NAME),
  newSnap: word(RBD_NAME),
  timeoutSec: word(/^[1-9][0-9]{0,3}$/),
  // Attaching rbd volumes (src/core/rbd-export.ts): the cephx client of one
  // export (`vbs.<volumeId>.<vmmHost>`), its caps, and the libvirt secret
  // that holds its key on a hypervisor. Not secrets themselves.
  cephUser: word(CEPH_USER),
  monCaps: word(/^profile rbd$/),
  osdCaps: word(OSD_CAPS),
  secretUuid: word(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/),
  rbdPool: word(CEPH_POOL),
  rbdImage: word(VOLUME_ID),
  monitors: word(MONITORS),
};

/**
 * Placeholders whose values are secrets. A pattern may never put one in a
 * command's words (argv is world-readable in /proc/<pid>/cmdline and ps);
 * it names how the secret travels instead, with `<key>.stdin = <name>` or
 * `<key>.env.VAR = <name>` (catalog.ts), and the runner delivers it there.
 */
export const SECRET_PLACEHOLDERS: Record<string, Check> = {
  // A per-export CHAP secret the front generates (src/core/chap.ts).
  chapSecret: word(/^[A-Za-z0-9_-]{16,128}$/),
  // The cephx key of one rbd export (base64, as `ceph auth get-key` prints it).
  cephKey: word(CEPH_KEY),
};

export function isKnownPlaceholder(name: string): boolean {
  return Object.prototype.hasOwnProperty.call(PLACEHOLDERS, name) || isSecretPlaceholder(name);
}

export function isSecretPlaceholder(name: string): boolean {
  return Object.prototype.hasOwnProperty.call(SECRET_PLACEHOLDERS, name);
}

/** Throws a client fault, before any command runs, when a value fails its check (the message never repeats the value). */
export function checkPlaceholder(name: string, value: string): void {
  const check = isSecretPlaceholder(name) ? SECRET_PLACEHOLDERS[name] : PLACEHOLDERS[name];
  if (!check) throw new VbsError('InternalError', `Unknown placeholder <${name}>`);
  if (!check(value)) {
    throw new VbsError('InvalidParameterValue', `Value for <${name}> is not acceptable in a host command.`);
  }
}
