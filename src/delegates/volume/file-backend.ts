import { existsSync, readdirSync, renameSync, rmSync, statSync, statfsSync, mkdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { join } from 'node:path';
import { VbsError, errorMessage } from '../../core/errors.js';
import { SNAPSHOT_ID, VOLUME_ID } from '../../core/ids.js';
import type { Logger } from '../../core/log.js';
import { CommandFailed, type CommandRunner } from '../../commands/runner.js';
import { UnknownOutcome } from '../../commands/unknown-outcome.js';
import { ChangeFeed } from './changes.js';
import { GiB, type Capacity, type ExportEntry, type StoredObject, type VolumeBackend } from './backend.js';
import { ImageIntake, type ImageFormat, type ImportTerms } from './image-intake.js';

export { GiB, type StoredObject } from './backend.js';

interface Job {
  state: 'creating' | 'error';
  bytes: number;
  message?: string;
  source?: string;
  cancelled?: boolean;
}

/** Limits of a file back end (the `backend` of volume-delegate.json). */
export interface FileBackendLimits {
  /** Caps what this delegate provisions, below what the file system has free. */
  capacityGiB?: number;
  /** Free space kept back: the smaller of this share of the file system… */
  reservePercent?: number;
  /** …and this many GiB. */
  reserveGiB?: number;
  /** Image imports taken at once (each streams to its own file); one more is refused with RequestLimitExceeded. */
  maxImports?: number;
}

/** Imports a volume delegate takes at once unless configured (`maxImports`). */
export const DEFAULT_MAX_IMPORTS = 4;

const OBJECT_FILE = /^((?:vol|snap)-[0-9a-f]{17})\.img$/;

/**
 * Volumes and snapshots as files under one root (VBS-Lustre): `<id>.img`.
 * Copies are written to `.<id>.part` and renamed into place only when whole,
 * so a file that exists under its real name is always complete. Jobs live in
 * memory: after a restart, leftover .part files are removed and the front,
 * which polls, starts the copies again.
 *
 * Provisioned bytes are a running total of the files this delegate knows
 * (`sizes`), counted once at start and kept as objects are made and deleted:
 * listing the folder and stat-ing every file on each create cost more with
 * every volume, and failed when a concurrent delete removed a file between the
 * two. Capacity checks and reservations are synchronous, so two creates can
 * never both take the last free bytes.
 */
export class FileBackend implements VolumeBackend {
  readonly type = 'file';
  readonly changes = new ChangeFeed();
  private readonly jobs = new Map<string, Job>();
  /** Size of each object file in place, and their sum. */
  private readonly sizes = new Map<string, number>();
  private provisioned = 0;
  /** Bytes being added to volumes that grow (ModifyVolume), held against creates meanwhile. */
  private readonly growing = new Map<string, number>();
  private readonly intake: ImageIntake;

  constructor(
    readonly root: string,
    private readonly runner: CommandRunner,
    private readonly log: Logger,
    private readonly limits: FileBackendLimits = {},
  ) {
    mkdirSync(root, { recursive: true });
    this.intake = new ImageIntake(runner, limits.maxImports ?? DEFAULT_MAX_IMPORTS);
    for (const f of readdirSync(root)) {
      if (f.endsWith('.part')) rmSync(join(root, f), { force: true });
      const m = OBJECT_FILE.exec(f);
      if (!m) continue;
      const size = sizeOrUndefined(join(root, f));
      // A file deleted while we count is simply not there.
      if (size !== undefined) this.track(m[1]!, size);
    }
  }

  private track(id: string, size: number): void {
    this.provisioned += size - (this.sizes.get(id) ?? 0);
    this.sizes.set(id, size);
  }

  private untrack(id: string): void {
    this.provisioned -= this.sizes.get(id) ?? 0;
    this.sizes.delete(id);
  }

  pathOf(id: string): string {
    if (!VOLUME_ID.test(id) && !SNAPSHOT_ID.test(id)) throw new VbsError('InvalidParameterValue', 'Value for parameter id is invalid.');
    return join(this.root, `${id}.img`);
  }

  private partOf(id: string): string {
    return join(this.root, `.${id}.img.part`);
  }

  async capacity(): Promise<Capacity> {
    return this.capacityNow();
  }

  private capacityNow(): Capacity {
    const fs = statfsSync(this.root);
    const provisioned = this.provisioned;
    const reserved =
      [...this.jobs.values()].filter((j) => j.state === 'creating').reduce((n, j) => n + j.bytes, 0) + [...this.growing.values()].reduce((n, b) => n + b, 0);
    let total = fs.blocks * fs.bsize;
    let free = Math.max(0, fs.bavail * fs.bsize - this.reserveBytes(total) - reserved);
    if (this.limits.capacityGiB !== undefined) {
      total = Math.min(total, this.limits.capacityGiB * GiB);
      free = Math.min(free, Math.max(0, this.limits.capacityGiB * GiB - provisioned - reserved));
    }
    return { totalBytes: total, freeBytes: free, provisionedBytes: provisioned };
  }

  /** Space of the file system never provisioned (default: 5 % or 10 GiB, whichever is smaller). */
  private reserveBytes(fsBytes: number): number {
    const byShare = Math.floor((fsBytes * (this.limits.reservePercent ?? 5)) / 100);
    return Math.min(byShare, Math.floor((this.limits.reserveGiB ?? 10) * GiB));
  }

  private reserve(id: string, bytes: number, source?: string): boolean {
    if (existsSync(this.pathOf(id))) return false;
    const job = this.jobs.get(id);
    if (job?.state === 'creating') return false;
    if (this.capacityNow().freeBytes < bytes) {
      throw new VbsError('InsufficientCapacity', `There is not enough free space for ${Math.ceil(bytes / GiB)} GiB on this volume delegate.`);
    }
    this.jobs.set(id, { state: 'creating', bytes, source });
    return true;
  }

  async createVolume(volumeId: string, sizeGiB: number, snapshotId?: string): Promise<void> {
    const bytes = sizeGiB * GiB;
    const source = snapshotId ? this.pathOf(snapshotId) : undefined;
    if (source && !existsSync(source)) throw new VbsError('InvalidSnapshot.NotFound', `The snapshot '${snapshotId}' has no data on this volume delegate.`);
    if (!this.reserve(volumeId, bytes, source)) return;
    const part = this.partOf(volumeId);
    this.background(volumeId, async () => {
      if (!source) return void (await this.runner.run('volume.file.create', { path: part, bytes, sizeMiB: sizeGiB * 1024, sizeGiB }));
      await this.runner.run('volume.file.clone', { source, path: part });
      if (statSync(part).size < bytes) await this.runner.run('volume.file.resize', { path: part, bytes });
    });
  }

  async createSnapshot(snapshotId: string, volumeId: string): Promise<void> {
    const source = this.pathOf(volumeId);
    const size = sizeOrUndefined(source);
    if (size === undefined) throw new VbsError('InvalidVolume.NotFound', `The volume '${volumeId}' has no data on this volume delegate.`);
    if (!this.reserve(snapshotId, size, source)) return;
    const part = this.partOf(snapshotId);
    this.background(snapshotId, () => this.runner.run('volume.file.snapshot', { source, path: part }).then(() => undefined));
  }

  /**
   * Grows the volume's file to sizeGiB with volume.file.grow (fallocate keeps
   * what the file holds and only adds space). Looks first and after: a file
   * already that large is done, and a command that failed is done if the file
   * is seen grown. The space is held (synchronously checked) while it grows.
   */
  async growVolume(volumeId: string, sizeGiB: number): Promise<number> {
    const path = this.pathOf(volumeId);
    const bytes = sizeGiB * GiB;
    const before = sizeOrUndefined(path);
    if (before === undefined) {
      if (this.jobs.get(volumeId)?.state === 'creating') throw new VbsError('IncorrectState', `The volume '${volumeId}' is still being created.`);
      throw new VbsError('InvalidVolume.NotFound', `The volume '${volumeId}' has no data on this volume delegate.`);
    }
    if (before >= bytes) return before;
    if (!this.runner.catalog.has('volume.file.grow')) throw new VbsError('OperationFailed', 'This volume delegate cannot grow volumes: its commands.properties has no volume.file.grow.');
    if (this.growing.has(volumeId)) throw new VbsError('IncorrectState', `The volume '${volumeId}' is already growing.`);
    const more = bytes - before;
    if (this.capacityNow().freeBytes < more) {
      throw new VbsError('InsufficientCapacity', `There is not enough free space to grow '${volumeId}' by ${Math.ceil(more / GiB)} GiB on this volume delegate.`);
    }
    this.growing.set(volumeId, more);
    try {
      await this.runner.run('volume.file.grow', { path, bytes });
    } catch (err) {
      const after = sizeOrUndefined(path);
      // Unchanged: a refusal (nothing changed). Changed but short: it acted, so never a refusal; the front retries the ensure.
      if (after !== undefined && after !== before && after < bytes) throw new UnknownOutcome(`grow ${volumeId}`, err instanceof CommandFailed ? [err] : [], 'the file grew only part of the way');
      if (after === undefined || after < bytes) throw err;
      this.log.warn('grow command failed, but the file has grown', { id: volumeId, message: errorMessage(err) });
    } finally {
      this.growing.delete(volumeId);
    }
    const size = sizeOrUndefined(path) ?? bytes;
    this.track(volumeId, size);
    this.log.info('grown', { id: volumeId, from: before, to: size });
    return size;
  }

  /**
   * An uploaded image becomes the snapshot's file: staged beside it
   * (`.<id>.upload.part`, on the same file system, so the last step is a
   * rename), converted to `.<id>.img.part`, renamed into place when whole.
   * Its space is held while it arrives. A failure removes both files; a
   * restart removes any `.part` left by a crash.
   */
  async importImage(snapshotId: string, source: Readable, terms: ImportTerms): Promise<number> {
    // The upload may be cut while this waits for its turn: the intake sees it then (a destroyed stream), never an unhandled error.
    source.on('error', () => undefined);
    const path = this.pathOf(snapshotId);
    const made = sizeOrUndefined(path);
    if (made !== undefined) throw new VbsError('IncorrectState', `The snapshot '${snapshotId}' already has data on this volume delegate.`);
    return this.intake.slot(snapshotId, async () => {
      if (!this.reserve(snapshotId, terms.length ?? Math.min(terms.maxBytes, GiB))) throw new VbsError('IncorrectState', `The snapshot '${snapshotId}' is already being made.`);
      const staging = join(this.root, `.${snapshotId}.upload.part`);
      const part = this.partOf(snapshotId);
      try {
        await this.intake.receive(source, staging, terms);
        const size = await this.intake.toRaw(staging, part, terms.format, terms.maxBytes);
        if (this.jobs.get(snapshotId)?.cancelled) throw new VbsError('IncorrectState', `The snapshot '${snapshotId}' was deleted while it was imported.`);
        renameSync(part, path);
        this.track(snapshotId, size);
        this.log.info('image imported', { id: snapshotId, format: terms.format, bytes: size });
        return size;
      } catch (err) {
        rmSync(part, { force: true });
        rmSync(staging, { force: true });
        throw err;
      } finally {
        this.jobs.delete(snapshotId);
        this.changes.record(snapshotId);
      }
    });
  }

  /** The file itself (raw), or a qcow2 made from it into a staging file removed once read. */
  async openImage(id: string, format: Extract<ImageFormat, 'raw' | 'qcow2'>): Promise<{ body: Readable; length: number }> {
    const path = this.pathOf(id);
    const size = sizeOrUndefined(path);
    if (size === undefined) throw new VbsError(id.startsWith('snap-') ? 'InvalidSnapshot.NotFound' : 'InvalidVolume.NotFound', `'${id}' has no data on this volume delegate.`);
    return this.intake.open(path, size, format, join(this.root, `.${id}.export-${randomBytes(6).toString('hex')}.part`));
  }

  private background(id: string, work: () => Promise<void>): void {
    const part = this.partOf(id);
    void work()
      .then(() => {
        const job = this.jobs.get(id);
        if (job?.cancelled) throw new Error('cancelled');
        const size = statSync(part).size;
        renameSync(part, this.pathOf(id));
        this.track(id, size);
        this.jobs.delete(id);
        this.log.info('created', { id });
        this.changes.record(id);
      })
      .catch((err) => {
        rmSync(part, { force: true });
        const job = this.jobs.get(id);
        if (!job || job.cancelled) return void this.jobs.delete(id);
        const message = err instanceof VbsError ? err.message : 'the copy failed on the volume delegate';
        if (!(err instanceof VbsError)) this.log.error('background copy failed', { id, err });
        else this.log.warn('background copy failed', { id, message: errorMessage(err) });
        this.jobs.set(id, { ...job, state: 'error', message });
        this.changes.record(id);
      });
  }

  async describe(id: string): Promise<StoredObject> {
    return this.describeNow(id);
  }

  private describeNow(id: string): StoredObject {
    const path = this.pathOf(id);
    const size = sizeOrUndefined(path);
    if (size !== undefined) return { id, state: 'ready', sizeBytes: size, progress: 100 };
    const job = this.jobs.get(id);
    if (!job || job.cancelled) return { id, state: 'absent' };
    if (job.state === 'error') return { id, state: 'error', message: job.message };
    return { id, state: 'creating', progress: this.progressOf(id, job) };
  }

  private progressOf(id: string, job: Job): number {
    if (!job.source) return 0;
    try {
      const done = statSync(this.partOf(id)).blocks * 512;
      const total = statSync(job.source).blocks * 512 || 1;
      return Math.min(99, Math.floor((done / total) * 100));
    } catch {
      return 0;
    }
  }

  async list(): Promise<StoredObject[]> {
    const ids = new Set<string>(this.jobs.keys());
    for (const f of readdirSync(this.root)) {
      const m = OBJECT_FILE.exec(f);
      if (m) ids.add(m[1]!);
    }
    return [...ids].sort().map((id) => this.describeNow(id)).filter((o) => o.state !== 'absent');
  }

  /** Idempotent: true when something was there to delete. */
  async delete(id: string): Promise<boolean> {
    const path = this.pathOf(id);
    const job = this.jobs.get(id);
    if (job) {
      if (job.state === 'creating') job.cancelled = true;
      else this.jobs.delete(id);
    }
    if (!existsSync(path)) {
      this.untrack(id);
      return Boolean(job);
    }
    try {
      await this.runner.run('volume.file.delete', { path });
    } catch (err) {
      // Failed or timed out: what counts is whether the file is still there.
      if (existsSync(path)) throw err;
      this.log.warn('delete command failed, but the file is gone', { id, message: errorMessage(err) });
    }
    this.untrack(id);
    return true;
  }

  async exportVolume(volumeId: string): Promise<{ kind: 'file'; path: string }> {
    const path = this.pathOf(volumeId);
    if (!existsSync(path)) throw new VbsError('InvalidVolume.NotFound', `The volume '${volumeId}' has no data on this volume delegate.`);
    return { kind: 'file', path };
  }

  /** A file on the shared file system needs nothing withdrawn. */
  /** A shared file system cannot keep one host out: never fenced. */
  async unexportVolume(volumeId: string): Promise<boolean> {
    this.pathOf(volumeId);
    return false;
  }

  /** Exports of files leave no state on this node: nothing to list. */
  async listExports(): Promise<{ tracked: boolean; exports: ExportEntry[] }> {
    return { tracked: false, exports: [] };
  }
}

/** The size of a file, or undefined when it is not there (deleted meanwhile). */
function sizeOrUndefined(path: string): number | undefined {
  try {
    return statSync(path).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
