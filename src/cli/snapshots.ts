import type { Command } from '@commander-js/extra-typings';
import * as validate from '../core/validate.js';
import { invoke, type Invocation } from './context.js';
import { checkLocally, CliFailure } from './errors.js';
import { snapshotsTable } from './format.js';
import { collect, FILTER_HELP, MAX_RESULTS_HELP, printListing, runListing, STARTING_TOKEN_HELP, type ListingOptions } from './listing.js';
import type { Snapshot } from './records.js';
import type { CliRuntime } from './runtime.js';
import { waitForSnapshot, waitForSnapshotGone } from './wait.js';

export function registerSnapshotCommands(program: Command, runtime: CliRuntime): void {
  program
    .command('create-snapshot')
    .description('take a point-in-time copy of a volume')
    .argument('<volume-id>')
    .argument('[comment]', 'a note kept with the snapshot')
    .option('--client-token <token>', 'idempotency token (default: a new random UUID)')
    .action((volumeId, comment, opts, cmd) =>
      invoke(runtime, cmd, (inv) => createSnapshot(inv, { volumeId, comment, clientToken: opts.clientToken })),
    );

  program
    .command('delete-snapshot')
    .description('delete a snapshot that no volume is being created from')
    .argument('<snapshot-id>')
    .action((snapshotId, _opts, cmd) => invoke(runtime, cmd, (inv) => deleteSnapshot(inv, snapshotId)));

  program
    .command('describe-snapshots')
    .description('describe the given snapshots, or all of yours (every page, unless --max-results)')
    .argument('[snapshot-id...]')
    .option('--filter <name=value>', FILTER_HELP.snapshot, collect, [] as string[])
    .option('--max-results <n>', MAX_RESULTS_HELP)
    .option('--starting-token <token>', STARTING_TOKEN_HELP)
    .action((snapshotIds, opts, cmd) => invoke(runtime, cmd, (inv) => describeSnapshots(inv, snapshotIds, opts)));

  for (const share of [true, false]) {
    program
      .command(share ? 'share-snapshot' : 'unshare-snapshot')
      .description(
        share
          ? 'let a user see your snapshot and create volumes from it (they cannot delete or share it)'
          : 'stop sharing your snapshot with a user (volumes they already made from it stay theirs)',
      )
      .argument('<snapshot-id>')
      .argument('<user>', "the user's certificate name")
      .action((snapshotId, user, _opts, cmd) => invoke(runtime, cmd, (inv) => shareSnapshot(inv, snapshotId, user, share)));
  }
}

export async function shareSnapshot(inv: Invocation, rawId: string, rawUser: string, share: boolean): Promise<void> {
  const snapshotId = checkLocally(() => validate.snapshotId(rawId));
  const user = checkLocally(() => validate.userName(rawUser));
  const done = await inv.vbs().shareSnapshot(snapshotId, user, share);
  inv.print({ return: done }, () => `${snapshotId}: ${share ? 'shared with' : 'no longer shared with'} ${user}\n`);
}

interface CreateSnapshotArgs {
  readonly volumeId: string;
  readonly comment?: string;
  readonly clientToken?: string;
}

export async function createSnapshot(inv: Invocation, args: CreateSnapshotArgs): Promise<void> {
  const input = {
    volumeId: checkLocally(() => validate.volumeId(args.volumeId)),
    comment: args.comment === undefined ? undefined : checkLocally(() => validate.comment(args.comment)),
    // Always a token, so a retry after a lost answer cannot take a second snapshot.
    clientToken: checkLocally(() => validate.clientToken(args.clientToken)) ?? inv.runtime.newClientToken(),
  };
  const api = inv.vbs();
  let snapshot = await api.createSnapshot(input);
  if (inv.options.wait) snapshot = await waitForSnapshot(api, inv.waitOptions(), snapshot.snapshotId, ['completed']);
  inv.print(snapshot, (s) => snapshotsTable([s]));
  failIfError(snapshot);
}

export async function deleteSnapshot(inv: Invocation, rawId: string): Promise<void> {
  const snapshotId = checkLocally(() => validate.snapshotId(rawId));
  const api = inv.vbs();
  const accepted = await api.deleteSnapshot(snapshotId);
  if (inv.options.wait) {
    const left = await waitForSnapshotGone(api, inv.waitOptions(), snapshotId);
    if (left) failIfError(left);
  }
  inv.print({ return: accepted }, () => `${snapshotId}: ${inv.options.wait ? 'deleted' : 'deleting'}\n`);
}

export async function describeSnapshots(inv: Invocation, rawIds: readonly string[], opts: ListingOptions = { filter: [] }): Promise<void> {
  const snapshotIds = rawIds.map((id) => checkLocally(() => validate.snapshotId(id)));
  const api = inv.vbs();
  const listed = await runListing(inv, 'snapshot', snapshotIds, opts, ({ ids, ...page }) => api.describeSnapshotsPage({ ...page, snapshotId: ids }));
  printListing(inv, 'snapshots', listed, snapshotsTable);
}

/** A snapshot that ended in error fails the command (exit 1) with the front's reason. */
function failIfError(snapshot: Snapshot): void {
  if (snapshot.status === 'error') {
    throw new CliFailure(`${snapshot.snapshotId} is in error: ${snapshot.statusMessage ?? 'no reason given'}`, 'OperationFailed');
  }
}
