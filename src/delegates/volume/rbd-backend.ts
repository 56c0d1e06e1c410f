import { SNAPSHOT_ID, VOLUME_ID } from '../../core/ids.js';
import { VbsError, errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { Mutex } from '../../core/mutex.js';
import { GiB, type Capacity, type ExportEntry, type ExportedVolume, type StoredObject, type VolumeBackend } from './backend.js';
import { ChangeFeed } from './changes.js';
import { QueuedCreates, type Queued } from './queued-creates.js';
import { RBD_EXIT, exitCodeOf, type RbdPool, type RbdSnap, type RbdSpace, type RbdTools } from './rbd-tools.js';
import { randomBytes } from 'node:crypto';
import { createReadStream, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { ImageIntake, ImportTerms } from './image-intake.js';
import * as v from '../../core/validate.js';
import { cephUserOf, monitorsOf, osdCapsFor, type ImageIds } from '../../core/rbd-export.js';

/** An image being made (blank, or a clone being grown and flattened): renamed to its id only when whole. */
const PART = 'part.';
/** A deleted volume or snapshot kept because what it holds is still read (see the class comment). */
const GONE = 'gone.';
/** Rounds of the clean-up sweep: each frees what the one before made free (a chain of clones). */
const MAX_SWEEP_ROUNDS = 64;
/** Parents an export's caps name at most (a chain is flattened far sooner: maxCloneDepth). */
const MAX_PARENTS = 64;

export interface RbdBackendOptions {
  tools: RbdTools;
  /** Caps what this delegate provisions; without it, the pool's size as the cluster reports it. */
  capacityGiB?: number;
  /** A volume made from a snapshot is flattened (made independent) when its chain of parents is deeper. */
  maxCloneDepth: number;
  /** The cluster's ceph.conf: exports name its monitors. */
  cephConf?: string;
  /**
   * Image import and export (docs/images.md): uploads are staged, checked
   * and made raw in `stagingDir` (a local folder of this host), then
   * imported into the pool; exports are written there before they are sent.
   * None: the delegate takes and gives no images.
   */
  images?: { intake: ImageIntake; stagingDir: string };
}

interface Job {
  state: 'creating' | 'error';
  message?: string;
  /** Bytes held against concurrent creates until the image exists. */
  reserved: number;
  /** The object this job reads: the snapshot a clone is made from, the volume a snapshot is of. */
  source?: string;
  cancelled: boolean;
  done: Promise<void>;
}

class Cancelled extends Error {}

/**
 * Volumes on Ceph RBD: one image per volume in one pool, named by its id.
 * A snapshot is an RBD snapshot of its volume's image, protected so that
 * volumes can be cloned from it; a volume from a snapshot is an RBD clone:
 * O(1) at any size, sharing the snapshot's data until it is written.
 *
 * EBS order, by deferred delete (nothing is copied, nothing waits):
 * - a volume with snapshots is renamed `gone.<id>` instead of removed: it is
 *   no longer a volume, but its snapshots stay readable and clonable;
 * - a snapshot that clones still read is renamed `gone.<id>` (still
 *   protected) instead of removed: it is no longer a snapshot;
 * - after every delete, and at start, a sweep removes each `gone.` snapshot
 *   that has no clone left and each `gone.` image that has no snapshot left,
 *   round after round, so a chain frees itself from the end.
 * Flattening every clone instead would copy a whole volume on each delete of
 * a snapshot (minutes for large volumes, and the space of every copy); RBD's
 * trash (clone format 2) needs `set-require-min-compat-client mimic` on the
 * cluster, which VBS must not decide for an existing cluster. The names keep
 * the deferred state in the cluster itself: a restart, or another delegate
 * on the pool, sees exactly what is pending.
 *
 * Every command runs through RbdTools, which looks at the pool when a
 * command fails or times out; a look that fails too is an unknown outcome.
 */
export class RbdBackend implements VolumeBackend {
  readonly type = 'rbd';
  readonly changes = new ChangeFeed();
  private readonly jobs = new Map<string, Job>();
  /** Decisions that read the pool and then change it (reserve, make, delete, sweep): one at a time. */
  private readonly lock = new Mutex();
  private readonly queued = new QueuedCreates();
  private recovered = false;

  private constructor(
    private readonly o: RbdBackendOptions,
    private readonly log: Logger,
  ) {}

  /**
   * Opens the back end and tidies what a restart cut off. A cluster that is
   * down does not stop the delegate from starting: the tidying is tried
   * again before the next change.
   */
  static async open(o: RbdBackendOptions, log: Logger): Promise<RbdBackend> {
    if (o.images) {
      // Uploads and exports a restart cut off: their files are only ever `.part`.
      mkdirSync(o.images.stagingDir, { recursive: true });
      for (const f of readdirSync(o.images.stagingDir)) if (f.endsWith('.part')) rmSync(join(o.images.stagingDir, f), { force: true });
    }
    const b = new RbdBackend(o, log);
    await b.recover().catch((err) => log.warn('could not tidy the rbd pool at start; tried again before the next change', { message: errorMessage(err) }));
    return b;
  }

  private get tools(): RbdTools {
    return this.o.tools;
  }

  /**
   * A restart loses the jobs in memory: `part.` images are removed (the front
   * sees the object absent and asks again), a snapshot taken but not yet
   * protected is protected (its point in time was already taken, so it rolls
   * forward), and `gone.` objects nothing reads are removed.
   */
  private async recover(): Promise<void> {
    if (this.recovered) return;
    await this.lock.run(async () => {
      if (this.recovered) return;
      const pool = await this.tools.list();
      for (const name of pool.images.keys()) {
        if (!name.startsWith(PART)) continue;
        this.log.warn('removing an image cut off by a restart', { image: name });
        await this.tools.rm(name);
      }
      for (const s of pool.snaps) {
        if (!SNAPSHOT_ID.test(s.name) || s.protected || this.jobs.has(s.name)) continue;
        this.log.warn('protecting a snapshot whose protect a restart cut off', { snapshot: s.name });
        await this.tools.protect(s.image, s.name);
      }
      await this.sweep();
      this.recovered = true;
    });
  }

  // ------------------------------------------------------------ capacity

  async capacity(): Promise<Capacity> {
    const [pool, space] = await Promise.all([this.tools.list(), this.tools.space()]);
    return this.capacityFrom(pool, space);
  }

  /**
   * Images are thin, but count at their full size: provisioning never
   * promises more than the pool can hold (capacityGiB may promise more).
   * Snapshots and clones share data and count nothing until written.
   */
  private capacityFrom(pool: RbdPool, space: RbdSpace): Capacity {
    let provisioned = 0;
    for (const image of pool.images.values()) provisioned += image.sizeBytes;
    const reserved = [...this.jobs.values()].reduce((n, j) => n + (j.state === 'creating' ? j.reserved : 0), 0);
    const total = this.o.capacityGiB !== undefined ? this.o.capacityGiB * GiB : space.storedBytes + space.maxAvailBytes;
    return { totalBytes: total, freeBytes: Math.max(0, total - provisioned - reserved), provisionedBytes: provisioned };
  }

  // ------------------------------------------------------------ create

  createVolume(volumeId: string, sizeGiB: number, snapshotId?: string): Promise<void> {
    return this.queued.track(volumeId, (q) => this.startVolume(q, volumeId, sizeGiB, snapshotId));
  }

  private async startVolume(q: Queued, volumeId: string, sizeGiB: number, snapshotId?: string): Promise<void> {
    await this.recover();
    const bytes = sizeGiB * GiB;
    const started = await this.lock.run(async () => {
      const pool = await this.tools.list();
      if (pool.images.has(volumeId) || this.jobs.get(volumeId)?.state === 'creating') return undefined;
      let source: RbdSnap | undefined;
      if (snapshotId) {
        source = findSnap(pool, snapshotId);
        if (!source || !source.protected) throw new VbsError('InvalidSnapshot.NotFound', `The snapshot '${snapshotId}' has no data on this volume delegate.`);
        if (source.sizeBytes > bytes) {
          throw new VbsError('InvalidParameterValue', `The volume must be at least as large as its snapshot (${Math.ceil(source.sizeBytes / GiB)} GiB).`);
        }
      }
      if (this.capacityFrom(pool, await this.tools.space()).freeBytes < bytes) {
        throw new VbsError('InsufficientCapacity', `There is not enough free space for ${sizeGiB} GiB on this volume delegate.`);
      }
      // After the last await, in the step that makes the job: a delete sees either the job or this.
      if (q.cancelled) throw new VbsError('IncorrectState', `'${volumeId}' was deleted before its create started; nothing was made.`);
      const job: Job = { state: 'creating', reserved: bytes, source: snapshotId, cancelled: false, done: Promise.resolve() };
      this.jobs.set(volumeId, job);
      return { job, source };
    });
    if (!started) return;
    const { job, source } = started;
    const part = PART + volumeId;
    this.background(volumeId, job, async () => {
      if (!source) {
        await this.make(job, () => this.tools.create(part, bytes));
      } else {
        await this.make(job, async () => {
          await this.tools.clone(source.image, source.name, part);
          // The clone holds its parent now: the snapshot may be deleted (it is kept as gone.).
          job.source = undefined;
        });
        if (bytes > source.sizeBytes) await this.tools.grow(part, bytes);
        if (this.cloneDepth(await this.tools.list(), part) > this.o.maxCloneDepth) {
          if (job.cancelled) throw new Cancelled();
          await this.tools.flatten(part);
        }
      }
      await this.lock.run(async () => {
        if (job.cancelled) throw new Cancelled();
        await this.tools.rename(part, volumeId);
      });
    });
  }

  /** Makes an image under the lock, turning the job's reservation into provisioned space. */
  private make(job: Job, step: () => Promise<void>): Promise<void> {
    return this.lock.run(async () => {
      if (job.cancelled) throw new Cancelled();
      await step();
      job.reserved = 0;
    });
  }

  /** How many parents an image has, up its chain of clones. */
  private cloneDepth(pool: RbdPool, image: string): number {
    let depth = 0;
    for (let at = pool.images.get(image); at?.parent && depth <= pool.images.size; at = pool.images.get(at.parent.image)) depth++;
    return depth;
  }

  createSnapshot(snapshotId: string, volumeId: string): Promise<void> {
    return this.queued.track(snapshotId, (q) => this.startSnapshot(q, snapshotId, volumeId));
  }

  /** The RBD snapshot is the point in time: taken before the answer; protecting it follows in the background. */
  private async startSnapshot(q: Queued, snapshotId: string, volumeId: string): Promise<void> {
    await this.recover();
    const job = await this.lock.run(async () => {
      const pool = await this.tools.list();
      const existing = findSnap(pool, snapshotId);
      if (existing?.protected || this.jobs.get(snapshotId)?.state === 'creating') return undefined;
      if (existing && existing.image !== volumeId) throw new VbsError('IncorrectState', `The snapshot '${snapshotId}' is of another volume.`);
      if (!pool.images.has(volumeId)) throw new VbsError('InvalidVolume.NotFound', `The volume '${volumeId}' has no data on this volume delegate.`);
      if (q.cancelled) throw new VbsError('IncorrectState', `'${snapshotId}' was deleted before its create started; nothing was made.`);
      const made: Job = { state: 'creating', reserved: 0, source: volumeId, cancelled: false, done: Promise.resolve() };
      this.jobs.set(snapshotId, made);
      try {
        if (!existing) await this.tools.snapCreate(volumeId, snapshotId);
      } catch (err) {
        // Refused (nothing made), or unknown: the front's undo deletes what may be there.
        if (this.jobs.get(snapshotId) === made) this.jobs.delete(snapshotId);
        throw err;
      }
      return made;
    });
    if (!job) return;
    this.background(snapshotId, job, () =>
      this.lock.run(async () => {
        if (job.cancelled) throw new Cancelled();
        await this.tools.protect(volumeId, snapshotId);
        // Whole: its volume may be deleted now, before the job is cleared (a delete checks `source`).
        job.source = undefined;
      }),
    );
  }

  private background(id: string, job: Job, work: () => Promise<void>): void {
    job.done = work()
      .then(() => {
        if (this.jobs.get(id) === job) this.jobs.delete(id);
        this.log.info('created', { id });
        this.changes.record(id);
      })
      .catch(async (err: unknown) => {
        // A volume's half-made image goes now; a snapshot stays for the front's delete (it may be whole).
        if (VOLUME_ID.test(id)) await this.removePart(id);
        if (job.cancelled || err instanceof Cancelled) {
          if (this.jobs.get(id) === job) this.jobs.delete(id);
          return;
        }
        const message = err instanceof VbsError ? err.message : 'the create failed on the volume delegate';
        if (err instanceof VbsError) this.log.warn('create failed', { id, message });
        else this.log.error('create failed', { id, err });
        job.state = 'error';
        job.message = message;
        job.reserved = 0;
        this.changes.record(id);
      });
  }

  /** Removes a volume's `part.` image when there is one; a failure leaves it to the delete or the next start. */
  private async removePart(volumeId: string): Promise<void> {
    try {
      await this.lock.run(async () => {
        if ((await this.tools.list()).images.has(PART + volumeId)) await this.tools.rm(PART + volumeId);
      });
    } catch (err) {
      this.log.warn('could not remove a half-made image; removed when the volume is deleted or on next start', { id: volumeId, message: errorMessage(err) });
    }
  }

  // ------------------------------------------------------------ images

  /**
   * An uploaded image becomes a snapshot that volumes are cloned from, as any
   * snapshot here: staged and made raw in the staging folder (the intake:
   * checksum, size limit, qemu-img), imported into `part.<snap-id>` (`rbd
   * import`), then, under the lock, renamed `gone.<snap-id>` and given the
   * protected RBD snapshot `<snap-id>`. The image has no volume of its own, so
   * it is `gone.` from the start: the sweep removes it once its snapshot is
   * deleted and no clone reads it, as it removes a deleted volume's image.
   * Any failure removes what was made; a restart removes a `part.` image
   * (and the staging files), and the sweep a `gone.` one with no snapshot
   * (the rename and the snapshot are one step under the lock, which the
   * sweep also holds).
   */
  async importImage(snapshotId: string, source: Readable, terms: ImportTerms): Promise<number> {
    // The upload may be cut while this waits for its turn: the intake sees it then (a destroyed stream), never an unhandled error.
    source.on('error', () => undefined);
    const images = this.images('takes');
    if (!this.tools.has('volume.rbd.import')) throw new VbsError('OperationFailed', 'This volume delegate takes no images: its commands.properties has no volume.rbd.import.');
    await this.recover();
    return images.intake.slot(snapshotId, () =>
      this.queued.track(snapshotId, async (q) => {
        let ended: () => void = () => undefined;
        const job = await this.lock.run(async () => {
          const pool = await this.tools.list();
          if (findSnap(pool, snapshotId)) throw new VbsError('IncorrectState', `The snapshot '${snapshotId}' already has data on this volume delegate.`);
          if (this.jobs.has(snapshotId)) throw new VbsError('IncorrectState', `The snapshot '${snapshotId}' is already being made.`);
          // Held from the first byte: the declared length, or 1 GiB while it is unknown.
          const reserved = Math.min(terms.maxBytes, terms.length ?? GiB);
          if (this.capacityFrom(pool, await this.tools.space()).freeBytes < reserved) {
            throw new VbsError('InsufficientCapacity', `There is not enough free space for this image on this volume delegate.`);
          }
          if (q.cancelled) throw new VbsError('IncorrectState', `'${snapshotId}' was deleted before its import started; nothing was made.`);
          // A delete waits for `done`: set with the job, so no delete sees one without the other.
          const made: Job = { state: 'creating', reserved, cancelled: false, done: new Promise((resolve) => (ended = resolve)) };
          this.jobs.set(snapshotId, made);
          return made;
        });
        const staging = join(images.stagingDir, `.${snapshotId}.upload.part`);
        const raw = join(images.stagingDir, `.${snapshotId}.raw.part`);
        const part = PART + snapshotId;
        const holder = GONE + snapshotId;
        const began = Date.now();
        try {
          await images.intake.receive(source, staging, terms);
          const received = Date.now();
          const bytes = await images.intake.toRaw(staging, raw, terms.format, terms.maxBytes);
          await this.lock.run(async () => {
            if (job.cancelled) throw new Cancelled();
            // The image's real size replaces the guess, checked again (a qcow2 expands).
            job.reserved = 0;
            const pool = await this.tools.list();
            if (this.capacityFrom(pool, await this.tools.space()).freeBytes < bytes) {
              throw new VbsError('InsufficientCapacity', `There is not enough free space for this image (${Math.ceil(bytes / GiB)} GiB) on this volume delegate.`);
            }
            job.reserved = bytes;
            if (pool.images.has(part)) await this.tools.rm(part);
          });
          const importing = Date.now();
          await this.tools.importFile(raw, part);
          job.reserved = 0; // the image counts now
          const imported = Date.now();
          await this.lock.run(async () => {
            if (job.cancelled) throw new Cancelled();
            await this.tools.rename(part, holder);
            await this.tools.snapCreate(holder, snapshotId);
            await this.tools.protect(holder, snapshotId);
          });
          // Where the time went, for the operator: the upload, qemu-img, rbd import, the snapshot.
          const phasesMs = { receive: received - began, toRaw: importing - received, rbdImport: imported - importing, snapshot: Date.now() - imported };
          this.log.info('image imported', { id: snapshotId, format: terms.format, bytes, phasesMs });
          return bytes;
        } catch (err) {
          await this.discardImport(snapshotId);
          if (err instanceof Cancelled) throw new VbsError('IncorrectState', `The snapshot '${snapshotId}' was deleted while it was imported.`);
          throw err;
        } finally {
          rmSync(staging, { force: true });
          rmSync(raw, { force: true });
          if (this.jobs.get(snapshotId) === job) this.jobs.delete(snapshotId);
          this.changes.record(snapshotId);
          ended();
        }
      }),
    );
  }

  /**
   * Removes what a failed import made: its `part.` image, or its snapshot
   * and `gone.` image when it failed after the rename. A failure to remove
   * is logged: the front's undo deletes the snapshot, and a restart the
   * `part.` image.
   */
  private async discardImport(snapshotId: string): Promise<void> {
    try {
      await this.lock.run(async () => {
        const pool = await this.tools.list();
        if (pool.images.has(PART + snapshotId)) await this.tools.rm(PART + snapshotId);
        const snap = findSnap(pool, snapshotId);
        if (snap?.image === GONE + snapshotId) {
          // Not yet seen ready by anyone (the front's record is pending): no clone reads it.
          if (snap.protected) await this.tools.unprotect(snap.image, snapshotId);
          await this.tools.snapRm(snap.image, snapshotId);
        }
        await this.sweep();
      });
    } catch (err) {
      this.log.warn('could not remove what a failed import made; removed by the delete that follows or on next start', { id: snapshotId, message: errorMessage(err) });
    }
  }

  /**
   * A ready volume's image, or a snapshot, as an image file: `rbd export`
   * to a staging file (raw; qemu-img makes a qcow2 of it), read once and
   * removed when read or destroyed. Written whole before the answer, so its
   * length is known and a failure is a fault, never a short body.
   */
  async openImage(id: string, format: 'raw' | 'qcow2'): Promise<{ body: Readable; length: number }> {
    const images = this.images('gives');
    if (!this.tools.has('volume.rbd.export') || !this.tools.has('volume.rbd.export-snap')) {
      throw new VbsError('OperationFailed', 'This volume delegate gives no images: its commands.properties has no volume.rbd.export or volume.rbd.export-snap.');
    }
    const pool = await this.tools.list();
    const snap = VOLUME_ID.test(id) ? undefined : findSnap(pool, id);
    const found = VOLUME_ID.test(id) ? pool.images.has(id) : snap?.protected === true;
    if (!found) throw new VbsError(id.startsWith('snap-') ? 'InvalidSnapshot.NotFound' : 'InvalidVolume.NotFound', `'${id}' has no data on this volume delegate.`);
    const name = `.${id}.export-${randomBytes(6).toString('hex')}`;
    const raw = join(images.stagingDir, `${name}.raw.part`);
    try {
      await this.tools.exportFile(snap ? snap.image : id, snap?.name, raw);
      const length = statSync(raw).size;
      if (format === 'qcow2') return await images.intake.open(raw, length, 'qcow2', join(images.stagingDir, `${name}.qcow2.part`));
      const body = createReadStream(raw);
      body.once('close', () => rmSync(raw, { force: true }));
      return { body, length };
    } catch (err) {
      rmSync(raw, { force: true });
      throw err;
    } finally {
      if (format === 'qcow2') rmSync(raw, { force: true });
    }
  }

  private images(verb: 'takes' | 'gives'): NonNullable<RbdBackendOptions['images']> {
    if (!this.o.images) throw new VbsError('OperationFailed', `This volume delegate ${verb} no images: it was started without a staging folder.`);
    return this.o.images;
  }

  // ------------------------------------------------------------ describe

  /**
   * Grows the volume's image with `rbd resize` (never shrinks it). Looks first
   * and after (tools.grow verifies): an image already that large is done. The
   * cluster's free space is checked under the same lock as creates.
   */
  async growVolume(volumeId: string, sizeGiB: number): Promise<number> {
    await this.recover();
    const bytes = sizeGiB * GiB;
    return this.lock.run(async () => {
      const pool = await this.tools.list();
      const image = pool.images.get(volumeId);
      if (!image) {
        if (this.jobs.get(volumeId)?.state === 'creating') throw new VbsError('IncorrectState', `The volume '${volumeId}' is still being created.`);
        throw new VbsError('InvalidVolume.NotFound', `The volume '${volumeId}' has no data on this volume delegate.`);
      }
      if (image.sizeBytes >= bytes) return image.sizeBytes;
      if (this.capacityFrom(pool, await this.tools.space()).freeBytes < bytes - image.sizeBytes) {
        throw new VbsError('InsufficientCapacity', `There is not enough free space to grow '${volumeId}' by ${Math.ceil((bytes - image.sizeBytes) / GiB)} GiB on this volume delegate.`);
      }
      await this.tools.grow(volumeId, bytes);
      this.log.info('grown', { id: volumeId, from: image.sizeBytes, to: bytes });
      return bytes;
    });
  }

  /**
   * The job is read before the pool is listed: a create that finishes while
   * the listing runs has its job gone but its image not yet listed, and must
   * read `creating`, never `absent` (the front would take it for lost).
   */
  async describe(id: string): Promise<StoredObject> {
    const job = this.jobs.get(id);
    return this.describeFrom(id, await this.tools.list(), job);
  }

  private describeFrom(id: string, pool: RbdPool, job: Job | undefined): StoredObject {
    if (VOLUME_ID.test(id)) {
      const image = pool.images.get(id);
      if (image) return { id, state: 'ready', sizeBytes: image.sizeBytes, progress: 100 };
    } else {
      const snap = findSnap(pool, id);
      if (snap?.protected) return { id, state: 'ready', sizeBytes: snap.sizeBytes, progress: 100 };
      // Taken, not yet protected, and no job: a restart cut it off; recover() protects it.
      if (snap && !job) return { id, state: 'creating', progress: 0 };
    }
    if (!job || job.cancelled) return { id, state: 'absent' };
    if (job.state === 'error') return { id, state: 'error', message: job.message };
    return { id, state: 'creating', progress: 0 };
  }

  async list(): Promise<StoredObject[]> {
    const jobs = new Map(this.jobs); // before the listing, as in describe()
    const pool = await this.tools.list();
    const ids = new Set<string>(jobs.keys());
    for (const name of pool.images.keys()) if (VOLUME_ID.test(name)) ids.add(name);
    for (const s of pool.snaps) if (SNAPSHOT_ID.test(s.name)) ids.add(s.name);
    return [...ids].sort().map((id) => this.describeFrom(id, pool, jobs.get(id))).filter((o) => o.state !== 'absent');
  }

  // ------------------------------------------------------------ delete

  async delete(id: string): Promise<boolean> {
    await this.recover();
    const reader = [...this.jobs.entries()].find(([, j]) => j.state === 'creating' && !j.cancelled && j.source === id);
    if (reader) {
      const what = id.startsWith('vol-') ? 'a snapshot of it is being taken' : 'a volume is being created from it';
      throw new VbsError('IncorrectState', `'${id}' cannot be deleted while ${what} (${reader[0]}).`);
    }
    // A create still waiting for the lock makes nothing now (see QueuedCreates).
    const queued = this.queued.cancel(id);
    const job = this.jobs.get(id);
    if (job) {
      job.cancelled = true;
      await job.done;
      if (this.jobs.get(id) === job) this.jobs.delete(id);
    }
    const found = await this.lock.run(() => (VOLUME_ID.test(id) ? this.deleteVolume(id) : this.deleteSnapshot(id)));
    return found || Boolean(job) || queued;
  }

  /** Under the lock. A volume with snapshots is kept as `gone.<id>` until they are gone. */
  private async deleteVolume(id: string): Promise<boolean> {
    const pool = await this.tools.list();
    if (pool.images.has(PART + id)) await this.tools.rm(PART + id);
    if (!pool.images.has(id)) return false;
    const inUse = () => new VbsError('VolumeInUse', `The volume '${id}' is still open on a host; detach it first.`);
    if (pool.snaps.some((s) => s.image === id)) {
      // `rbd rm` refuses an open image by itself; a rename does not, and a volume deleted while a
      // client still writes it would live on as gone. under that client: look first.
      if (this.tools.has('volume.rbd.status') && (await this.tools.watchers(id)).length) throw inUse();
      await this.tools.rename(id, GONE + id);
    } else {
      await this.tools.rm(id).catch((err) => {
        if (exitCodeOf(err) !== RBD_EXIT.busy) throw err;
        // `image still has watchers`: a hypervisor still has it open.
        throw inUse();
      });
    }
    await this.sweepQuietly();
    return true;
  }

  /** Under the lock. A snapshot that clones still read is kept as `gone.<id>` until they are gone. */
  private async deleteSnapshot(id: string): Promise<boolean> {
    const pool = await this.tools.list();
    // An import that failed and could not remove its image (it is removed on start too).
    const part = pool.images.has(PART + id);
    if (part) await this.tools.rm(PART + id);
    const snap = findSnap(pool, id);
    if (!snap) return part;
    if (snap.protected) {
      if ((await this.tools.children(snap.image, id)).length) {
        await this.tools.snapRename(snap.image, id, GONE + id);
        return true;
      }
      await this.tools.unprotect(snap.image, id);
    }
    await this.tools.snapRm(snap.image, id);
    await this.sweepQuietly();
    return true;
  }

  private async sweepQuietly(): Promise<void> {
    try {
      await this.sweep();
    } catch (err) {
      this.log.warn('could not remove deleted objects that nothing reads any more; tried again after the next delete or on start', { message: errorMessage(err) });
    }
  }

  /**
   * Under the lock: removes each `gone.` snapshot no clone reads, and each
   * `gone.` image without snapshots, until a round finds nothing to remove.
   */
  private async sweep(): Promise<void> {
    for (let round = 0; round < MAX_SWEEP_ROUNDS; round++) {
      const pool = await this.tools.list();
      const read = new Set<string>();
      for (const image of pool.images.values()) if (image.parent) read.add(`${image.parent.image}@${image.parent.snap}`);
      let removed = false;
      for (const s of pool.snaps) {
        if (!s.name.startsWith(GONE) || read.has(`${s.image}@${s.name}`)) continue;
        // Clones in other pools count too: only `rbd children` sees them.
        if (s.protected && (await this.tools.children(s.image, s.name)).length) continue;
        if (s.protected) await this.tools.unprotect(s.image, s.name);
        await this.tools.snapRm(s.image, s.name);
        removed = true;
      }
      for (const name of pool.images.keys()) {
        if (!name.startsWith(GONE) || pool.snaps.some((s) => s.image === name)) continue;
        await this.tools.rm(name);
        removed = true;
      }
      if (!removed) return;
    }
  }

  // ------------------------------------------------------------ exports

  /**
   * Hypervisors open RBD images themselves (QEMU's rbd driver): the export is
   * the pool, the image, the monitors (from the cluster's ceph.conf) and a
   * cephx client of this (volume, host) alone, whose caps admit this image
   * and, read-only, the parents it is a clone of (src/core/rbd-export.ts).
   * Idempotent: a host that has the export already gets the same client and
   * key (its VMs may be using it).
   */
  async exportVolume(volumeId: string, vmmHost: string): Promise<ExportedVolume> {
    if (!VOLUME_ID.test(volumeId)) throw new VbsError('InvalidParameterValue', 'Value for parameter volumeId is invalid.');
    const host = v.hostName(vmmHost);
    this.requireAttachPatterns();
    if (this.jobs.get(volumeId)?.state === 'creating') throw new VbsError('IncorrectState', `The volume '${volumeId}' is still being created.`);
    const monitors = this.monitors();
    const chain = await this.imageChain(volumeId);
    const cephUser = cephUserOf(volumeId, host);
    const cephKey = await this.tools.authKey(cephUser, osdCapsFor(this.tools.pool, chain[0]!, chain.slice(1)));
    return { kind: 'rbd', pool: this.tools.pool, image: volumeId, monitors, cephUser, cephKey };
  }

  /**
   * Removes the host's cephx client, so the host can no longer open the
   * image. fenced: the client is gone and nobody has the image open (`rbd
   * status` shows no watcher). A client already connected keeps its session
   * until it closes the image: removing the key does not cut it, and RBD
   * watchers carry an address, not a host name, so a watcher that remains
   * is reported as not fenced (a fence would be `ceph osd blocklist`).
   */
  async unexportVolume(volumeId: string, vmmHost: string): Promise<boolean> {
    if (!VOLUME_ID.test(volumeId)) throw new VbsError('InvalidParameterValue', 'Value for parameter volumeId is invalid.');
    const host = v.hostName(vmmHost);
    if (!this.tools.has('volume.rbd.auth-rm')) return false; // nothing was ever exported without it
    await this.tools.authRm(cephUserOf(volumeId, host));
    try {
      return (await this.tools.watchers(volumeId)).length === 0;
    } catch (err) {
      if (exitCodeOf(err) === RBD_EXIT.notFound) return true;
      return false;
    }
  }

  /** The clients that have a volume's image open (`rbd status`): `vbs admin check` compares them with the attachments. */
  async watchersOf(volumeId: string): Promise<string[]> {
    return this.tools.watchers(volumeId);
  }

  private requireAttachPatterns(): void {
    for (const key of ['volume.rbd.info', 'volume.rbd.auth-key', 'volume.rbd.auth-caps', 'volume.rbd.auth-rm']) {
      if (!this.tools.has(key)) throw new VbsError('OperationFailed', `This volume delegate cannot export rbd volumes: its commands.properties has no ${key}.`);
    }
  }

  /** The monitors' msgr1 addresses, read from the cluster's configuration each time (it may change). */
  private monitors(): string {
    if (!this.o.cephConf) throw new VbsError('OperationFailed', 'This volume delegate cannot export rbd volumes: it has no cephConf.');
    try {
      return monitorsOf(readFileSync(this.o.cephConf, 'utf8'));
    } catch (err) {
      throw new VbsError('OperationFailed', `The monitors of the Ceph cluster could not be read from its configuration: ${errorMessage(err)}`);
    }
  }

  /** The image and each parent it is a clone of, by name and RBD id (`rbd info`, one per link). */
  private async imageChain(volumeId: string): Promise<ImageIds[]> {
    const chain: ImageIds[] = [];
    let name: string | undefined = volumeId;
    while (name !== undefined) {
      if (chain.length > MAX_PARENTS) throw new VbsError('OperationFailed', `The volume '${volumeId}' has more than ${MAX_PARENTS} parents.`);
      let info: Awaited<ReturnType<RbdTools['info']>>;
      try {
        info = await this.tools.info(name);
      } catch (err) {
        if (chain.length === 0 && exitCodeOf(err) === RBD_EXIT.notFound) throw new VbsError('InvalidVolume.NotFound', `The volume '${volumeId}' does not exist on this delegate.`);
        throw err;
      }
      chain.push({ name, id: info.id });
      if (info.parent && info.parent.pool !== this.tools.pool) {
        throw new VbsError('OperationFailed', `The volume '${volumeId}' is a clone of an image in another pool, which VBS does not make.`);
      }
      name = info.parent?.image;
    }
    return chain;
  }

  /**
   * What `vbs admin check` compares with the attachments: each volume whose
   * image some client has open (`rbd status`: its watchers), as an export
   * that names no host (a watcher is an address, not a host name). A
   * detached volume that is still open somewhere is then a finding; an
   * attached one that nobody has open, another. One `rbd status` per volume:
   * a check of a large pool takes a while. Without the status pattern,
   * nothing is tracked.
   */
  async listExports(): Promise<{ tracked: boolean; exports: ExportEntry[] }> {
    if (!this.tools.has('volume.rbd.status')) return { tracked: false, exports: [] };
    const exports: ExportEntry[] = [];
    for (const name of (await this.tools.list()).images.keys()) {
      // A deleted volume kept for its snapshots (gone.) that a client has open is still in use somewhere.
      const volumeId = name.startsWith(GONE) ? name.slice(GONE.length) : name;
      if (!VOLUME_ID.test(volumeId)) continue;
      let watchers: string[];
      try {
        watchers = await this.tools.watchers(name);
      } catch (err) {
        if (exitCodeOf(err) === RBD_EXIT.notFound) continue; // deleted or renamed since the listing
        throw err;
      }
      if (watchers.length) exports.push({ volumeId, kind: 'rbd', watchers: watchers.length });
    }
    return { tracked: true, exports };
  }
}

/** A snapshot by its id, on whichever image holds it (a `gone.` volume's too). */
function findSnap(pool: RbdPool, id: string): RbdSnap | undefined {
  return pool.snaps.find((s) => s.name === id);
}
