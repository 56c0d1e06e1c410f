/**
 * What a Volume Delegate needs from a storage back end. The SOAP operations
 * (src/services/volume-delegate.ts) map one to one onto these methods; every
 * method is idempotent, so the front may retry and recover freely.
 */
import type { Readable } from 'node:stream';
import type { ChangeFeed } from './changes.js';
import type { ImageFormat, ImportTerms } from './image-intake.js';

export const GiB = 1024 ** 3;

export type ObjectState = 'absent' | 'creating' | 'ready' | 'error';

export interface StoredObject {
  id: string;
  state: ObjectState;
  message?: string;
  sizeBytes?: number;
  progress?: number;
}

export interface Capacity {
  totalBytes: number;
  freeBytes: number;
  provisionedBytes: number;
}

/** How a VMM host reaches a volume (the disk source record of src/services/disk-source.ts). */
/** `initiator`: the name the target admits for the host (only when the target fences hosts). */
/** `chapUser`/`chapSecret`: the export's CHAP account, when the target requires one (src/core/chap.ts). */
export type ExportedVolume =
  | { kind: 'file'; path: string }
  | { kind: 'iscsi'; portal: string; iqn: string; lun: number; initiator?: string; chapUser?: string; chapSecret?: string }
  /** The hypervisor opens the image itself with the export's own cephx client (src/core/rbd-export.ts). */
  | { kind: 'rbd'; pool: string; image: string; monitors: string; cephUser: string; cephKey: string };

/** One export in place, as ListExports reports it. */
export interface ExportEntry {
  volumeId: string;
  vmmHost?: string;
  kind: 'file' | 'iscsi' | 'rbd';
  iqn?: string;
  /** rbd: how many clients have the image open (`rbd status`). */
  watchers?: number;
  tid?: number;
  lun?: number;
}

export interface VolumeBackend {
  /** The name GetCapacity reports (`file`, `lvm-iscsi`). */
  readonly type: string;
  /** Objects that finished being made (ready or failed), for WaitObjects and quick answers to creates. */
  readonly changes: ChangeFeed;
  capacity(): Promise<Capacity>;
  /** Checks capacity, then creates in the background (blank or from a snapshot). */
  createVolume(volumeId: string, sizeGiB: number, snapshotId?: string): Promise<void>;
  /** Checks capacity, then copies the volume to a snapshot in the background. */
  createSnapshot(snapshotId: string, volumeId: string): Promise<void>;
  describe(id: string): Promise<StoredObject>;
  list(): Promise<StoredObject[]>;
  /**
   * Ensures a ready volume holds at least sizeGiB, keeping its data (never
   * shrinks); an export in place serves the new size. Returns the bytes it
   * holds. Refuses (nothing changed) a volume that is absent or still being
   * made, or space that is not there.
   */
  growVolume(volumeId: string, sizeGiB: number): Promise<number>;
  /** Deletes if present, ending any copy in progress; true when there was something. */
  delete(id: string): Promise<boolean>;
  /** `chapSecret`: the front's proposal for a target that requires CHAP (others ignore it). */
  exportVolume(volumeId: string, vmmHost: string, chapSecret?: string): Promise<ExportedVolume>;
  /** True when the host was verified kept out (the target withdrawn, or the host off its ACL with no connection left). */
  unexportVolume(volumeId: string, vmmHost: string): Promise<boolean>;
  /** tracked is false when exports leave no state to list (files on a shared file system). */
  listExports(): Promise<{ tracked: boolean; exports: ExportEntry[] }>;
  /**
   * Streams an uploaded image into a new snapshot (absent on back ends that
   * cannot yet: their delegate refuses imports). Shown `creating` while it
   * runs; on any failure nothing of it is left. Returns the snapshot's bytes.
   */
  importImage?(snapshotId: string, source: Readable, terms: ImportTerms): Promise<number>;
  /** A ready volume's or snapshot's data as an image of `format`, to be read once (its staging file goes when it is read or destroyed). */
  openImage?(id: string, format: Extract<ImageFormat, 'raw' | 'qcow2'>): Promise<{ body: Readable; length: number }>;
}
