import { existsSync, readdirSync, renameSync, rmSync, statSync, statfsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { VbsError, errorMessage } from '../../core/errors.js';
import { SNAPSHOT_ID, VOLUME_ID } from '../../core/ids.js';
import type { Logger } from '../../core/log.js';
import type { CommandRunner } from '../../commands/runner.js';
import { GiB, type Capacity, type ExportEntry, type StoredObject, type VolumeBackend } from './backend.js';

export { GiB, type StoredObject } from './backend.js';

interface Job {
  state: 'creating' | 'error';
  bytes: number;
  message?: string;
  source?: string;
  cancelled?: boolean;
}

/**
 * Volumes and snapshots as files under one root (VBS-Lustre): `<id>.img`.
 * Copies are written to `.<id>.part` and renamed into place only when whole,
 * so a file that exists under its real name is always complete. Jobs live in
 * memory: after a restart, leftover .part files are removed and the front,
 * which polls, starts the copies again.
 */
export class FileBackend implements VolumeBackend {
  readonly type = 'file';
  private readonly jobs = new Map<string, Job>();

  constructor(
    readonly root: string,
    private readonly runner: CommandRunner,
    private readonly log: Logger,
    private readonly capacityGiB?: number,
  ) {
    mkdirSync(root, { recursive: true });
    for (const f of readdirSync(root)) {
      if (f.endsWith('.part')) rmSync(join(root, f), { force: true });
    }
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
    const provisioned = this.provisionedBytes();
    const reserved = [...this.jobs.values()].filter((j) => j.state === 'creating').reduce((n, j) => n + j.bytes, 0);
    let total = fs.blocks * fs.bsize;
    let free = Math.max(0, fs.bavail * fs.bsize - reserved);
    if (this.capacityGiB !== undefined) {
      total = Math.min(total, this.capacityGiB * GiB);
      free = Math.min(free, Math.max(0, this.capacityGiB * GiB - provisioned - reserved));
    }
    return { totalBytes: total, freeBytes: free, provisionedBytes: provisioned };
  }

  private provisionedBytes(): number {
    let n = 0;
    for (const f of readdirSync(this.root)) {
      if (f.endsWith('.img')) n += statSync(join(this.root, f)).size;
    }
    return n;
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
    if (!existsSync(source)) throw new VbsError('InvalidVolume.NotFound', `The volume '${volumeId}' has no data on this volume delegate.`);
    if (!this.reserve(snapshotId, statSync(source).size, source)) return;
    const part = this.partOf(snapshotId);
    this.background(snapshotId, () => this.runner.run('volume.file.snapshot', { source, path: part }).then(() => undefined));
  }

  private background(id: string, work: () => Promise<void>): void {
    const part = this.partOf(id);
    void work()
      .then(() => {
        const job = this.jobs.get(id);
        if (job?.cancelled) throw new Error('cancelled');
        renameSync(part, this.pathOf(id));
        this.jobs.delete(id);
        this.log.info('created', { id });
      })
      .catch((err) => {
        rmSync(part, { force: true });
        const job = this.jobs.get(id);
        if (!job || job.cancelled) return void this.jobs.delete(id);
        const message = err instanceof VbsError ? err.message : 'the copy failed on the volume delegate';
        if (!(err instanceof VbsError)) this.log.error('background copy failed', { id, err });
        else this.log.warn('background copy failed', { id, message: errorMessage(err) });
        this.jobs.set(id, { ...job, state: 'error', message });
      });
  }

  async describe(id: string): Promise<StoredObject> {
    return this.describeNow(id);
  }

  private describeNow(id: string): StoredObject {
    const path = this.pathOf(id);
    if (existsSync(path)) return { id, state: 'ready', sizeBytes: statSync(path).size, progress: 100 };
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
      const m = /^((?:vol|snap)-[0-9a-f]{17})\.img$/.exec(f);
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
    if (!existsSync(path)) return Boolean(job);
    await this.runner.run('volume.file.delete', { path });
    return true;
  }

  async exportVolume(volumeId: string): Promise<{ kind: 'file'; path: string }> {
    const path = this.pathOf(volumeId);
    if (!existsSync(path)) throw new VbsError('InvalidVolume.NotFound', `The volume '${volumeId}' has no data on this volume delegate.`);
    return { kind: 'file', path };
  }

  /** A file on the shared file system needs nothing withdrawn. */
  async unexportVolume(volumeId: string): Promise<void> {
    this.pathOf(volumeId);
  }

  /** Exports of files leave no state on this node: nothing to list. */
  async listExports(): Promise<{ tracked: boolean; exports: ExportEntry[] }> {
    return { tracked: false, exports: [] };
  }
}
