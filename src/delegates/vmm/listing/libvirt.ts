import { XMLParser } from 'fast-xml-parser';
import type { ListedDisk, ListingFormat } from './types.js';

/** `virsh list --all --name`: one domain name a line, then an empty line. */
export function parseVirshNames(stdout: string): string[] {
  return stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@_', isArray: (name) => name === 'disk' || name === 'host' });

type Attrs = Record<string, string | undefined>;
interface DiskXml {
  '@_type'?: string;
  '@_device'?: string;
  source?: Attrs & { host?: Attrs[] };
  target?: Attrs;
  readonly?: unknown;
}

/**
 * `virsh dumpxml <vm>`: the live domain XML. `virsh domblklist --details`
 * names the source of each disk but not whether it is read-only, which the
 * consistency check needs, so the disks come from the XML: <source file=>
 * (file), <source dev=> (block), <source protocol='iscsi' name='iqn/lun'>
 * with its <host> (network, rendered iscsi://host:port/iqn/lun), <source
 * protocol='rbd' name='pool/image'> (rendered rbd:pool/image).
 */
export function parseVirshDomXml(_vmId: string, stdout: string): ListedDisk[] {
  const doc = parser.parse(stdout) as { domain?: { devices?: { disk?: DiskXml[] } } };
  const disks: ListedDisk[] = [];
  for (const d of doc.domain?.devices?.disk ?? []) {
    if (d['@_device'] === 'cdrom' || d['@_device'] === 'floppy') continue;
    const device = d.target?.['@_dev'];
    const target = sourceOf(d);
    if (!device || !target) continue;
    disks.push({ device, target, mode: d.readonly !== undefined ? 'r' : 'w' });
  }
  return disks;
}

function sourceOf(d: DiskXml): string | undefined {
  const s = d.source;
  if (!s) return undefined;
  if (s['@_file']) return s['@_file'];
  if (s['@_dev']) return s['@_dev'];
  // An rbd image: by pool/image alone (the monitors it was reached through may change).
  if (s['@_protocol'] === 'rbd' && s['@_name']) return `rbd:${s['@_name']}`;
  if (s['@_protocol'] && s['@_name']) {
    const h = s.host?.[0];
    const where = h?.['@_name'] ? `${h['@_name']}${h['@_port'] ? `:${h['@_port']}` : ''}` : '';
    return `${s['@_protocol']}://${where}/${s['@_name']}`;
  }
  if (s['@_pool'] && s['@_volume']) return `${s['@_pool']}/${s['@_volume']}`;
  return undefined;
}

export const VIRSH_FORMAT: ListingFormat = { vmIds: parseVirshNames, disks: parseVirshDomXml };
