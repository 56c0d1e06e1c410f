/**
 * Device paths the simulated host knows about, and the host files behind them:
 *
 *   /dev/<vg>/<lv>, /dev/mapper/<vg>-<lv>          a simulated LV (sparse file in the state folder)
 *   /dev/disk/by-path/ip-<portal>-iscsi-<iqn>-lun-<n>  a LUN of a logged-in iSCSI session
 *   anything else                                  a real path on this machine
 */
import { existsSync, realpathSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Lv, SimState, Vg } from './state.js';

export interface Resolved {
  exists: boolean;
  /** Canonical host file behind the path (identity for sharing checks). */
  backing: string;
  /** A regular host file given directly (what Xen's `file:` backend wants). */
  regularFile: boolean;
}

export const DEFAULT_ISCSI_PORT = 3260;

/** `10.0.0.1` → `10.0.0.1:3260`; `10.0.0.1:3261` unchanged; `[::1]` → `[::1]:3260`. */
export function normalizePortal(p: string): string {
  const withoutTpgt = p.split(',')[0] ?? p;
  if (withoutTpgt.startsWith('[')) return /\]:\d+$/.test(withoutTpgt) ? withoutTpgt : `${withoutTpgt}:${DEFAULT_ISCSI_PORT}`;
  return /:\d+$/.test(withoutTpgt) ? withoutTpgt : `${withoutTpgt}:${DEFAULT_ISCSI_PORT}`;
}

/** `10.0.0.1:3260` → [`10.0.0.1`, `3260`]. */
export function splitPortal(portal: string): [string, string] {
  const i = portal.lastIndexOf(':');
  return [portal.slice(0, i), portal.slice(i + 1)];
}

export function byPathName(portal: string, iqn: string, lun: number): string {
  return `/dev/disk/by-path/ip-${portal}-iscsi-${iqn}-lun-${lun}`;
}

export function lvBackingRel(vg: string, lv: string): string {
  return join('data', 'lvm', vg, `${lv}.img`);
}

export function lvDevPath(vg: string, lv: string): string {
  return `/dev/${vg}/${lv}`;
}

export function findLv(st: SimState, vgName: string, lvName: string): { vg: Vg; lv: Lv } | undefined {
  const vg = st.vgs.find((v) => v.name === vgName);
  const lv = vg?.lvs.find((l) => l.name === lvName);
  return vg && lv ? { vg, lv } : undefined;
}

/** Splits a device-mapper name (`vg-lv`, dashes inside names doubled). */
function splitDmName(name: string): [string, string] | undefined {
  for (let i = 1; i < name.length - 1; i++) {
    if (name[i] !== '-') continue;
    if (name[i + 1] === '-') {
      i++;
      continue;
    }
    return [name.slice(0, i).replace(/--/g, '-'), name.slice(i + 1).replace(/--/g, '-')];
  }
  return undefined;
}

/** The (vg, lv) a simulated LV path names, if it is one (whether or not the LV exists). */
export function parseLvPath(st: SimState, p: string): [string, string] | undefined {
  const mapper = /^\/dev\/mapper\/([^/]+)$/.exec(p);
  if (mapper?.[1]) return splitDmName(mapper[1]);
  const dev = /^\/dev\/([^/]+)\/([^/]+)$/.exec(p);
  if (dev?.[1] && dev[2] && st.vgs.some((v) => v.name === dev[1])) return [dev[1], dev[2]];
  return undefined;
}

const BY_PATH = /^\/dev\/disk\/by-path\/ip-([^/]+?)-iscsi-(.+)-lun-(\d+)$/;

/** True when the simulated IET answers on this portal (an empty list means every address). */
export function ietServes(st: SimState, portal: string): boolean {
  return st.iet.portals.length === 0 || st.iet.portals.includes(portal);
}

/** The LUN paths a target reachable at `portal` offers, IET first, then test-defined targets. */
export function targetLuns(st: SimState, portal: string, iqn: string): { lun: number; path: string }[] | undefined {
  if (ietServes(st, portal)) {
    const t = st.iet.targets.find((x) => x.name === iqn);
    if (t) return t.luns.map((l) => ({ lun: l.lun, path: l.path }));
  }
  return st.iscsi.foreign.find((f) => f.portal === portal && f.iqn === iqn)?.luns;
}

export function resolveDevice(st: SimState, dir: string, p: string, depth = 0): Resolved {
  const lv = parseLvPath(st, p);
  if (lv) {
    const found = findLv(st, lv[0], lv[1]);
    return {
      exists: !!found,
      backing: resolve(dir, found ? found.lv.backing : lvBackingRel(lv[0], lv[1])),
      regularFile: false,
    };
  }
  const bp = BY_PATH.exec(p);
  if (bp?.[1] && bp[2] && bp[3] && depth < 4) {
    const portal = bp[1];
    const iqn = bp[2];
    const lunNo = Number(bp[3]);
    const session = st.iscsi.sessions.find((s) => s.portal === portal && s.iqn === iqn);
    // A LUN of a real target (tgtd reached with libiscsi) has no host file
    // here: the device path itself is the disk's identity for sharing checks.
    if (session?.luns) return { exists: session.luns.includes(lunNo), backing: p, regularFile: false };
    const lun = session ? targetLuns(st, portal, iqn)?.find((l) => l.lun === lunNo) : undefined;
    if (!lun) return { exists: false, backing: p, regularFile: false };
    const inner = resolveDevice(st, dir, lun.path, depth + 1);
    return { exists: inner.exists, backing: inner.backing, regularFile: false };
  }
  if (!p.startsWith('/') || !existsSync(p)) return { exists: false, backing: resolve(p), regularFile: false };
  const real = realpathSync(p);
  let regularFile = false;
  try {
    regularFile = statSync(real).isFile();
  } catch {
    /* vanished */
  }
  return { exists: true, backing: real, regularFile };
}

/** Who keeps an LV open: VM disks and IET LUNs whose backing is the LV's file. */
export function lvHolders(st: SimState, dir: string, lv: Lv): string[] {
  const backing = resolve(dir, lv.backing);
  const holders: string[] = [];
  for (const vm of st.vms) for (const d of vm.disks) if (d.backing === backing) holders.push(`vm ${vm.name}`);
  for (const t of st.iet.targets)
    for (const l of t.luns) if (resolveDevice(st, dir, l.path, 3).backing === backing) holders.push(`iet tid ${t.tid}`);
  return holders;
}
