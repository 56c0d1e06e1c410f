import { VIRSH_FORMAT } from './libvirt.js';
import { QM_FORMAT } from './proxmox.js';
import { QMP_FORMAT } from './qmp.js';
import type { ListingFormat } from './types.js';
import { XL_FORMAT, XM_FORMAT } from './xen.js';

export type { ListedDisk, ListingFormat } from './types.js';

/** Output formats by name, as `vmm.<adapter>.option.listFormat` names them. */
export const LISTING_FORMATS: Readonly<Record<string, ListingFormat>> = {
  xm: XM_FORMAT,
  xl: XL_FORMAT,
  virsh: VIRSH_FORMAT,
  qm: QM_FORMAT,
  qmp: QMP_FORMAT,
};

/** The shipped adapters' formats, for a commands.properties that does not name one. */
const BY_ADAPTER: Readonly<Record<string, string>> = { sim: 'xm', xen: 'xm', xl: 'xl', libvirt: 'virsh', proxmox: 'qm', qemu: 'qmp' };

export function listingFormatName(adapter: string, configured: string | undefined): string | undefined {
  return configured ?? BY_ADAPTER[adapter];
}
