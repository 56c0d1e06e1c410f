import type { Command } from '@commander-js/extra-typings';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { BackupError, backupDatabaseFile, inspectAnyBackup, restoreAnyDatabase, type BackupInfo } from '../db/backup.js';
import { isPostgresUrl, redactUrl } from '../db/postgres.js';
import { VBS_SERVICE } from '../services/vbs.js';
import { deploymentEc2 } from './aws-profile.js';
import { findingsTable, type CheckResult, type Finding } from './admin.js';
import { globalOptions, invoke } from './context.js';
import { CliFailure, UsageError } from './errors.js';
import { formatJson } from './format.js';
import type { CliRuntime } from './runtime.js';

/**
 * `vbs admin backup | restore | rebuild` (docs/operators/backup.md): the
 * metadata kept safe from the loss of its host. A backup is taken through the
 * running front (BackupMetadata) or, with --data, from the database files of
 * a deployment; a restore works only on the files of a stopped one; a rebuild
 * asks a front started on a new database to put back what the hosts hold.
 */
export function registerMetadataCommands(admin: Command, runtime: CliRuntime): void {
  admin
    .command('backup')
    .description("write a consistent copy of the front's metadata to FILE, taken while VBS runs (from the front; with --data, from a deployment's files)")
    .argument('<file>', 'where to write the backup (must not exist)')
    .option('--data <dir>', "back up the database of this data folder (as `vbs up --data`) instead of asking the front")
    .action((file, o, cmd) =>
      invoke(runtime, cmd, async (inv) => {
        const target = resolve(runtime.cwd, file);
        if (existsSync(target)) throw new UsageError(`${file} already exists; a backup never overwrites a file`);
        let info: BackupInfo;
        if (o.data !== undefined) {
          info = await local(() => backupDatabaseFile(databaseOf(runtime, o.data!), target));
        } else {
          const out = await inv.connect(VBS_SERVICE).call('BackupMetadata', {});
          info = await local(() => writeBackup(target, Buffer.from(String(out.database ?? ''), 'base64')));
        }
        report(runtime, globalOptions(cmd).json, { file: target, ...info }, `Backed up the metadata to ${target}`);
      }),
    );
  admin
    .command('restore')
    .description('put a backup in place of the metadata of a stopped deployment (refused while its front runs)')
    .argument('<file>', 'a backup made by `vbs admin backup`')
    .option('--data <dir>', "the deployment's data folder (as `vbs up --data`)", './vbs-data')
    .action((file, o, cmd) =>
      invoke(runtime, cmd, async () => {
        const database = databaseOf(runtime, o.data);
        const info = await local(() => restoreAnyDatabase(resolve(runtime.cwd, file), database));
        // A PostgreSQL URL may carry its password: shown without it.
        const shown = isPostgresUrl(database) ? redactUrl(database) : database;
        report(
          runtime,
          globalOptions(cmd).json,
          { file: shown, ...info },
          `Restored ${shown} from ${file}`,
          'Start the deployment, then run `vbs admin check` to see what changed on the hosts since the backup (`--repair` adopts it).',
        );
      }),
    );
  admin
    .command('rebuild')
    .description("on a front started with a new database: put back every volume, snapshot and attachment from the records the volume delegates keep and the disks the VMM hosts report")
    .action((_o, cmd) =>
      invoke(runtime, cmd, async (inv) => {
        const out = await inv.connect(VBS_SERVICE).call('RebuildMetadata', {});
        const result: CheckResult = { clean: out.clean === true, finding: (out.finding ?? []) as unknown as Finding[] };
        inv.print(result, findingsTable);
        const left = result.finding.filter((f) => !f.repaired).length;
        if (left) throw new CliFailure(`${left} difference${left === 1 ? '' : 's'} could not be rebuilt; \`vbs admin check\` lists what remains.`);
      }),
    );
}

/** The metadata database of a data folder (its front.json's `database`: a file, or a postgres:// URL; else `vbs up`'s default). */
function databaseOf(runtime: CliRuntime, data: string): string {
  const dir = resolve(runtime.cwd, data);
  if (!existsSync(dir)) throw new UsageError(`${data} does not exist; name the deployment's data folder with --data`);
  return deploymentEc2(dir).database;
}

/** What the front sent (an SQLite file, or a pg_dump for PostgreSQL), written beside FILE, checked as VBS metadata, then written in place. */
async function writeBackup(target: string, bytes: Buffer): Promise<BackupInfo> {
  const part = join(dirname(target), `.${basename(target)}.part`);
  try {
    writeFileSync(part, bytes, { mode: 0o600, flush: true });
    const info = await inspectAnyBackup(part);
    if (existsSync(target)) throw new BackupError(`${target} already exists; a backup never overwrites a file`);
    // The copy holds each export's CHAP secret: private like the database.
    writeFileSync(target, bytes, { mode: 0o600, flag: 'wx', flush: true });
    return info;
  } finally {
    rmSync(part, { force: true });
  }
}

async function local<T>(act: () => Promise<T>): Promise<T> {
  try {
    return await act();
  } catch (err) {
    if (err instanceof BackupError) throw new CliFailure(err.message);
    throw err;
  }
}

function report(runtime: CliRuntime, json: boolean, r: BackupInfo & { file: string }, what: string, next = ''): void {
  if (json) return void runtime.stdout.write(formatJson(r));
  runtime.stdout.write(
    `${what}: schema version ${r.schemaVersion}, ${r.volumes} volume${r.volumes === 1 ? '' : 's'}, ${r.snapshots} snapshot${r.snapshots === 1 ? '' : 's'}, ${r.attachments} attachment${r.attachments === 1 ? '' : 's'}.\n${next ? `${next}\n` : ''}`,
  );
}
