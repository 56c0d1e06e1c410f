import type { Command } from '@commander-js/extra-typings';
import * as validate from '../core/validate.js';
import { invoke, type Invocation } from './context.js';
import { checkLocally, CliFailure } from './errors.js';
import { formatTable, formatTime } from './format.js';
import { collect, FILTER_HELP, MAX_RESULTS_HELP, printListing, runListing, STARTING_TOKEN_HELP, type ListingOptions } from './listing.js';
import type { VolumeModification } from './records.js';
import type { CliRuntime } from './runtime.js';
import { pollUntil } from './wait.js';

/** `vbs modify-volume` and `vbs describe-volumes-modifications` (ModifyVolume: volumes grow). */
export function registerModificationCommands(program: Command, runtime: CliRuntime): void {
  program
    .command('modify-volume')
    .description('grow a volume to --size GiB (never smaller); the VMs it is attached to are told of the new size')
    .argument('<volume-id>')
    .requiredOption('--size <gib>', 'the new size in GiB, larger than the volume')
    .action((volumeId, opts, cmd) => invoke(runtime, cmd, (inv) => modifyVolume(inv, volumeId, opts.size)));

  program
    .command('describe-volumes-modifications')
    .description("the most recent modification of the given volumes, or of all of yours (every page, unless --max-results)")
    .argument('[volume-id...]')
    .option('--all-requests', "every request's record, not only each volume's most recent")
    .option('--filter <name=value>', FILTER_HELP.modification, collect, [] as string[])
    .option('--max-results <n>', MAX_RESULTS_HELP)
    .option('--starting-token <token>', STARTING_TOKEN_HELP)
    .action((volumeIds, opts, cmd) => invoke(runtime, cmd, (inv) => describeModifications(inv, volumeIds, opts)));
}

export async function modifyVolume(inv: Invocation, rawId: string, rawSize: string): Promise<void> {
  const volumeId = checkLocally(() => validate.volumeId(rawId));
  const size = checkLocally(() => validate.sizeGiB(rawSize, 'size'));
  const api = inv.vbs();
  let m = await api.modifyVolume(volumeId, size);
  if (inv.options.wait && !isSettled(m)) {
    m = await pollUntil(
      inv.waitOptions(),
      `the modification of ${volumeId} to be completed`,
      async () => (await api.describeVolumesModificationsPage({ volumeId: [volumeId] })).items[0] ?? m,
      isSettled,
      (x) => `${volumeId}: ${x.modificationState} ${x.progress}%`,
    );
  }
  inv.print(m, (x) => modificationsTable([x]));
  if (m.modificationState === 'failed') throw new CliFailure(`the modification of ${volumeId} failed: ${m.statusMessage ?? 'no reason given'}`, 'OperationFailed');
}

export async function describeModifications(inv: Invocation, rawIds: readonly string[], opts: ListingOptions & { allRequests?: boolean }): Promise<void> {
  const volumeIds = rawIds.map((id) => checkLocally(() => validate.volumeId(id)));
  const api = inv.vbs();
  const allRequests = opts.allRequests === true;
  const listed = await runListing(inv, 'modification', volumeIds, opts, ({ ids, ...page }) => api.describeVolumesModificationsPage({ ...page, volumeId: ids, allRequests }));
  printListing(inv, 'modifications', listed, modificationsTable);
}

const isSettled = (m: VolumeModification): boolean => m.modificationState === 'completed' || m.modificationState === 'failed';

export const MODIFICATION_HEADERS = ['VOLUME', 'STATE', 'ORIGINAL(GiB)', 'TARGET(GiB)', 'PROGRESS', 'STARTED', 'ENDED', 'MESSAGE'] as const;

export function modificationsTable(mods: readonly VolumeModification[]): string {
  return formatTable(
    MODIFICATION_HEADERS,
    mods.map((m) => [
      m.volumeId,
      m.modificationState,
      String(m.originalSize),
      String(m.targetSize),
      `${m.progress}%`,
      formatTime(m.startTime),
      formatTime(m.endTime),
      m.statusMessage ?? '',
    ]),
  );
}
