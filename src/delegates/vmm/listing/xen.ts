import { children, parseSxp, valueOf, type Sxp } from './sxp.js';
import type { ListedDisk, ListingFormat } from './types.js';

/**
 * `xm list` and `xl list` print the same table: a header, then one domain a
 * line, its name first (Xen names have no spaces). Domain-0 is the host itself.
 *
 *   Name                                        ID   Mem VCPUs      State   Time(s)
 *   Domain-0                                     0  1024     2     r-----    120.3
 *   vm1                                          1   512     1     -b----      1.2
 */
export function parseXenListTable(stdout: string): string[] {
  return stdout
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((name) => name !== '' && name !== 'Domain-0');
}

/**
 * `xm list --long <vm>`: xend's SXP of the domain, one `(device (vbd ...))`
 * (or `tap`/`tap2`) per disk with `(dev xvdb:disk) (uname phy:/dev/...) (mode w)`.
 * `xm block-list --long` would only show the frontend's xenstore nodes (device
 * number, state, backend path): no backing path, so it cannot serve here.
 */
export function parseXmLong(vmId: string, stdout: string): ListedDisk[] {
  const domains = parseSxp(stdout).filter((d): d is Sxp[] => Array.isArray(d) && d[0] === 'domain');
  const mine = domains.filter((d) => valueOf(d, 'name') === vmId || valueOf(d, 'domid') === vmId);
  const disks: ListedDisk[] = [];
  for (const dom of mine.length ? mine : domains.length === 1 ? domains : []) {
    for (const device of children(dom, 'device')) {
      for (const kind of ['vbd', 'tap', 'tap2']) {
        for (const vbd of children(device, kind)) {
          const dev = valueOf(vbd, 'dev');
          const uname = valueOf(vbd, 'uname');
          if (!dev || !uname || dev.endsWith(':cdrom')) continue;
          disks.push({ device: dev.replace(/:disk$/, '').replace(/^\/dev\//, ''), target: unameTarget(uname), mode: valueOf(vbd, 'mode')?.startsWith('w') ? 'w' : 'r' });
        }
      }
    }
  }
  return disks;
}

/** `file:/p`, `phy:/dev/x` (or `phy:x`, meaning /dev/x), `tap:aio:/p` → the path. */
function unameTarget(uname: string): string {
  const m = /^(file|phy|tap2?):(?:(?:aio|sync|vmdk|qcow2?|vhd|ram):)?(.*)$/.exec(uname);
  if (!m) return uname;
  const path = m[2] ?? '';
  return m[1] === 'phy' && !path.startsWith('/') ? `/dev/${path}` : path;
}

interface XlDomain {
  domid?: number;
  config?: { c_info?: { name?: string }; disks?: { pdev_path?: string; vdev?: string; readwrite?: number; is_cdrom?: number }[] };
}

/**
 * `xl list -l <vm>`: libxl's domain configuration as JSON (an array of
 * `{domid, config: {c_info: {name}, disks: [{pdev_path, vdev, readwrite}]}}`).
 * libxl leaves out fields at their default, so a read-only disk has no
 * `readwrite`. `xl block-list` shows no backing path, like xm's.
 */
export function parseXlLong(vmId: string, stdout: string): ListedDisk[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    throw new Error('xl list -l did not print JSON');
  }
  const domains = (Array.isArray(parsed) ? parsed : [parsed]) as XlDomain[];
  const mine = domains.filter((d) => d.config?.c_info?.name === vmId || String(d.domid) === vmId);
  return (mine.length ? mine : domains.length === 1 ? domains : []).flatMap((d) =>
    (d.config?.disks ?? [])
      .filter((k) => k.pdev_path && k.vdev && !k.is_cdrom)
      .map((k) => ({ device: String(k.vdev).replace(/:disk$/, ''), target: String(k.pdev_path), mode: k.readwrite ? 'w' : 'r' }) as ListedDisk),
  );
}

export const XM_FORMAT: ListingFormat = { vmIds: parseXenListTable, disks: parseXmLong };
export const XL_FORMAT: ListingFormat = { vmIds: parseXenListTable, disks: parseXlLong };
