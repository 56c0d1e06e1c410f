import { CommandFailed, type CommandRunner } from '../../commands/runner.js';
import { runVerified } from '../../commands/verified.js';
import { crashPoint } from '../../core/crash-points.js';
import type { Logger } from '../../core/log.js';
import { CEPH_KEY } from '../../core/rbd-export.js';

const MiB = 1024 ** 2;
/** Attempts at one repeatable command: a listing the pool changed under, or a process that crashed (see RbdTools.repeatable). */
const REPEAT_ATTEMPTS = 5;

/** One image of the pool as `rbd ls -l --format json` reports it. */
export interface RbdImage {
  name: string;
  sizeBytes: number;
  /** The snapshot this image is a clone of (same pool), while it is one. */
  parent?: { image: string; snap: string };
}

/** One snapshot of an image. */
export interface RbdSnap {
  image: string;
  name: string;
  sizeBytes: number;
  protected: boolean;
}

/** Everything in the pool, from one listing. */
export interface RbdPool {
  images: Map<string, RbdImage>;
  snaps: RbdSnap[];
}

/** The cluster's space as `ceph df --format json` reports it, for one pool. */
export interface RbdSpace {
  /** Raw bytes of the cluster. */
  clusterBytes: number;
  /** Bytes the pool holds (logical, before replication). */
  storedBytes: number;
  /** Bytes the pool can still take (after replication and full ratios). */
  maxAvailBytes: number;
}

/** Parses `rbd ls -l --format json POOL`: images, and snapshots (entries with a `snapshot` key). */
export function parseRbdList(stdout: string): RbdPool {
  const rows = parseJson('volume.rbd.list', stdout);
  if (!Array.isArray(rows)) throw new Error('volume.rbd.list: expected a JSON array');
  const images = new Map<string, RbdImage>();
  const snaps: RbdSnap[] = [];
  for (const row of rows as Record<string, unknown>[]) {
    const image = row.image;
    const size = row.size;
    if (typeof image !== 'string' || typeof size !== 'number') throw new Error('volume.rbd.list: an entry without image or size');
    if (typeof row.snapshot === 'string') {
      // rbd prints protected as the string "true"/"false".
      snaps.push({ image, name: row.snapshot, sizeBytes: size, protected: String(row.protected) === 'true' });
      continue;
    }
    const p = row.parent as { image?: unknown; snapshot?: unknown } | undefined;
    images.set(image, {
      name: image,
      sizeBytes: size,
      ...(p && typeof p.image === 'string' && typeof p.snapshot === 'string' ? { parent: { image: p.image, snap: p.snapshot } } : {}),
    });
  }
  return { images, snaps };
}

/** Parses `ceph df --format json` for one pool. */
export function parseCephDf(stdout: string, pool: string): RbdSpace {
  const df = parseJson('volume.rbd.df', stdout) as {
    stats?: { total_bytes?: number };
    pools?: { name?: string; stats?: { stored?: number; max_avail?: number } }[];
  };
  const p = df.pools?.find((x) => x.name === pool);
  const clusterBytes = df.stats?.total_bytes;
  if (typeof clusterBytes !== 'number') throw new Error('volume.rbd.df: no stats.total_bytes');
  if (!p || typeof p.stats?.stored !== 'number' || typeof p.stats.max_avail !== 'number') {
    throw new Error(`volume.rbd.df: pool ${pool} is not in the cluster's report`);
  }
  return { clusterBytes, storedBytes: p.stats.stored, maxAvailBytes: p.stats.max_avail };
}

/** Parses `rbd children --format json`: the images (in any pool) cloned from one snapshot. */
export function parseChildren(stdout: string): string[] {
  const rows = parseJson('volume.rbd.children', stdout);
  if (!Array.isArray(rows)) throw new Error('volume.rbd.children: expected a JSON array');
  return (rows as { pool?: string; image?: string }[]).map((r) => `${r.pool ?? ''}/${r.image ?? ''}`);
}

function parseJson(key: string, stdout: string): unknown {
  try {
    return JSON.parse(stdout.trim() || '[]');
  } catch {
    throw new Error(`${key}: the output is not JSON`);
  }
}

/** The rbd tool's exit codes VBS tells apart (errno values; CEPH.md lists the texts). */
export const RBD_EXIT = { notFound: 2, busy: 16, exists: 17, invalid: 22, notEmpty: 39, timedOut: 110 } as const;

export function exitCodeOf(err: unknown): number | undefined {
  return err instanceof CommandFailed ? err.result.exitCode : undefined;
}

/** The patterns that change nothing on the cluster (no crash point after them). */
const READS = new Set(['volume.rbd.list', 'volume.rbd.info', 'volume.rbd.status', 'volume.rbd.children', 'volume.rbd.df', 'volume.rbd.export', 'volume.rbd.export-snap']);

/**
 * The tool died of a signal it was not sent by its time limit. Ceph 16's rbd
 * sometimes aborts in librados' shutdown after its work is done (seen in CI:
 * "Caught signal (Aborted)" in io_context_pool).
 */
function crashed(err: unknown): boolean {
  return err instanceof CommandFailed && !err.result.timedOut && err.result.signal !== undefined;
}

/**
 * One pool of a Ceph cluster through the volume.rbd.* patterns. Every change
 * is an "ensure" (src/commands/verified.ts): when its command fails or times
 * out, the pool is listed again, and the change counts as done when it is in
 * place and as failed only when the listing shows it is not. A listing that
 * fails leaves the outcome unknown (ServiceUnavailable), never "nothing done".
 */
export class RbdTools {
  constructor(
    private readonly runner: CommandRunner,
    readonly pool: string,
    private readonly log?: Pick<Logger, 'warn'>,
  ) {}

  private async run(key: string, params: Record<string, string | number> = {}) {
    const result = await this.runner.run(key, { pool: this.pool, ...params });
    // Fault injection for the crash matrix (test/e2e/crash/rbd.test.ts): the cluster changed, nobody was told.
    if (!READS.has(key)) crashPoint(`${key}/after`);
    return result;
  }

  /**
   * Runs a command that is safe to repeat (a read, or a get-or-create), again
   * when its process crashed or when `alsoRetry` says so, up to REPEAT_ATTEMPTS
   * times. A time-out is not retried: each attempt's limit would add up.
   */
  private async repeatable(key: string, params: Record<string, string | number> = {}, alsoRetry: (err: unknown) => boolean = () => false): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      try {
        return (await this.run(key, params)).stdout;
      } catch (err) {
        if (attempt >= REPEAT_ATTEMPTS || !(crashed(err) || alsoRetry(err))) throw err;
        this.log?.warn(`${key}: attempt ${attempt} failed, trying again`, { how: err instanceof CommandFailed ? CommandFailed.howItEnded(err.result) : 'unknown' });
      }
    }
  }

  /**
   * `rbd ls -l` names the images, then opens each: an image renamed or
   * removed in between (a create or delete running beside it) makes it exit
   * with ENOENT. Listed again a few times; a pool that is missing keeps failing.
   */
  async list(): Promise<RbdPool> {
    return parseRbdList(await this.repeatable('volume.rbd.list', {}, (err) => exitCodeOf(err) === RBD_EXIT.notFound));
  }

  async space(): Promise<RbdSpace> {
    return parseCephDf(await this.repeatable('volume.rbd.df'), this.pool);
  }

  async children(image: string, snap: string): Promise<string[]> {
    return parseChildren(await this.repeatable('volume.rbd.children', { image, snap }));
  }

  /** A blank image of `bytes` (whole MiB). */
  async create(image: string, bytes: number): Promise<void> {
    await runVerified(
      `create ${image}`,
      () => this.run('volume.rbd.create', { image, sizeMiB: Math.ceil(bytes / MiB) }),
      async () => ((await this.list()).images.get(image)?.sizeBytes ?? -1) === bytes,
      this.log,
    );
  }

  async snapCreate(image: string, snap: string): Promise<void> {
    await runVerified(`snapshot ${image}@${snap}`, () => this.run('volume.rbd.snap-create', { image, snap }), () => this.hasSnap(image, snap), this.log);
  }

  async protect(image: string, snap: string): Promise<void> {
    await runVerified(`protect ${image}@${snap}`, () => this.run('volume.rbd.snap-protect', { image, snap }), () => this.hasSnap(image, snap, true), this.log);
  }

  async unprotect(image: string, snap: string): Promise<void> {
    await runVerified(`unprotect ${image}@${snap}`, () => this.run('volume.rbd.snap-unprotect', { image, snap }), () => this.hasSnap(image, snap, false), this.log);
  }

  async snapRename(image: string, snap: string, newSnap: string): Promise<void> {
    await runVerified(
      `rename ${image}@${snap}`,
      () => this.run('volume.rbd.snap-rename', { image, snap, newSnap }),
      async () => (await this.hasSnap(image, newSnap)) && !(await this.hasSnap(image, snap)),
      this.log,
    );
  }

  async snapRm(image: string, snap: string): Promise<void> {
    await runVerified(`remove ${image}@${snap}`, () => this.run('volume.rbd.snap-rm', { image, snap }), async () => !(await this.hasSnap(image, snap)), this.log);
  }

  async clone(image: string, snap: string, newImage: string): Promise<void> {
    await runVerified(
      `clone ${image}@${snap}`,
      () => this.run('volume.rbd.clone', { image, snap, newImage }),
      async () => {
        const parent = (await this.list()).images.get(newImage)?.parent;
        return parent?.image === image && parent.snap === snap;
      },
      this.log,
    );
  }

  /** Grows an image to `bytes` (whole MiB); never shrinks one. */
  async grow(image: string, bytes: number): Promise<void> {
    await runVerified(
      `resize ${image}`,
      () => this.run('volume.rbd.resize', { image, sizeMiB: Math.ceil(bytes / MiB) }),
      async () => ((await this.list()).images.get(image)?.sizeBytes ?? 0) >= bytes,
      this.log,
    );
  }

  async flatten(image: string): Promise<void> {
    await runVerified(
      `flatten ${image}`,
      () => this.run('volume.rbd.flatten', { image }),
      async () => {
        const found = (await this.list()).images.get(image);
        return found !== undefined && found.parent === undefined;
      },
      this.log,
    );
  }

  async rename(image: string, newImage: string): Promise<void> {
    await runVerified(
      `rename ${image}`,
      () => this.run('volume.rbd.rename', { image, newImage }),
      async () => {
        const { images } = await this.list();
        return images.has(newImage) && !images.has(image);
      },
      this.log,
    );
  }

  async rm(image: string): Promise<void> {
    await runVerified(`remove ${image}`, () => this.run('volume.rbd.rm', { image }), async () => !(await this.list()).images.has(image), this.log);
  }

  // ------------------------------------------------------------ images (docs/images.md)

  /**
   * Writes a raw file into a new image (`rbd import`). Not an ensure: an
   * import cut midway leaves an image of the full size holding part of the
   * data, which no listing tells from a whole one; the caller removes it on
   * any failure.
   */
  async importFile(path: string, image: string): Promise<void> {
    await this.run('volume.rbd.import', { path, image });
  }

  /** Writes an image, or one of its snapshots, to a new raw file (`rbd export`); the caller removes it on failure. */
  async exportFile(image: string, snap: string | undefined, path: string): Promise<void> {
    if (snap === undefined) await this.run('volume.rbd.export', { image, path });
    else await this.run('volume.rbd.export-snap', { image, snap, path });
  }

  // ------------------------------------------------------------ attaching (src/core/rbd-export.ts)

  /** True when commands.properties has the pattern (the attach patterns are optional). */
  has(key: string): boolean {
    return this.runner.catalog.has(key);
  }

  /** An image's RBD id and its parent (a clone's snapshot's image), from `rbd info`. */
  async info(image: string): Promise<{ id: string; parent?: { pool: string; image: string } }> {
    const o = parseJson('volume.rbd.info', await this.repeatable('volume.rbd.info', { image })) as { id?: unknown; parent?: { pool?: unknown; image?: unknown } };
    if (typeof o.id !== 'string') throw new Error('volume.rbd.info: no id');
    const p = o.parent;
    return { id: o.id, ...(p && typeof p.image === 'string' && typeof p.pool === 'string' ? { parent: { pool: p.pool, image: p.image } } : {}) };
  }

  /** The clients that have the image open (`rbd status`): their addresses. */
  async watchers(image: string): Promise<string[]> {
    const o = parseJson('volume.rbd.status', await this.repeatable('volume.rbd.status', { image })) as { watchers?: { address?: unknown }[] };
    return (o.watchers ?? []).map((w) => String(w.address ?? '?'));
  }

  /**
   * Ensures the cephx client exists with exactly these caps and returns its
   * key. `get-or-create-key` refuses (EINVAL) a client that exists with other
   * caps (its image's parents changed, say): the caps are set, then asked again.
   * The key is read from standard output; it is never logged.
   */
  async authKey(cephUser: string, osdCaps: string): Promise<string> {
    const params = { cephUser, monCaps: 'profile rbd', osdCaps };
    let out: string;
    try {
      out = await this.repeatable('volume.rbd.auth-key', params);
    } catch (err) {
      if (exitCodeOf(err) !== RBD_EXIT.invalid) throw err;
      await this.repeatable('volume.rbd.auth-caps', params);
      out = await this.repeatable('volume.rbd.auth-key', params);
    }
    const key = out.trim();
    if (!CEPH_KEY.test(key)) throw new Error('volume.rbd.auth-key: the output is not a cephx key');
    return key;
  }

  /** Removes the cephx client; one that is not there is removed already (`auth rm` exits 0). */
  async authRm(cephUser: string): Promise<void> {
    await this.repeatable('volume.rbd.auth-rm', { cephUser });
  }

  private async hasSnap(image: string, snap: string, isProtected?: boolean): Promise<boolean> {
    const s = (await this.list()).snaps.find((x) => x.image === image && x.name === snap);
    return s !== undefined && (isProtected === undefined || s.protected === isProtected);
  }
}
