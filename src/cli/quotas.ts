import type { Command } from '@commander-js/extra-typings';
import * as validate from '../core/validate.js';
import { invoke, type Invocation } from './context.js';
import { checkLocally, UsageError } from './errors.js';
import { formatTable } from './format.js';
import type { Quota } from './records.js';
import type { CliRuntime } from './runtime.js';

export const QUOTA_HEADERS = ['USER', 'QUOTA', 'USED', 'LIMIT'] as const;

/** `vbs admin quota set|show`: administrators' SOAP operations on the front (SetQuota, DescribeQuota). */
export function registerQuotaCommands(admin: Command, runtime: CliRuntime): void {
  const quota = admin.command('quota').description("a user's limits: number of volumes, GiB of volumes, number of snapshots, GiB of snapshots");
  quota
    .command('set')
    .description("set a user's limits (those given; the others stay as they were)")
    .argument('<user>', "the user's certificate name")
    .option('--volumes <n>', 'volumes the user may hold')
    .option('--gib <n>', 'GiB of volumes the user may hold')
    .option('--snapshots <n>', 'snapshots the user may hold')
    .option('--snapshot-gib <n>', "GiB of snapshots the user may hold (each counts its volume's size)")
    .action((user, opts, cmd) => invoke(runtime, cmd, (inv) => setQuota(inv, user, opts)));
  quota
    .command('show')
    .description("show a user's limits beside what they hold now")
    .argument('<user>', "the user's certificate name")
    .action((user, _opts, cmd) => invoke(runtime, cmd, (inv) => showQuota(inv, user)));
}

export async function setQuota(inv: Invocation, rawUser: string, opts: { volumes?: string; gib?: string; snapshots?: string; snapshotGib?: string }): Promise<void> {
  const user = checkLocally(() => validate.userName(rawUser));
  const limits = {
    volumes: checkLocally(() => validate.limit(opts.volumes, 'volumes')),
    gib: checkLocally(() => validate.limit(opts.gib, 'gib')),
    snapshots: checkLocally(() => validate.limit(opts.snapshots, 'snapshots')),
    snapshotGib: checkLocally(() => validate.limit(opts.snapshotGib, 'snapshot-gib')),
  };
  if (Object.values(limits).every((l) => l === undefined)) throw new UsageError('Give at least one of --volumes, --gib, --snapshots, --snapshot-gib.');
  const quota = await inv.vbs().setQuota({ user, ...limits });
  inv.print(quota, quotaTable);
}

export async function showQuota(inv: Invocation, rawUser: string): Promise<void> {
  const user = checkLocally(() => validate.userName(rawUser));
  inv.print(await inv.vbs().describeQuota(user), quotaTable);
}

/** One row per limit: what the user holds beside what they may. */
export function quotaTable(q: Quota): string {
  return formatTable(QUOTA_HEADERS, [
    [q.user, 'volumes', String(q.volumes), String(q.volumeLimit)],
    [q.user, 'gib', String(q.gib), String(q.gibLimit)],
    [q.user, 'snapshots', String(q.snapshots), String(q.snapshotLimit)],
    [q.user, 'snapshot-gib', String(q.snapshotGib), String(q.snapshotGibLimit)],
  ]);
}
