import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { SNAPSHOT_ID, VOLUME_ID } from '../../core/ids.js';
import { USER_NAME_PATTERN } from '../../core/validate.js';

/**
 * What a volume delegate remembers of each volume and snapshot it holds,
 * beside the data, so that the front's metadata can be rebuilt from the
 * storage nodes when its database and every backup are lost
 * (`vbs admin rebuild`, docs/operators/backup.md).
 *
 * One small JSON file per object, `<id>.record.json`, in the records folder
 * (for the file back end, the volumes folder itself: the record sits beside
 * `<id>.img`). A record is written before the data is made and removed after
 * the data is gone, so data never exists without its record; a record
 * without data is ignored. Each write is a whole new file, fsync'd, renamed
 * over the old one and the folder fsync'd: a crash leaves the old record or
 * the new one, never half of one.
 */
export interface ObjectRecord {
  id: string;
  /** The user who owns it (the volume's or snapshot's owner in the metadata). */
  owner: string;
  /** Size in GiB; for a snapshot, that of the volume it copied (absent: the data's size decides). */
  sizeGiB?: number;
  /** Volume: the snapshot it was created from. */
  snapshotId?: string;
  /** Snapshot: the volume it copied; absent for a snapshot that has no source volume (an imported image). */
  volumeId?: string;
  /** The volume's availability zone when it was created. */
  zone?: string;
  /** When the front asked for it (ISO 8601, the front's clock). */
  createdAt: string;
}

const RECORD_FILE = /^((?:vol|snap)-[0-9a-f]{17})\.record\.json$/;
const ZONE = /^[a-z0-9][a-z0-9-]{0,62}$/;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;
/** A record is a few hundred bytes: anything larger is not ours. */
const MAX_RECORD_BYTES = 4096;

export class ObjectRecords {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
    for (const f of readdirSync(dir)) if (f.endsWith('.record.json.tmp')) rmSync(join(dir, f), { force: true });
  }

  private fileOf(id: string): string {
    if (!VOLUME_ID.test(id) && !SNAPSHOT_ID.test(id)) throw new Error(`not an object id: ${id}`);
    return join(this.dir, `${id}.record.json`);
  }

  /** Writes (or replaces) a record atomically and durably. */
  write(r: ObjectRecord): void {
    const file = this.fileOf(r.id);
    const tmp = join(this.dir, `.${r.id}.${randomBytes(4).toString('hex')}.record.json.tmp`);
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, `${JSON.stringify(r)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
    syncDir(this.dir);
  }

  /** The record of an object, or undefined when there is none or it is not a valid record. */
  read(id: string): ObjectRecord | undefined {
    let text: string;
    try {
      text = readFileSync(this.fileOf(id), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    return parseRecord(id, text);
  }

  /** Ids of every record in the folder. */
  ids(): string[] {
    return readdirSync(this.dir)
      .map((f) => RECORD_FILE.exec(f)?.[1])
      .filter((x): x is string => x !== undefined)
      .sort();
  }

  remove(id: string): void {
    rmSync(this.fileOf(id), { force: true });
    syncDir(this.dir);
  }

  /** Changes the size a record names (a volume grown by ModifyVolume). */
  resize(id: string, sizeGiB: number): void {
    const r = this.read(id);
    if (r && r.sizeGiB !== sizeGiB) this.write({ ...r, sizeGiB });
  }
}

/** Checks every field: a record is read back into the metadata, so nothing it holds is trusted. */
export function parseRecord(id: string, text: string): ObjectRecord | undefined {
  if (text.length > MAX_RECORD_BYTES) return undefined;
  let raw: Record<string, unknown>;
  try {
    const v = JSON.parse(text) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) return undefined;
    raw = v as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const isVolume = VOLUME_ID.test(id);
  const ok =
    raw.id === id &&
    typeof raw.owner === 'string' &&
    USER_NAME_PATTERN.test(raw.owner) &&
    typeof raw.createdAt === 'string' &&
    ISO_TIME.test(raw.createdAt) &&
    (raw.sizeGiB === undefined || (Number.isInteger(raw.sizeGiB) && (raw.sizeGiB as number) > 0 && (raw.sizeGiB as number) <= 1_048_576)) &&
    (raw.snapshotId === undefined || (isVolume && typeof raw.snapshotId === 'string' && SNAPSHOT_ID.test(raw.snapshotId))) &&
    (raw.volumeId === undefined || (!isVolume && typeof raw.volumeId === 'string' && VOLUME_ID.test(raw.volumeId))) &&
    (raw.zone === undefined || (typeof raw.zone === 'string' && ZONE.test(raw.zone)));
  if (!ok) return undefined;
  const r: ObjectRecord = { id, owner: raw.owner as string, createdAt: raw.createdAt as string };
  if (raw.sizeGiB !== undefined) r.sizeGiB = raw.sizeGiB as number;
  if (raw.snapshotId !== undefined) r.snapshotId = raw.snapshotId as string;
  if (raw.volumeId !== undefined) r.volumeId = raw.volumeId as string;
  if (raw.zone !== undefined) r.zone = raw.zone as string;
  return r;
}

/** A rename or removal is durable only once the folder holding it is on disk. */
function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
