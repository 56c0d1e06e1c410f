import type { ListedDisk, ListingFormat } from './types.js';

/**
 * `qm list`: a header, then one VM a line, its VMID first.
 *
 *       VMID NAME                 STATUS     MEM(MB)    BOOTDISK(GB) PID
 *        100 web                  running    2048              32.00 1843
 */
export function parseQmList(stdout: string): string[] {
  return stdout
    .split('\n')
    .map((l) => /^\s*(\d+)\s/.exec(l)?.[1])
    .filter((id): id is string => id !== undefined);
}

const DRIVE = /^(ide|sata|scsi|virtio)\d+$/;

/**
 * `qm config <vmid>`: `key: value` lines; a drive is `scsi1: <path or
 * storage:volume>[,opt=value...]`, read-only with `ro=1`. A disk on a Proxmox
 * storage shows its volume id (`local-lvm:vm-100-disk-0`), not a path: it is
 * reported as such (`pvesm path` would resolve it; VBS attaches by path, so
 * its own volumes always show their path). CD-ROMs and empty drives are skipped.
 */
export function parseQmConfig(_vmId: string, stdout: string): ListedDisk[] {
  const disks: ListedDisk[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^([a-z]+\d+):\s*(.*)$/.exec(line.trim());
    if (!m?.[1] || m[2] === undefined || !DRIVE.test(m[1])) continue;
    const parts = m[2].split(',');
    const opts = new Map<string, string>();
    let target = '';
    for (const [i, p] of parts.entries()) {
      const eq = p.indexOf('=');
      if (eq < 0 && i === 0) target = p;
      else if (eq >= 0) opts.set(p.slice(0, eq), p.slice(eq + 1));
    }
    target ||= opts.get('file') ?? '';
    if (!target || target === 'none' || opts.get('media') === 'cdrom') continue;
    disks.push({ device: m[1], target, mode: /^(1|on|yes|true)$/i.test(opts.get('ro') ?? '') ? 'r' : 'w' });
  }
  return disks;
}

export const QM_FORMAT: ListingFormat = { vmIds: parseQmList, disks: parseQmConfig };
