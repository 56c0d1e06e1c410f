import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, renameSync, rmSync, statSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { once } from 'node:events';
import { Transform } from 'node:stream';
import { VbsError } from '../../core/errors.js';
import { CommandFailed, type CommandRunner } from '../../commands/runner.js';
import { Semaphore } from '../../commands/semaphore.js';

export type ImageFormat = 'raw' | 'qcow2' | 'vmdk' | 'vdi';
export const IMAGE_FORMATS: readonly ImageFormat[] = ['raw', 'qcow2', 'vmdk', 'vdi'];

/** What an upload must satisfy; the front sends it with every import. */
export interface ImportTerms {
  readonly format: ImageFormat;
  /** The SHA-256 (hex) the user gave for the bytes they send, if any. */
  readonly sha256?: string;
  /** The upload's length when declared (Content-Length), else undefined (streamed to its end). */
  readonly length?: number;
  /** At most this many bytes uploaded, and at most this many once converted (the image's virtual size). */
  readonly maxBytes: number;
  /** No byte for this long: the upload is cut. */
  readonly idleMs: number;
}

export const DEFAULT_IMPORT_IDLE_MS = 60_000;

/**
 * Takes an uploaded image to a raw file, on any back end: the bytes are
 * written to a staging file as they arrive (hashed and counted on the way,
 * never held in memory), checked against the user's checksum, looked at with
 * `qemu-img info` (a qcow2 or vmdk may point at other files: a backing file,
 * an external data file, extents elsewhere; any of those is refused, since
 * converting it would read a file of this host into the user's snapshot), and
 * converted with `qemu-img convert` unless raw. Both through patterns
 * (`volume.image.info`, `volume.image.convert`). At most `maxImports` at once
 * per delegate; one more is refused at once (its upload would otherwise wait,
 * holding a connection, for a slot).
 */
export class ImageIntake {
  private readonly active = new Set<string>();

  constructor(
    private readonly runner: CommandRunner,
    private readonly maxImports: number,
  ) {
    new Semaphore(maxImports); // the same validity check as the command limit
  }

  /** Holds one of the slots while `work` runs, or refuses (RequestLimitExceeded) when none is free. */
  async slot<T>(id: string, work: () => Promise<T>): Promise<T> {
    if (this.active.has(id)) throw new VbsError('IncorrectState', `The snapshot '${id}' is already being imported.`);
    if (this.active.size >= this.maxImports) throw new VbsError('RequestLimitExceeded', `This volume delegate is taking ${this.maxImports} images already; try again shortly.`);
    this.active.add(id);
    try {
      return await work();
    } finally {
      this.active.delete(id);
    }
  }

  /** Writes the upload to `staging`, checking its length and checksum; the file is removed on any failure. */
  async receive(source: Readable, staging: string, t: ImportTerms): Promise<number> {
    if (t.length !== undefined && t.length > t.maxBytes) throw tooLarge(t.maxBytes);
    const hash = createHash('sha256');
    let bytes = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        bytes += chunk.length;
        if (bytes > t.maxBytes) return done(tooLarge(t.maxBytes));
        hash.update(chunk);
        done(null, chunk);
      },
    });
    let idle: NodeJS.Timeout | undefined;
    const poke = () => {
      clearTimeout(idle);
      idle = setTimeout(() => source.destroy(new VbsError('RequestTimeout', `The upload sent nothing for ${Math.round(t.idleMs / 1000)} s.`)), t.idleMs);
    };
    source.on('data', poke);
    poke();
    const file = createWriteStream(staging, { flags: 'wx' });
    try {
      await pipeline(source, counter, file);
      if (source.readableAborted || (t.length !== undefined && bytes !== t.length)) throw cut();
      if (bytes === 0) throw new VbsError('InvalidParameterValue', 'The image is empty.');
      const digest = hash.digest('hex');
      if (t.sha256 !== undefined && digest !== t.sha256) {
        throw new VbsError('InvalidParameterValue', `Value for parameter sha256 is invalid: the image received has SHA-256 ${digest}, not ${t.sha256}.`);
      }
      return bytes;
    } catch (err) {
      // The file opens asynchronously: removed only once closed, or it would be made again after.
      if (!file.closed) await once(file, 'close').catch(() => undefined);
      rmSync(staging, { force: true });
      if (err instanceof VbsError) throw err;
      // The sender went away (ECONNRESET, "aborted", premature close): nothing is kept.
      throw cut(err);
    } finally {
      clearTimeout(idle);
      source.off('data', poke);
    }
  }

  /**
   * Turns the staged upload into the raw file `target` (renaming a raw one),
   * refusing an image that refers to other files or whose virtual size passes
   * maxBytes. Returns the raw size. Removes the staging file either way.
   */
  async toRaw(staging: string, target: string, format: ImageFormat, maxBytes: number): Promise<number> {
    try {
      const info = await this.inspect(staging, format);
      if (info.virtualSize > maxBytes) throw tooLarge(maxBytes, 'once converted');
      if (format === 'raw') renameSync(staging, target);
      else await this.runner.run('volume.image.convert', { imageFormat: format, source: staging, path: target });
      return statSync(target).size;
    } catch (err) {
      rmSync(target, { force: true });
      throw err;
    } finally {
      rmSync(staging, { force: true });
    }
  }

  /**
   * Opens `path` (a file or a device) as an image of `format` to read once:
   * raw is the data itself; qcow2 is made into `staging` (volume.image.export)
   * and removed once read.
   */
  async open(path: string, bytes: number, format: 'raw' | 'qcow2', staging: string): Promise<{ body: Readable; length: number }> {
    if (format === 'raw') return { body: createReadStream(path, { end: bytes - 1 }), length: bytes };
    try {
      await this.runner.run('volume.image.export', { imageFormat: format, source: path, path: staging });
      const length = statSync(staging).size;
      const body = createReadStream(staging);
      body.once('close', () => rmSync(staging, { force: true }));
      return { body, length };
    } catch (err) {
      rmSync(staging, { force: true });
      throw err;
    }
  }

  private async inspect(path: string, format: ImageFormat): Promise<{ virtualSize: number }> {
    let info: QemuImgInfo;
    try {
      const out = await this.runner.run('volume.image.info', { imageFormat: format, source: path });
      info = JSON.parse(out.stdout) as QemuImgInfo;
    } catch (err) {
      // qemu-img could not read it as that format (it exits non-zero), or printed no JSON: the user's bytes.
      // One that timed out, or any other failure, is ours.
      const unreadable = err instanceof SyntaxError || (err instanceof CommandFailed && !err.outcomeUnknown);
      if (!unreadable) throw err;
      throw new VbsError('InvalidParameterValue', `Value for parameter format is invalid: the image is not a readable ${format} image.`, { cause: err });
    }
    const refersElsewhere =
      info['backing-filename'] !== undefined ||
      info['full-backing-filename'] !== undefined ||
      info['format-specific']?.data?.['data-file'] !== undefined ||
      (info['format-specific']?.data?.extents ?? []).some((e) => e.filename !== undefined && e.filename !== path);
    if (refersElsewhere) throw new VbsError('InvalidParameterValue', 'The image refers to other files (a backing file, a data file or extents elsewhere); upload a self-contained image.');
    if (!Number.isSafeInteger(info['virtual-size']) || (info['virtual-size'] ?? 0) <= 0) throw new VbsError('InvalidParameterValue', `Value for parameter format is invalid: the image is not a readable ${format} image.`);
    return { virtualSize: info['virtual-size']! };
  }
}

interface QemuImgInfo {
  'virtual-size'?: number;
  'backing-filename'?: string;
  'full-backing-filename'?: string;
  'format-specific'?: { data?: { 'data-file'?: string; extents?: { filename?: string }[] } };
}

function tooLarge(max: number, when = ''): VbsError {
  return new VbsError('RequestTooLarge', `The image is larger than ${max} bytes${when ? ` ${when}` : ''}, the limit of an import.`);
}

function cut(cause?: unknown): VbsError {
  return new VbsError('RequestTimeout', 'The upload was cut before its end; nothing was kept.', cause === undefined ? undefined : { cause });
}
