import { basename, dirname, resolve } from 'node:path';

const VOLUME_FILE = /^(vol-[0-9a-f]{17})\.img$/;
// rbd:<pool>/vol-… (an rbd image QEMU opens itself), /dev/disk/by-path/ip-<portal>-iscsi-<iqn ending :vol-…>-lun-<n>, or libvirt's iscsi://host:port/<iqn>/<lun>.
const VOLUME_LUN = [/^rbd:[^/]+\/(vol-[0-9a-f]{17})$/, /^\/dev\/disk\/by-path\/ip-[^/]+-iscsi-iqn\.[^/]+:(vol-[0-9a-f]{17})-lun-[0-9]+$/, /^iscsi:\/\/[^/]*\/iqn\.[^/]+:(vol-[0-9a-f]{17})\/[0-9]+$/];

/**
 * The VBS volume behind a disk's target, when it is one: a volume file
 * `<root>/vol-<17 hex>.img` directly in one of this host's volume roots, or
 * the device of a LUN whose target name ends in `:vol-<17 hex>`.
 */
export function volumeIdOf(target: string, volumeRoots: readonly string[]): string | undefined {
  for (const re of VOLUME_LUN) {
    const m = re.exec(target);
    if (m?.[1]) return m[1];
  }
  if (!target.startsWith('/')) return undefined;
  const file = VOLUME_FILE.exec(basename(target));
  if (!file?.[1]) return undefined;
  const folder = dirname(resolve(target));
  return volumeRoots.some((root) => resolve(root) === folder) ? file[1] : undefined;
}
