import type { SnapshotRow, VolumeRow } from '../db/metadata.js';

/**
 * What a create tells its volume delegate to keep in the record beside the
 * data (src/delegates/volume/object-records.ts): the owner, and the time and
 * zone the metadata gave the row, so that `vbs admin rebuild` can put the
 * row back as it was. Size, source snapshot and source volume go in the
 * create's own parameters.
 */
export function volumeRecordFields(row: VolumeRow | undefined): { owner?: string; createdAt?: string; zone?: string } {
  if (!row) return {};
  return { owner: row.owner, createdAt: row.create_time, ...(row.availability_zone ? { zone: row.availability_zone } : {}) };
}

export function snapshotRecordFields(row: SnapshotRow | undefined): { owner?: string; createdAt?: string; sizeGiB?: number } {
  if (!row) return {};
  return { owner: row.owner, createdAt: row.create_time, sizeGiB: row.size_gib };
}
