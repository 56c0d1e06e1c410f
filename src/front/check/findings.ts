import type { SnapshotState, VolumeState } from '../../core/states.js';

/**
 * What a consistency check can find. Each kind names one way the metadata and
 * what the delegates report can differ; docs/operators/check-repair.md says
 * what each means and which ones --repair fixes.
 */
export const FINDING_KINDS = [
  'unreachable',
  'missing-data',
  'orphan-object',
  'state-mismatch',
  'stuck-state',
  'orphan-export',
  'missing-export',
  'missing-disk',
  'orphan-disk',
  'mode-mismatch',
  'device-mismatch',
  'leftover',
] as const;
export type FindingKind = (typeof FINDING_KINDS)[number];

/** A finding as the WSDL's Finding record. */
export interface Finding {
  kind: FindingKind;
  resource: string;
  location: string;
  detail: string;
  repaired: boolean;
}

/**
 * A repair the check may attempt. Each is planned from what was observed and
 * checked again against the metadata (compare-and-swap, no workflow running)
 * when it is applied, so a request that raced the check wins.
 */
export type Fix =
  /** A volume row's status, when the storage proves the new one. */
  | { type: 'volume-status'; id: string; from: VolumeState; to: VolumeState; message?: string; needsNoAttachments?: boolean }
  | { type: 'snapshot-status'; id: string; from: SnapshotState; to: SnapshotState; message?: string }
  /** A delete that stopped after the data went: the row follows the data. */
  | { type: 'finish-delete'; target: 'volume' | 'snapshot'; id: string }
  /** An attachment stuck attaching/detaching: to attached when its disk is on the VM, else gone. */
  | { type: 'settle-attachment'; volumeId: string; vmmHost: string; vmId: string; from: 'attaching' | 'detaching'; onVm: boolean; hostHoldsVolume: boolean; delegate: string }
  /** An export that no attachment needs and no VM on its host uses. */
  | { type: 'unexport'; delegate: string; volumeId: string; vmmHost: string }
  /** The export of an attached volume went missing. */
  | { type: 'reexport'; delegate: string; volumeId: string; vmmHost: string; vmId: string }
  /** An attachment to a VM its host no longer lists (destroyed, migrated away): it holds nothing, so the attachment is detached. */
  | { type: 'detach-gone-vm'; volumeId: string; vmmHost: string; vmId: string }
  /** A VM still holds a deleted volume whose data is gone: nothing to lose, and it must not write on. */
  | { type: 'detach-stray'; vmmHost: string; vmId: string; device: string; volumeId: string }
  /**
   * Data the metadata never issued an id for (made after the backup it was
   * restored from, or the database is new: `vbs admin rebuild`), whose
   * delegate recorded its owner and size: its row is put back from the record.
   */
  | { type: 'adopt-object'; delegate: string; id: string; record: AdoptableRecord }
  /** A disk on a VM of a volume VBS knows (or adopts) with no attachment: the attachment is recorded as the VM holds it. */
  | { type: 'adopt-attachment'; volumeId: string; vmmHost: string; vmId: string; device: string; mode: 'r' | 'w' };

/** A delegate's record of an object, with the size settled (src/delegates/volume/object-records.ts). */
export interface AdoptableRecord {
  owner: string;
  sizeGiB: number;
  createdAt: string;
  snapshotId?: string;
  volumeId?: string;
  zone?: string;
}

/** Adoptions first (snapshots, then volumes that may come from them, then attachments of those volumes), then the rest as found. */
export function repairOrder(s: Suspect): number {
  if (s.fix?.type === 'adopt-object') return s.fix.id.startsWith('snap-') ? 0 : 1;
  if (s.fix?.type === 'adopt-attachment') return 2;
  return 3;
}

/** A finding before it is confirmed and repaired. */
export interface Suspect extends Omit<Finding, 'repaired'> {
  fix?: Fix;
  /** Two observations agree on a difference when their identities match; default kind|resource|location. */
  identity?: string;
}

export function identityOf(s: Suspect): string {
  return s.identity ?? `${s.kind}|${s.resource}|${s.location}`;
}

/** Attachments are named by volume and VM; the host is the location. */
export function attachmentName(volumeId: string, vmId: string): string {
  return `${volumeId}/${vmId}`;
}

export function sortFindings<T extends Pick<Finding, 'kind' | 'resource' | 'location'>>(list: T[]): T[] {
  return list.sort((a, b) => a.kind.localeCompare(b.kind) || a.resource.localeCompare(b.resource) || a.location.localeCompare(b.location));
}
