import { VbsError } from '../core/errors.js';
import type { VbsApi } from './api.js';
import { CliFailure } from './errors.js';
import { attachmentLabel } from './format.js';
import type { Progress } from './progress.js';
import { sameAttachment, type Attachment, type Snapshot, type Volume } from './records.js';

export const DEFAULT_WAIT_SECONDS = 600;
/** Short first, so quick operations return quickly; capped, so long ones do not hammer the front. */
export const POLL_FIRST_MS = 250;
export const POLL_MAX_MS = 2_000;

export interface WaitOptions {
  readonly timeoutMs: number;
  readonly sleep: (ms: number) => Promise<void>;
  readonly now: () => number;
  readonly progress: Progress;
}

/**
 * Probes until `settled`, showing each state, with an interval that doubles
 * from 250 ms to 2 s; gives up (exit 1) once `timeoutMs` has passed.
 */
export async function pollUntil<T>(
  opts: WaitOptions,
  what: string,
  probe: () => Promise<T>,
  settled: (state: T) => boolean,
  show: (state: T) => string,
): Promise<T> {
  const deadline = opts.now() + opts.timeoutMs;
  let interval = POLL_FIRST_MS;
  try {
    for (;;) {
      const state = await probe();
      opts.progress.update(show(state));
      if (settled(state)) return state;
      const left = deadline - opts.now();
      if (left <= 0) throw new CliFailure(`timed out after ${opts.timeoutMs / 1000} s waiting for ${what} (${show(state)}).`);
      await opts.sleep(Math.min(interval, left));
      interval = Math.min(interval * 2, POLL_MAX_MS);
    }
  } finally {
    opts.progress.finish();
  }
}

/** Until the volume is in one of `until`, or in error. */
export function waitForVolume(api: VbsApi, opts: WaitOptions, volumeId: string, until: readonly string[]): Promise<Volume> {
  return pollUntil(
    opts,
    `${volumeId} to be ${until.join(' or ')}`,
    () => describeVolume(api, volumeId),
    (v) => until.includes(v.status) || v.status === 'error',
    (v) => `${volumeId}: ${v.status}`,
  );
}

/** Until the snapshot is in one of `until`, or in error. */
export function waitForSnapshot(api: VbsApi, opts: WaitOptions, snapshotId: string, until: readonly string[]): Promise<Snapshot> {
  return pollUntil(
    opts,
    `${snapshotId} to be ${until.join(' or ')}`,
    () => describeSnapshot(api, snapshotId),
    (s) => until.includes(s.status) || s.status === 'error',
    (s) => `${snapshotId}: ${s.status} ${s.progress}%`,
  );
}

/** Until DescribeVolumes says InvalidVolume.NotFound (null), or the volume is in error. */
export function waitForVolumeGone(api: VbsApi, opts: WaitOptions, volumeId: string): Promise<Volume | null> {
  return pollUntil(
    opts,
    `${volumeId} to be deleted`,
    () => orNullIfNotFound(describeVolume(api, volumeId), 'InvalidVolume.NotFound'),
    (v) => v === null || v.status === 'error',
    (v) => `${volumeId}: ${v ? v.status : 'deleted'}`,
  );
}

/** Until DescribeSnapshots says InvalidSnapshot.NotFound (null), or the snapshot is in error. */
export function waitForSnapshotGone(api: VbsApi, opts: WaitOptions, snapshotId: string): Promise<Snapshot | null> {
  return pollUntil(
    opts,
    `${snapshotId} to be deleted`,
    () => orNullIfNotFound(describeSnapshot(api, snapshotId), 'InvalidSnapshot.NotFound'),
    (s) => s === null || s.status === 'error',
    (s) => `${snapshotId}: ${s ? s.status : 'deleted'}`,
  );
}

export interface AttachmentState {
  readonly volume: Volume;
  /** Undefined once the volume no longer has this VM's attachment. */
  readonly attachment?: Attachment;
}

/** Until the attachment is attached, has gone (the attach failed), or the volume is in error. */
export function waitForAttached(api: VbsApi, opts: WaitOptions, target: Attachment): Promise<AttachmentState> {
  return pollUntil(
    opts,
    `${target.volumeId} to be attached to ${target.vmId}@${target.vmmHost}`,
    () => describeAttachment(api, target),
    (s) => !s.attachment || s.attachment.status === 'attached' || s.volume.status === 'error',
    (s) => showAttachment(target, s),
  );
}

/** Until the attachment has gone, or the volume is in error. */
export function waitForDetached(api: VbsApi, opts: WaitOptions, target: Attachment): Promise<AttachmentState> {
  return pollUntil(
    opts,
    `${target.volumeId} to be detached from ${target.vmId}@${target.vmmHost}`,
    () => describeAttachment(api, target),
    (s) => !s.attachment || s.volume.status === 'error',
    (s) => showAttachment(target, s),
  );
}

async function describeVolume(api: VbsApi, volumeId: string): Promise<Volume> {
  const [volume] = await api.describeVolumes([volumeId]);
  if (!volume) throw new VbsError('InvalidVolume.NotFound', `The volume ${volumeId} does not exist.`);
  return volume;
}

async function describeSnapshot(api: VbsApi, snapshotId: string): Promise<Snapshot> {
  const [snapshot] = await api.describeSnapshots([snapshotId]);
  if (!snapshot) throw new VbsError('InvalidSnapshot.NotFound', `The snapshot ${snapshotId} does not exist.`);
  return snapshot;
}

async function describeAttachment(api: VbsApi, target: Attachment): Promise<AttachmentState> {
  const volume = await describeVolume(api, target.volumeId);
  const attachment = (volume.attachments ?? []).find((a) => sameAttachment(a, target));
  return attachment ? { volume, attachment } : { volume };
}

function showAttachment(target: Attachment, s: AttachmentState): string {
  const where = s.attachment ? attachmentLabel(s.attachment) : `no attachment to ${target.vmId}@${target.vmmHost}`;
  return `${target.volumeId}: ${where}`;
}

async function orNullIfNotFound<T>(probe: Promise<T>, notFound: string): Promise<T | null> {
  try {
    return await probe;
  } catch (err) {
    if (err instanceof VbsError && err.code === notFound) return null;
    throw err;
  }
}
