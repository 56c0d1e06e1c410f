import { createHash } from 'node:crypto';
import { VbsError } from './errors.js';
import { VOLUME_ID } from './ids.js';

/**
 * An rbd volume "exported" to a VMM host (issue 19): the hypervisor opens
 * the image itself (QEMU's rbd driver), so the export is what it needs to do
 * so — the pool and image, the monitors' addresses (from the cluster's
 * configuration), and a cephx client of this export alone, whose caps admit
 * that image (and, read-only, its parents) and nothing else:
 *
 *   client.vbs.<volumeId>.<vmmHost>   mon 'profile rbd'
 *                                     osd 'allow rwx pool=P object_prefix rbd_header.<id>, …'
 *
 * One client per (volume, host), like the CHAP account of an iSCSI export
 * (src/core/chap.ts): every attachment of the volume on that host shares it,
 * and it is removed (`ceph auth rm`) when the last one there goes. A key that
 * leaks from a hypervisor opens one volume, until that host's export ends.
 */

/** A cephx client id VBS makes for an export (the part after `client.`). */
export const CEPH_USER = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,250}$/;
/** A cephx key, base64 as `ceph auth get-key` prints it (16-byte secret + header: 40 characters). */
export const CEPH_KEY = /^(?=.{16,128}$)[A-Za-z0-9+/]+={0,2}$/;
/** A Ceph pool name as VBS accepts one. */
export const CEPH_POOL = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,126}$/;
const MON = '[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}):[0-9]{1,5}';
/** Monitors as an export names them: `host:port` (msgr1), comma-separated, at most 16. */
export const MONITORS = new RegExp(`^${MON}(?:,${MON}){0,15}$`);
const OSD_CAP = 'allow rw?x pool=[A-Za-z0-9_][A-Za-z0-9_.-]{0,126} object_prefix rbd_[a-z_]+(?:\\.[A-Za-z0-9_.-]{1,200})?';
/** The osd caps VBS gives an export's client: only its own grammar (see osdCapsFor). */
export const OSD_CAPS = new RegExp(`^${OSD_CAP}(?:, ${OSD_CAP}){0,200}$`);

/** The cephx client of a volume's export to one VMM host. */
export function cephUserOf(volumeId: string, vmmHost: string): string {
  return `vbs.${volumeId}.${vmmHost.toLowerCase()}`;
}

/**
 * The libvirt secret that holds a client's key on a hypervisor: its UUID is
 * derived from the client's name, so defining it again (a retry, a second
 * VM of the host) finds the same secret, and a detach can remove it without
 * having kept anything.
 */
export function secretUuidOf(cephUser: string): string {
  const h = createHash('sha256').update(`vbs-rbd-secret:${cephUser}`).digest('hex');
  // A version-4-shaped UUID (the variant and version bits set), from the hash.
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** An image's RBD id (`rbd info`'s id), which names its objects. */
export interface ImageIds {
  name: string;
  id: string;
}

const RBD_ID = /^[0-9a-f]{1,64}$/;

/**
 * The osd caps of an export's client: read and write on the image's own
 * objects (header: watch, lock, and class calls; data; object map), read on
 * the objects of each parent it is a clone of (its data shows through), and
 * read on what opening any image reads (`rbd_id.<name>` to find the id, the
 * pool's `rbd_info` metadata, `rbd_directory` to name a parent by its id).
 * `rbd_directory` lists the pool's image names and ids, not their data.
 * Checked on a Pacific cluster: the client opens, reads and writes its image
 * and reads through to its parent; opening any other image of the pool is
 * refused (EPERM), as is writing to the parent.
 */
export function osdCapsFor(pool: string, image: ImageIds, parents: readonly ImageIds[]): string {
  if (!CEPH_POOL.test(pool)) throw new Error(`not a pool name: ${pool}`);
  for (const i of [image, ...parents]) if (!RBD_ID.test(i.id)) throw new Error(`not an rbd image id: ${i.id}`);
  const cap = (access: 'rx' | 'rwx', prefix: string) => `allow ${access} pool=${pool} object_prefix ${prefix}`;
  const objects = (id: string) => [`rbd_header.${id}`, `rbd_data.${id}.`, `rbd_object_map.${id}`];
  return [
    cap('rx', 'rbd_info'),
    cap('rx', 'rbd_directory'),
    cap('rx', `rbd_id.${image.name}`),
    ...objects(image.id).map((o) => cap('rwx', o)),
    ...parents.flatMap((p) => objects(p.id).map((o) => cap('rx', o))),
  ].join(', ');
}

/**
 * The monitors of a ceph.conf (`mon host`, or `mon_host`), as `host:port`
 * msgr1 addresses, which QEMU's and libvirt's rbd drivers take: from
 * `[v2:a:3300,v1:a:6789]` the v1 address; a bare `a:p` as it is; a bare
 * host gets the msgr1 default port 6789. Never a port VBS made up.
 */
export function monitorsOf(confText: string): string {
  let line: string | undefined;
  for (const raw of confText.split('\n')) {
    const m = /^\s*mon[ _]host\s*=\s*(.+?)\s*$/.exec(raw.replace(/[;#].*$/, ''));
    if (m) line = m[1];
  }
  if (!line) throw new Error('the ceph configuration names no monitors (mon host)');
  const out: string[] = [];
  // Entries are separated by commas, spaces or semicolons outside brackets.
  for (const entry of line.match(/\[[^\]]*\]|[^,;\s]+/g) ?? []) {
    if (entry.startsWith('[')) {
      const addrs = entry.slice(1, -1).split(',');
      const v1 = addrs.find((a) => a.startsWith('v1:'));
      if (v1) out.push(v1.slice(3));
      else if (addrs[0]) out.push(addrs[0].replace(/^v2:/, ''));
    } else {
      const a = entry.replace(/^v[12]:/, '');
      out.push(/:[0-9]+$/.test(a) ? a : `${a}:6789`);
    }
  }
  const joined = out.join(',');
  if (!MONITORS.test(joined)) throw new Error('the ceph configuration\'s mon host is not a list of IPv4 or host name addresses VBS can pass on');
  return joined;
}

/** An rbd export as a VMM delegate takes it (the disk source of kind rbd), every field checked. */
export interface RbdSource {
  readonly pool: string;
  readonly image: string;
  /** `host:port,…` */
  readonly monitors: string;
  readonly cephUser: string;
  /** Never logged, never in a fault, never on a command line. */
  readonly cephKey: string;
}

function field(source: Record<string, unknown>, name: string, re: RegExp, what: string): string {
  const value = source[name];
  if (value === undefined || value === null || value === '') throw new VbsError('MissingParameter', `The request must contain the parameter source.${name}.`);
  if (typeof value !== 'string' || !re.test(value)) throw new VbsError('InvalidParameterValue', `Value for parameter source.${name} is invalid: expected ${what}.`);
  return value;
}

/** The rbd source a request names; a fault names the field, never the value (the key is a secret). */
export function rbdSource(source: Record<string, unknown>): RbdSource {
  return {
    pool: field(source, 'pool', CEPH_POOL, 'a Ceph pool name'),
    image: field(source, 'image', VOLUME_ID, 'a volume id'),
    monitors: field(source, 'monitors', MONITORS, 'host:port monitor addresses, comma-separated'),
    cephUser: field(source, 'cephUser', CEPH_USER, 'a cephx client id'),
    cephKey: field(source, 'cephKey', CEPH_KEY, 'a cephx key'),
  };
}

/** How listings name an rbd disk (libvirt's and QMP's alike; volumeIdOf knows it). */
export function rbdTarget(pool: string, image: string): string {
  return `rbd:${pool}/${image}`;
}
