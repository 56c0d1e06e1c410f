import type { Command } from '@commander-js/extra-typings';
import * as validate from '../core/validate.js';
import { invoke, type Invocation } from './context.js';
import { checkLocally, CliFailure, UsageError } from './errors.js';
import { volumesTable } from './format.js';
import { collect, FILTER_HELP, MAX_RESULTS_HELP, printListing, runListing, STARTING_TOKEN_HELP, type ListingOptions } from './listing.js';
import type { Volume } from './records.js';
import type { CliRuntime } from './runtime.js';
import { waitForVolume, waitForVolumeGone } from './wait.js';
import { parseTag } from './tags.js';

export function registerVolumeCommands(program: Command, runtime: CliRuntime): void {
  program
    .command('create-volume')
    .description('create a blank volume of <size> GiB, or one holding the data of <snapshot-id>')
    .argument('<size>', 'size in GiB')
    .argument('[comment]', 'a note kept with the volume')
    .argument('[snapshot-id]', 'snapshot to copy the data from')
    .option('--client-token <token>', 'idempotency token (default: a new random UUID)')
    .option('--zone <zone>', 'the availability zone to create it in (describe-availability-zones)')
    .option('--tag <key=value>', 'a tag to put on it (repeat it)', collect, [] as string[])
    .option('--count <n>', `make n independent volumes alike (1-${MAX_COUNT}; from a snapshot: O(1) each on reflink files and rbd clones)`, '1')
    .action((size, comment, snapshotId, opts, cmd) =>
      invoke(runtime, cmd, (inv) => createVolume(inv, { size, comment, snapshotId, clientToken: opts.clientToken, zone: opts.zone, tags: opts.tag, count: opts.count })),
    );

  program
    .command('delete-volume')
    .description('delete a volume that is not attached')
    .argument('<volume-id>')
    .action((volumeId, _opts, cmd) => invoke(runtime, cmd, (inv) => deleteVolume(inv, volumeId)));

  program
    .command('describe-volumes')
    .description('describe the given volumes, or all of yours (every page, unless --max-results)')
    .argument('[volume-id...]')
    .option('--filter <name=value>', FILTER_HELP.volume, collect, [] as string[])
    .option('--max-results <n>', MAX_RESULTS_HELP)
    .option('--starting-token <token>', STARTING_TOKEN_HELP)
    .action((volumeIds, opts, cmd) => invoke(runtime, cmd, (inv) => describeVolumes(inv, volumeIds, opts)));
}

interface CreateVolumeArgs {
  readonly size: string;
  readonly comment?: string;
  readonly snapshotId?: string;
  readonly clientToken?: string;
  readonly zone?: string;
  readonly tags?: readonly string[];
  readonly count?: string;
}

/** The most volumes one create-volume makes (--count), and how many of its requests are in flight at once. */
export const MAX_COUNT = 100;
const COUNT_CONCURRENCY = 10;

export async function createVolume(inv: Invocation, args: CreateVolumeArgs): Promise<void> {
  const count = Number(args.count ?? '1');
  if (!/^[0-9]{1,3}$/.test(args.count ?? '1') || count < 1 || count > MAX_COUNT) throw new UsageError(`--count must be a whole number from 1 to ${MAX_COUNT}.`, 'InvalidParameterValue');
  if (count > 1) return createVolumes(inv, args, count);
  const volume = await makeVolume(inv, args, checkLocally(() => validate.clientToken(args.clientToken)) ?? inv.runtime.newClientToken());
  inv.print(volume, (v) => volumesTable([v]));
  failIfError(volume);
}

/** One CreateVolume (and, with --wait, its wait); `clientToken` makes a retry safe. */
async function makeVolume(inv: Invocation, args: CreateVolumeArgs, clientToken: string): Promise<Volume> {
  const input = {
    size: checkLocally(() => validate.sizeGiB(args.size)),
    comment: args.comment === undefined ? undefined : checkLocally(() => validate.comment(args.comment)),
    snapshotId: args.snapshotId === undefined ? undefined : checkLocally(() => validate.snapshotId(args.snapshotId)),
    // Always a token, so a retry after a lost answer cannot create a second volume.
    clientToken,
    ...(args.zone === undefined ? {} : { availabilityZone: checkLocally(() => validate.zoneName(args.zone, 'zone')) }),
    ...(args.tags?.length ? { tag: args.tags.map((t) => parseTag(t)) } : {}),
  };
  const api = inv.vbs();
  const volume = await api.createVolume(input);
  return inv.options.wait ? waitForVolume(api, inv.waitOptions(), volume.volumeId, ['available']) : volume;
}

/**
 * --count N: N CreateVolume requests, up to COUNT_CONCURRENCY at once, each
 * with its own client token (the given or a new one, plus `-<i>`), so a retry
 * of the command makes no volume twice. Each volume is independent: on
 * reflink files and rbd each is a clone made in O(1); where the back end must
 * copy (ext4, LVM without thin pools) the copies run side by side on the
 * delegate, up to its command concurrency.
 */
async function createVolumes(inv: Invocation, args: CreateVolumeArgs, count: number): Promise<void> {
  const base = checkLocally(() => validate.clientToken(args.clientToken)) ?? inv.runtime.newClientToken();
  if (base.length + 4 > 64) throw new UsageError('--client-token must be at most 60 characters with --count (each volume adds -<n>).', 'InvalidParameterValue');
  const volumes = new Array<Volume>(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      volumes[i] = await makeVolume(inv, args, `${base}-${i + 1}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(COUNT_CONCURRENCY, count) }, worker));
  inv.print(volumes, (vs) => volumesTable(vs));
  for (const v of volumes) failIfError(v);
}

export async function deleteVolume(inv: Invocation, rawId: string): Promise<void> {
  const volumeId = checkLocally(() => validate.volumeId(rawId));
  const api = inv.vbs();
  const accepted = await api.deleteVolume(volumeId);
  if (inv.options.wait) {
    const left = await waitForVolumeGone(api, inv.waitOptions(), volumeId);
    if (left) failIfError(left);
  }
  inv.print({ return: accepted }, () => `${volumeId}: ${inv.options.wait ? 'deleted' : 'deleting'}\n`);
}

export async function describeVolumes(inv: Invocation, rawIds: readonly string[], opts: ListingOptions = { filter: [] }): Promise<void> {
  const volumeIds = rawIds.map((id) => checkLocally(() => validate.volumeId(id)));
  const api = inv.vbs();
  const listed = await runListing(inv, 'volume', volumeIds, opts, ({ ids, ...page }) => api.describeVolumesPage({ ...page, volumeId: ids }));
  printListing(inv, 'volumes', listed, volumesTable);
}

/** A volume that ended in error fails the command (exit 1) with the front's reason. */
export function failIfError(volume: Volume): void {
  if (volume.status === 'error') {
    throw new CliFailure(`${volume.volumeId} is in error: ${volume.statusMessage ?? 'no reason given'}`, 'OperationFailed');
  }
}
