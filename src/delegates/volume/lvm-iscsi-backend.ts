import { rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import type { ImageIntake, ImportTerms } from './image-intake.js';
import { SNAPSHOT_ID, VOLUME_ID } from '../../core/ids.js';
import { VbsError, errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { GiB, type Capacity, type ExportEntry, type ExportedVolume, type StoredObject, type VolumeBackend } from './backend.js';
import { ChangeFeed } from './changes.js';
import { ExportRegistry } from './export-registry.js';
import { IscsiExports, volumeNotFound } from './iscsi-exports.js';
import type { TargetTool } from './iscsi-targets.js';
import type { LvInfo, LvmTools } from './lvm-tools.js';
import { Mutex } from '../../core/mutex.js';
import { UnknownOutcome } from '../../commands/unknown-outcome.js';
import { CommandFailed } from '../../commands/runner.js';
import { QueuedCreates, type Queued } from './queued-creates.js';

const MiB = 1024 ** 2;
/** A copy in progress: renamed to the object's id only when whole. */
const PART = 'part.';
/** The lvcreate -s point-in-time source of a snapshot copy; removed after it. */
const COW = 'cow.';
/** A failed copy's temporaries: removal tried this often, waiting a little longer each time. */
const TEMPORARY_REMOVE_ATTEMPTS = 3;
const TEMPORARY_REMOVE_BACKOFF_MS = 500;

export interface LvmIscsiOptions {
  lvm: LvmTools;
  targets: TargetTool;
  iqnPrefix: string;
  portal: string;
  stateDir: string;
  copyChunkMiB: number;
  thinPool?: string;
  capacityGiB?: number;
  /** Image imports (staged in stateDir, then copied into an LV); none: imports are refused. */
  intake?: ImageIntake;
}

interface Job {
  state: 'creating' | 'error';
  message?: string;
  /** Bytes not yet allocated from the VG: held against concurrent creates. */
  reserved: number;
  /** The object this job reads (a volume for a snapshot, a snapshot for a clone). */
  source?: string;
  doneMiB: number;
  totalMiB: number;
  cancelled: boolean;
  done: Promise<void>;
}

class Cancelled extends Error {}

/**
 * The VBS paper's back end: volumes and snapshots are LVs of one volume group
 * (named by their ids), exported as iSCSI targets. Whether an object exists
 * is read from `lvs` every time, so a restart loses nothing but copies in
 * flight, and those leave only `part.`/`cow.` LVs, removed on start (the
 * front sees the object `absent` and starts the copy again).
 *
 * Snapshots outlive their volume (EBS): the lvcreate -s snapshot is only the
 * consistent source of a copy into a standalone LV. With a thin pool,
 * snapshots are thin snapshots instead, independent of their origin.
 */
export class LvmIscsiBackend implements VolumeBackend {
  readonly type = 'lvm-iscsi';
  readonly changes = new ChangeFeed();
  private readonly jobs = new Map<string, Job>();
  /** Capacity checks and LV allocations, one at a time: no over-commit. */
  private readonly space = new Mutex();
  /** Creates waiting for `space`, not yet jobs: a delete must see them too. */
  private readonly queued = new QueuedCreates();
  private readonly exports: IscsiExports;

  private constructor(
    private readonly o: LvmIscsiOptions,
    private readonly log: Logger,
  ) {
    this.exports = new IscsiExports({
      iqnPrefix: o.iqnPrefix,
      portal: o.portal,
      tool: o.targets,
      registry: new ExportRegistry(o.stateDir),
      devicePath: (volumeId) => o.lvm.path(volumeId),
      log,
    });
  }

  /** Opens the back end after removing what copies cut off by a crash left behind. */
  static async open(o: LvmIscsiOptions, log: Logger, retryDelayMs = START_RETRY_DELAY_MS): Promise<LvmIscsiBackend> {
    const b = new LvmIscsiBackend(o, log);
    // Every step is idempotent (it looks first), so a host command that fails
    // once (killed, a busy VG) is tried again rather than failing the start:
    // a delegate that exits on one failed lvremove is restarted into the same
    // failure until its supervisor gives up. A command that keeps failing
    // still fails the start, after START_ATTEMPTS tries.
    for (let attempt = 1; ; attempt++) {
      try {
        for (const lv of await o.lvm.list()) {
          if (!isLeftover(lv.name)) continue;
          log.warn('removing a copy cut off by a restart', { lv: lv.name });
          await o.lvm.remove(lv.name);
        }
        await b.exports.restore(log);
        return b;
      } catch (err) {
        if (attempt >= START_ATTEMPTS) throw err;
        log.warn('starting the back end failed; trying again', { attempt, message: errorMessage(err) });
        await new Promise((r) => setTimeout(r, retryDelayMs));
      }
    }
  }

  private get lvm(): LvmTools {
    return this.o.lvm;
  }

  // ------------------------------------------------------------ capacity

  async capacity(): Promise<Capacity> {
    return this.capacityFrom(await this.lvm.list());
  }

  private async capacityFrom(lvs: LvInfo[]): Promise<Capacity> {
    const reserved = [...this.jobs.values()].reduce((n, j) => n + (j.state === 'creating' ? j.reserved : 0), 0);
    let total: number;
    let provisioned: number;
    let free: number;
    if (this.o.thinPool) {
      // Thin volumes count at full size against the pool: provisioning never over-commits it.
      const pool = lvs.find((l) => l.name === this.o.thinPool);
      if (!pool) throw new VbsError('OperationFailed', `The thin pool ${this.o.thinPool} is not in volume group ${this.lvm.vg}.`);
      total = pool.sizeBytes;
      provisioned = lvs.filter((l) => isOurs(l.name) || isLeftover(l.name)).reduce((n, l) => n + l.sizeBytes, 0);
      free = Math.max(0, total - provisioned - reserved);
    } else {
      const vg = await this.lvm.vgSpace();
      total = vg.sizeBytes;
      provisioned = vg.sizeBytes - vg.freeBytes;
      free = Math.max(0, vg.freeBytes - reserved);
    }
    if (this.o.capacityGiB !== undefined) {
      total = Math.min(total, this.o.capacityGiB * GiB);
      free = Math.min(free, Math.max(0, this.o.capacityGiB * GiB - provisioned - reserved));
    }
    return { totalBytes: total, freeBytes: free, provisionedBytes: provisioned };
  }

  /**
   * Reserves space for a new job, or returns undefined when there is nothing
   * to do (the object exists or is being made: creates are idempotent).
   */
  private reserve(q: Queued, id: string, bytes: number, source?: string): Promise<Job | undefined> {
    return this.space.run(async () => {
      const lvs = await this.lvm.list();
      if (lvs.some((l) => l.name === id)) return undefined;
      if (this.jobs.get(id)?.state === 'creating') return undefined;
      if ((await this.capacityFrom(lvs)).freeBytes < bytes) {
        throw new VbsError('InsufficientCapacity', `There is not enough free space for ${Math.ceil(bytes / GiB)} GiB on this volume delegate.`);
      }
      // Checked after the last await, in the step that makes the job: a delete sees either the job or this.
      if (q.cancelled) throw deletedWhileQueued(id);
      const job: Job = { state: 'creating', reserved: bytes, source, doneMiB: 0, totalMiB: 0, cancelled: false, done: Promise.resolve() };
      this.jobs.set(id, job);
      return job;
    });
  }

  /** Allocates an LV under the space lock, turning its share of the reservation into used space. */
  private allocate(job: Job, bytes: number, make: () => Promise<void>): Promise<void> {
    return this.space.run(async () => {
      if (job.cancelled) throw new Cancelled();
      await make();
      job.reserved = Math.max(0, job.reserved - bytes);
    });
  }

  // ------------------------------------------------------------ create

  createVolume(volumeId: string, sizeGiB: number, snapshotId?: string): Promise<void> {
    return this.queued.track(volumeId, (q) => this.startVolume(q, volumeId, sizeGiB, snapshotId));
  }

  private async startVolume(q: Queued, volumeId: string, sizeGiB: number, snapshotId?: string): Promise<void> {
    const bytes = sizeGiB * GiB;
    let source: LvInfo | undefined;
    if (snapshotId) {
      source = (await this.lvm.list()).find((l) => l.name === snapshotId);
      if (!source) throw new VbsError('InvalidSnapshot.NotFound', `The snapshot '${snapshotId}' has no data on this volume delegate.`);
      if (source.sizeBytes > bytes) {
        throw new VbsError('InvalidParameterValue', `The volume must be at least as large as its snapshot (${Math.ceil(source.sizeBytes / GiB)} GiB).`);
      }
    }
    const job = await this.reserve(q, volumeId, bytes, snapshotId);
    if (!job) return;
    const part = PART + volumeId;
    if (!source || !snapshotId) {
      // One lvcreate is atomic: the LV appears whole under its name, or not at all.
      this.background(volumeId, job, () =>
        this.allocate(job, bytes, () => (this.o.thinPool ? this.lvm.thinCreate(volumeId, this.o.thinPool, bytes) : this.lvm.create(volumeId, bytes))),
      );
      return;
    }
    const snapBytes = source.sizeBytes;
    if (this.o.thinPool) {
      this.background(volumeId, job, async () => {
        await this.allocate(job, bytes, () => this.lvm.thinSnapshot(part, snapshotId));
        if (bytes > snapBytes) await this.lvm.thinResize(part, bytes);
        await this.finish(job, part, volumeId);
      });
      return;
    }
    this.background(volumeId, job, async () => {
      await this.allocate(job, bytes, () => this.lvm.create(part, bytes));
      await this.copy(job, snapshotId, part, snapBytes);
      await this.finish(job, part, volumeId);
    });
  }

  createSnapshot(snapshotId: string, volumeId: string): Promise<void> {
    return this.queued.track(snapshotId, (q) => this.startSnapshot(q, snapshotId, volumeId));
  }

  private async startSnapshot(q: Queued, snapshotId: string, volumeId: string): Promise<void> {
    const volume = (await this.lvm.list()).find((l) => l.name === volumeId);
    if (!volume) throw new VbsError('InvalidVolume.NotFound', `The volume '${volumeId}' has no data on this volume delegate.`);
    const bytes = volume.sizeBytes;
    if (this.o.thinPool) {
      // A thin snapshot is whole at once and independent of its origin.
      const job = await this.reserve(q, snapshotId, bytes, volumeId);
      if (!job) return;
      try {
        await this.allocate(job, bytes, () => this.lvm.thinSnapshot(snapshotId, volumeId));
      } finally {
        if (this.jobs.get(snapshotId) === job) this.jobs.delete(snapshotId);
      }
      return;
    }
    // The copy-on-write snapshot is the point in time: taken before we answer.
    const job = await this.reserve(q, snapshotId, 2 * bytes, volumeId);
    if (!job) return;
    const cow = COW + snapshotId;
    const part = PART + snapshotId;
    try {
      await this.allocate(job, bytes, () => this.lvm.snapshot(cow, volumeId, bytes));
    } catch (err) {
      if (this.jobs.get(snapshotId) === job) this.jobs.delete(snapshotId);
      if (err instanceof Cancelled) return; // deleted meanwhile
      // Nothing half-made stays: a cow. LV whose state could not be told goes now.
      await this.removeTemporaries(snapshotId);
      throw err;
    }
    this.background(snapshotId, job, async () => {
      await this.allocate(job, bytes, () => this.lvm.create(part, bytes));
      await this.copy(job, cow, part, bytes);
      // The source goes first: once renamed, the snapshot is whole and holds nothing of its volume.
      await this.lvm.remove(cow);
      await this.finish(job, part, snapshotId);
    });
  }

  // ------------------------------------------------------------ images

  /**
   * An uploaded image becomes a snapshot LV: staged as a file in the
   * delegate's state folder, checked and made raw (src/delegates/volume/image-intake.ts),
   * then copied into a new `part.` LV in chunks (the copies' dd, its source a
   * file) and renamed when whole. The LV holds whole GiB: an image of another
   * size is exported back zero-padded to its GiB. Any failure removes the
   * files and the part LV, as a failed copy does.
   */
  async importImage(snapshotId: string, source: Readable, terms: ImportTerms): Promise<number> {
    // The upload may be cut while this waits for its turn: the intake sees it then (a destroyed stream), never an unhandled error.
    source.on('error', () => undefined);
    const intake = this.o.intake;
    if (!intake) throw new VbsError('OperationFailed', 'This volume delegate takes no images: it was started without an image intake.');
    if ((await this.lvm.list()).some((l) => l.name === snapshotId)) throw new VbsError('IncorrectState', `The snapshot '${snapshotId}' already has data on this volume delegate.`);
    return intake.slot(snapshotId, () =>
      this.queued.track(snapshotId, async (q) => {
        const job = await this.reserve(q, snapshotId, Math.ceil((terms.length ?? GiB) / GiB) * GiB);
        if (!job) throw new VbsError('IncorrectState', `The snapshot '${snapshotId}' is already being made.`);
        const staging = resolve(join(this.o.stateDir, `.${snapshotId}.upload.part`));
        const raw = resolve(join(this.o.stateDir, `.${snapshotId}.raw.part`));
        const part = PART + snapshotId;
        try {
          await intake.receive(source, staging, terms);
          const size = await intake.toRaw(staging, raw, terms.format, terms.maxBytes);
          const lvBytes = Math.ceil(size / GiB) * GiB;
          await this.allocate(job, lvBytes, () => this.lvm.create(part, lvBytes));
          const to = await this.lvm.path(part);
          job.totalMiB = Math.ceil(size / MiB);
          for (let offset = 0; offset < job.totalMiB; offset += this.o.copyChunkMiB) {
            if (job.cancelled) throw new Cancelled();
            const count = Math.min(this.o.copyChunkMiB, job.totalMiB - offset);
            await this.lvm.copyChunk(raw, to, offset, count);
            job.doneMiB = offset + count;
          }
          await this.finish(job, part, snapshotId);
          this.log.info('image imported', { id: snapshotId, format: terms.format, bytes: lvBytes });
          return lvBytes;
        } catch (err) {
          await this.removeTemporariesPatiently(snapshotId);
          if (err instanceof Cancelled) throw new VbsError('IncorrectState', `The snapshot '${snapshotId}' was deleted while it was imported.`);
          throw err;
        } finally {
          rmSync(staging, { force: true });
          rmSync(raw, { force: true });
          if (this.jobs.get(snapshotId) === job) this.jobs.delete(snapshotId);
          this.changes.record(snapshotId);
        }
      }),
    );
  }

  /** A ready LV's data as an image (its device read directly; qcow2 made in the state folder). */
  async openImage(id: string, format: 'raw' | 'qcow2'): Promise<{ body: Readable; length: number }> {
    const intake = this.o.intake;
    if (!intake) throw new VbsError('OperationFailed', 'This volume delegate gives no images: it was started without an image intake.');
    const lv = (await this.lvm.list()).find((l) => l.name === id);
    if (!lv) throw new VbsError(id.startsWith('snap-') ? 'InvalidSnapshot.NotFound' : 'InvalidVolume.NotFound', `'${id}' has no data on this volume delegate.`);
    const staging = resolve(join(this.o.stateDir, `.${id}.export-${randomBytes(6).toString('hex')}.part`));
    return intake.open(await this.lvm.path(id), lv.sizeBytes, format, staging);
  }

  /** The paper's dd, in chunks: progress to report and a point to stop at between each. */
  private async copy(job: Job, fromLv: string, toLv: string, bytes: number): Promise<void> {
    const [from, to] = [await this.lvm.path(fromLv), await this.lvm.path(toLv)];
    job.totalMiB = Math.ceil(bytes / MiB);
    for (let offset = 0; offset < job.totalMiB; offset += this.o.copyChunkMiB) {
      if (job.cancelled) throw new Cancelled();
      const count = Math.min(this.o.copyChunkMiB, job.totalMiB - offset);
      await this.lvm.copyChunk(from, to, offset, count);
      job.doneMiB = offset + count;
    }
  }

  /** Gives a whole copy its real name: from here on it is ready, whatever happens next. */
  private async finish(job: Job, part: string, id: string): Promise<void> {
    if (job.cancelled) throw new Cancelled();
    await this.lvm.rename(part, id);
    job.source = undefined;
  }

  private background(id: string, job: Job, work: () => Promise<void>): void {
    job.done = work()
      .then(() => {
        if (this.jobs.get(id) === job) this.jobs.delete(id);
        this.log.info('created', { id });
        this.changes.record(id);
      })
      .catch(async (err: unknown) => {
        await this.removeTemporariesPatiently(id);
        if (job.cancelled || err instanceof Cancelled) {
          if (this.jobs.get(id) === job) this.jobs.delete(id);
          return;
        }
        const message = err instanceof VbsError ? err.message : 'the copy failed on the volume delegate';
        if (err instanceof VbsError) this.log.warn('background copy failed', { id, message });
        else this.log.error('background copy failed', { id, err });
        job.state = 'error';
        job.message = message;
        job.reserved = 0;
        this.changes.record(id);
      });
  }

  /** Removes the `part.`/`cow.` LVs of `id`; throws when one could not be removed. */
  private async removeTemporariesOrThrow(id: string): Promise<void> {
    const lvs = await this.lvm.list();
    for (const lv of [PART + id, COW + id]) {
      if (lvs.some((l) => l.name === lv)) await this.lvm.remove(lv);
    }
  }

  private async removeTemporaries(id: string): Promise<void> {
    try {
      await this.removeTemporariesOrThrow(id);
    } catch (err) {
      this.log.warn('could not remove a temporary LV; removed when the object is deleted or on next start', { id, message: errorMessage(err) });
    }
  }

  /**
   * After a failed copy: the command that failed may be failing for a reason
   * that also stops lvremove (a killed or timed-out tool), so try a few times
   * before leaving the LVs to the object's delete or the next start.
   */
  private async removeTemporariesPatiently(id: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.removeTemporariesOrThrow(id);
      } catch (err) {
        if (attempt >= TEMPORARY_REMOVE_ATTEMPTS) {
          this.log.warn('could not remove a temporary LV; removed when the object is deleted or on next start', { id, message: errorMessage(err) });
          return;
        }
        await new Promise((r) => setTimeout(r, TEMPORARY_REMOVE_BACKOFF_MS * attempt));
      }
    }
  }

  // ------------------------------------------------------------ grow

  /**
   * ModifyVolume: lvextend under the space lock (capacity checked first, so a
   * grow never takes space a create holds), then the volume's target, if it
   * is exported, serves the new size. Both halves look first, so a retry after
   * any failure does only what is missing.
   */
  async growVolume(volumeId: string, sizeGiB: number): Promise<number> {
    const bytes = sizeGiB * GiB;
    if (!this.lvm.canExtend) throw new VbsError('OperationFailed', 'This volume delegate cannot grow volumes: its commands.properties has no volume.lvm.resize.');
    const size = await this.space.run(async () => {
      const lvs = await this.lvm.list();
      const lv = lvs.find((l) => l.name === volumeId);
      if (!lv) {
        if (this.jobs.get(volumeId)?.state === 'creating') throw new VbsError('IncorrectState', `The volume '${volumeId}' is still being created.`);
        throw volumeNotFound(volumeId);
      }
      if (lv.sizeBytes >= bytes) return lv.sizeBytes;
      const reader = [...this.jobs.values()].some((j) => j.state === 'creating' && !j.cancelled && j.source === volumeId);
      if (reader) throw new VbsError('IncorrectState', `The volume '${volumeId}' cannot grow while a snapshot of it is being copied.`);
      if ((await this.capacityFrom(lvs)).freeBytes < bytes - lv.sizeBytes) {
        throw new VbsError('InsufficientCapacity', `There is not enough free space to grow '${volumeId}' by ${Math.ceil((bytes - lv.sizeBytes) / GiB)} GiB on this volume delegate.`);
      }
      await this.lvm.extend(volumeId, bytes);
      this.log.info('grown', { id: volumeId, from: lv.sizeBytes, to: bytes });
      return bytes;
    });
    try {
      await this.exports.refreshSize(volumeId, size);
    } catch (err) {
      // The LV has grown: whatever stopped the target's refresh, this call
      // changed something, so it is never answered as a refusal. The front
      // retries the ensure (the LV is then done, the refresh tried again).
      if (err instanceof UnknownOutcome) throw err;
      const failed = err instanceof CommandFailed ? [err] : [];
      throw new UnknownOutcome(`grow ${volumeId}`, failed, 'the LV has grown, but its target could not be made to serve the new size yet');
    }
    return size;
  }

  // ------------------------------------------------------------ describe, delete

  // The jobs are read before the listing: a copy that finishes in between is
  // then still a job (creating), never missing from both (absent), which the
  // front would take for a lost object.
  async describe(id: string): Promise<StoredObject> {
    const jobs = this.jobsNow();
    return this.describeFrom(id, await this.lvm.list(), jobs);
  }

  /** The jobs as they are now, copied (a job's fields change as its copy goes on). */
  private jobsNow(): Map<string, Job> {
    return new Map([...this.jobs].map(([id, job]) => [id, { ...job }]));
  }

  private describeFrom(id: string, lvs: LvInfo[], jobs: Map<string, Job>): StoredObject {
    const lv = lvs.find((l) => l.name === id);
    if (lv) return { id, state: 'ready', sizeBytes: lv.sizeBytes, progress: 100 };
    const job = jobs.get(id);
    if (!job || job.cancelled) return { id, state: 'absent' };
    if (job.state === 'error') return { id, state: 'error', message: job.message };
    const progress = job.totalMiB ? Math.min(99, Math.floor((job.doneMiB / job.totalMiB) * 100)) : 0;
    return { id, state: 'creating', progress };
  }

  async list(): Promise<StoredObject[]> {
    const jobs = this.jobsNow();
    const lvs = await this.lvm.list();
    const ids = new Set<string>([...jobs.keys(), ...lvs.map((l) => l.name).filter(isOurs)]);
    return [...ids].sort().map((id) => this.describeFrom(id, lvs, jobs)).filter((o) => o.state !== 'absent');
  }

  async delete(id: string): Promise<boolean> {
    const reader = [...this.jobs.entries()].find(([, j]) => j.state === 'creating' && !j.cancelled && j.source === id);
    if (reader) {
      const what = id.startsWith('vol-') ? 'a snapshot of it is being copied' : 'a volume is being created from it';
      throw new VbsError('IncorrectState', `'${id}' cannot be deleted while ${what} (${reader[0]}).`);
    }
    // A create still waiting for the space lock makes nothing now (see QueuedCreates).
    const queued = this.queued.cancel(id);
    const job = this.jobs.get(id);
    if (job) {
      job.cancelled = true;
      await job.done;
      if (this.jobs.get(id) === job) this.jobs.delete(id);
    }
    // A failed copy may have left its temporaries (see removeTemporariesPatiently):
    // they go with the object, and a delete that cannot remove them fails, to be retried.
    await this.removeTemporariesOrThrow(id);
    if (VOLUME_ID.test(id)) await this.exports.withdrawAll(id);
    if (!(await this.lvm.list()).some((l) => l.name === id)) return Boolean(job) || queued;
    await this.lvm.remove(id);
    return true;
  }

  // ------------------------------------------------------------ exports

  async exportVolume(volumeId: string, vmmHost: string, chapSecret?: string): Promise<ExportedVolume> {
    if (!(await this.lvm.list()).some((l) => l.name === volumeId)) throw volumeNotFound(volumeId);
    return this.exports.export(volumeId, vmmHost, chapSecret);
  }

  async unexportVolume(volumeId: string, vmmHost: string): Promise<boolean> {
    return this.exports.unexport(volumeId, vmmHost);
  }

  async listExports(): Promise<{ tracked: boolean; exports: ExportEntry[] }> {
    return { tracked: true, exports: await this.exports.list() };
  }
}

/** A create's answer when a delete cancelled it before it reserved anything: refused, nothing made. */
function deletedWhileQueued(id: string): VbsError {
  return new VbsError('IncorrectState', `'${id}' was deleted before its create started; nothing was made.`);
}

function isOurs(name: string): boolean {
  return VOLUME_ID.test(name) || SNAPSHOT_ID.test(name);
}

/** Tries at start-up before the delegate gives up (see open). */
const START_ATTEMPTS = 3;
const START_RETRY_DELAY_MS = 1_000;

function isLeftover(name: string): boolean {
  return (name.startsWith(PART) || name.startsWith(COW)) && isOurs(name.slice(name.indexOf('.') + 1));
}
