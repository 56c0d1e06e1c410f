/** EBS state names (DESIGN.md). Transient states must never survive recovery. */
export const VOLUME_STATES = ['creating', 'available', 'in-use', 'deleting', 'error'] as const;
export type VolumeState = (typeof VOLUME_STATES)[number];

export const SNAPSHOT_STATES = ['pending', 'completed', 'deleting', 'error'] as const;
export type SnapshotState = (typeof SNAPSHOT_STATES)[number];

export const ATTACHMENT_STATES = ['attaching', 'attached', 'detaching'] as const;
export type AttachmentState = (typeof ATTACHMENT_STATES)[number];

export const ATTACH_MODES = ['r', 'w'] as const;
export type AttachMode = (typeof ATTACH_MODES)[number];

export const TRANSIENT_VOLUME_STATES: readonly VolumeState[] = ['creating', 'deleting'];
export const TRANSIENT_SNAPSHOT_STATES: readonly SnapshotState[] = ['pending', 'deleting'];
export const TRANSIENT_ATTACHMENT_STATES: readonly AttachmentState[] = ['attaching', 'detaching'];

/**
 * Read-only sharing rule (VBS-Lustre 4.3): a volume attached read-write has exactly
 * one attachment; read-only attachments may be many. Returns why a new attachment
 * in `mode` conflicts with the existing ones, or null when it may go ahead.
 */
export function attachConflict(existingModes: readonly AttachMode[], mode: AttachMode): string | null {
  if (existingModes.length === 0) return null;
  if (existingModes.includes('w')) return 'the volume is attached read-write to another VM';
  if (mode === 'w') return 'the volume is attached read-only; a read-write attachment must be the only one';
  return null;
}
