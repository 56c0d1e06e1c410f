import type { ListedDisk, ListingFormat } from './types.js';

/** vbs-qmp `list-vms`: one VM id a line (the QMP sockets of the adapter's folder). */
export function parseQmpVmNames(stdout: string): string[] {
  return stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

interface BlockInfo {
  qdev?: unknown;
  inserted?: { file?: unknown; ro?: unknown; drv?: unknown };
  'vbs-orphan'?: unknown;
}

/**
 * vbs-qmp `query-block <vm>`: QMP's query-block as JSON. A disk is an entry
 * with a device (`qdev`: its id, or its QOM path `/machine/peripheral/<id>/...`)
 * and an inserted image; read-only is the block layer's own `ro`. QEMU names
 * a network image by its options (`json:{"driver": "iscsi", "portal": ...}`),
 * rendered here as `iscsi://<portal>/<target>/<lun>` like libvirt's listing.
 * vbs-qmp adds VBS's block nodes that no device uses (`vbs-orphan`): partial disks.
 */
export function parseQueryBlock(_vmId: string, stdout: string): ListedDisk[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    throw new Error('query-block did not print JSON');
  }
  if (!Array.isArray(parsed)) throw new Error('query-block did not print a list');
  const disks: ListedDisk[] = [];
  for (const b of parsed as BlockInfo[]) {
    const device = deviceId(b.qdev);
    const file = b.inserted?.file;
    if (!device || typeof file !== 'string' || !file) continue;
    disks.push({ device, target: imageName(file), mode: b.inserted?.ro === true ? 'r' : 'w', ...(b['vbs-orphan'] === true ? { partial: true as const } : {}) });
  }
  return disks;
}

function deviceId(qdev: unknown): string | undefined {
  if (typeof qdev !== 'string' || !qdev) return undefined;
  const m = /^\/machine\/peripheral\/([^/]+)(?:\/.*)?$/.exec(qdev);
  if (m) return m[1];
  return qdev.startsWith('/') ? undefined : qdev;
}

function imageName(file: string): string {
  if (!file.startsWith('json:')) return file;
  try {
    const o = JSON.parse(file.slice('json:'.length)) as Record<string, unknown>;
    if (o.driver === 'rbd' && typeof o.pool === 'string' && typeof o.image === 'string') return `rbd:${o.pool}/${o.image}`;
    if (o.driver === 'iscsi' && typeof o.portal === 'string' && typeof o.target === 'string') return `iscsi://${o.portal}/${o.target}/${String(o.lun ?? 0)}`;
  } catch {
    // not JSON after all: reported as QEMU prints it
  }
  return file;
}

export const QMP_FORMAT: ListingFormat = { vmIds: parseQmpVmNames, disks: parseQueryBlock };
