/** A disk as a hypervisor's listing shows it, before VBS recognises a volume in it. */
export interface ListedDisk {
  /** The device name in the VM, as AttachDisk takes it (xvdb, sdb, scsi1). */
  device: string;
  /** The file or host device behind the disk, as the tool names it. */
  target: string;
  mode: 'r' | 'w';
  /**
   * Only part of a disk is there: it holds the image but the VM does not see
   * it (a QEMU block node whose device was never added). Never an attach that
   * is done; a detach removes it.
   */
  partial?: true;
}

/** How one tool family prints its VMs and their disks. */
export interface ListingFormat {
  /** The VM ids in the output of the adapter's list-vms pattern. */
  vmIds(stdout: string): string[];
  /** The disks of `vmId` in the output of the adapter's list-disks pattern. */
  disks(vmId: string, stdout: string): ListedDisk[];
}
