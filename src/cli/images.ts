import { createReadStream, createWriteStream, renameSync, rmSync, statSync } from 'node:fs';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from '@commander-js/extra-typings';
import { errorMessage } from '../core/errors.js';
import * as validate from '../core/validate.js';
import { frontUrls, loadClientConfig } from '../config/client-config.js';
import { VBS_SERVICE } from '../services/vbs.js';
import { openStream, readAnswer, type StreamTarget } from '../soap/stream-client.js';
import { IMPORT_IMAGE_OUTPUT } from '../front/images.js';
import { findClientConfig } from './config.js';
import { invoke, type Invocation } from './context.js';
import { checkLocally, CliFailure, UsageError } from './errors.js';
import { snapshotsTable } from './format.js';
import { Progress } from './progress.js';
import type { Snapshot } from './records.js';
import type { CliRuntime } from './runtime.js';

/** A transfer that moves no byte for this long is given up (the front has its own limit). */
const IDLE_MS = 120_000;
const MiB = 1024 * 1024;

export function registerImageCommands(program: Command, runtime: CliRuntime): void {
  program
    .command('import-image')
    .description('upload an image (a file, or - for stdin) as a new snapshot; create-volume makes volumes from it')
    .argument('<file>', 'the image, or - to read it from stdin')
    .option('--format <format>', 'raw, qcow2, vmdk or vdi (converted to raw by the volume delegate)', 'raw')
    .option('--comment <text>', 'a note kept with the snapshot')
    .option('--sha256 <hex>', 'the image\'s SHA-256: VBS refuses the upload if what arrived differs')
    .option('--zone <zone>', 'the availability zone to keep it in')
    .action((file, opts, cmd) => invoke(runtime, cmd, (inv) => importImage(inv, file, opts)));

  program
    .command('export-image')
    .description('download a snapshot (yours or shared with you) or a volume nobody writes to, as an image file (or - for stdout)')
    .argument('<id>', 'snap-… or vol-…')
    .argument('<file>', 'where to write it, or - for stdout')
    .option('--format <format>', 'raw or qcow2', 'raw')
    .action((id, file, opts, cmd) => invoke(runtime, cmd, (inv) => exportImage(inv, id, file, opts)));
}

/** The front's address and this user's certificate, for a streamed operation. */
function frontTarget(inv: Invocation): StreamTarget {
  const { file } = findClientConfig(inv.options.config, inv.runtime);
  try {
    const { config, tls } = loadClientConfig(file);
    // A transfer goes to the first front named: a stream cut midway is not sent again elsewhere.
    return { def: VBS_SERVICE, url: frontUrls(config)[0]!, tls };
  } catch (err) {
    throw new UsageError(errorMessage(err));
  }
}

/** Counts what passes and shows it on stderr: a bar when the total is known, MiB otherwise. */
function meter(progress: Progress, verb: string, total: number | undefined, tty: boolean): Transform {
  let done = 0;
  let shown = -1;
  // A terminal's line is redrawn at every percent; a log gets a line every 10 %.
  const every = tty ? 1 : 10;
  return new Transform({
    transform(chunk: Buffer, _enc, next) {
      done += chunk.length;
      const step = total ? Math.floor((done / total) * 100 / every) * every : Math.floor(done / (every * 16 * MiB)) * every * 16;
      if (step !== shown) {
        shown = step;
        progress.update(total ? `${verb} [${'#'.repeat(Math.floor(step / 5)).padEnd(20, '.')}] ${step}% of ${(total / MiB).toFixed(1)} MiB` : `${verb} ${step} MiB`);
      }
      next(null, chunk);
    },
    flush(next) {
      progress.finish();
      next();
    },
  });
}

interface ImportOptions {
  readonly format: string;
  readonly comment?: string;
  readonly sha256?: string;
  readonly zone?: string;
}

export async function importImage(inv: Invocation, file: string, opts: ImportOptions): Promise<void> {
  const format = checkLocally(() => validate.imageFormat(opts.format));
  const comment = opts.comment === undefined ? undefined : checkLocally(() => validate.comment(opts.comment));
  const sha256 = checkLocally(() => validate.sha256(opts.sha256));
  const zone = opts.zone === undefined ? undefined : checkLocally(() => validate.zoneName(opts.zone, 'zone'));
  let length: number | undefined;
  let source: Readable;
  if (file === '-') source = process.stdin;
  else {
    try {
      length = statSync(file).size;
    } catch (err) {
      throw new UsageError(`cannot read ${file}: ${errorMessage(err)}`);
    }
    source = createReadStream(file);
  }
  const target = frontTarget(inv);
  const progress = new Progress(inv.runtime.stderr, inv.runtime.now);
  const counted = source.pipe(meter(progress, 'uploading', length, inv.runtime.stderr.isTTY === true));
  source.once('error', (err) => counted.destroy(err));
  const res = await openStream(target, { method: 'PUT', path: 'images', query: { format, comment, sha256, availabilityZone: zone }, body: counted, length, idleMs: IDLE_MS });
  const answer = await readAnswer(res, VBS_SERVICE, 'ImportImage', IMPORT_IMAGE_OUTPUT);
  const snapshot = answer.snapshot as unknown as Snapshot;
  inv.print(snapshot, (s) => snapshotsTable([s]));
}

export async function exportImage(inv: Invocation, rawId: string, file: string, opts: { format: string }): Promise<void> {
  const id = checkLocally(() => (rawId.startsWith('snap-') ? validate.snapshotId(rawId, 'id') : validate.volumeId(rawId, 'id')));
  const format = checkLocally(() => validate.exportFormat(opts.format));
  const res = await openStream(frontTarget(inv), { method: 'GET', path: `images/${id}`, query: { format }, idleMs: IDLE_MS });
  const length = Number(res.headers['content-length']);
  const progress = new Progress(inv.runtime.stderr, inv.runtime.now);
  const counted = meter(progress, 'downloading', Number.isFinite(length) ? length : undefined, inv.runtime.stderr.isTTY === true);
  if (file === '-') return pipeline(res, counted, process.stdout);
  // Written beside its name and renamed when whole: a cut download leaves no file that looks complete.
  const part = `${file}.part`;
  try {
    await pipeline(res, counted, createWriteStream(part));
    if (Number.isFinite(length) && statSync(part).size !== length) throw new CliFailure(`the download of ${id} was cut before its end`, 'ServiceUnavailable');
    renameSync(part, file);
  } catch (err) {
    rmSync(part, { force: true });
    throw err;
  }
  inv.print({ id, format, file, bytes: length }, () => `${id}: ${format} image written to ${file} (${length} bytes)\n`);
}
