import type { Command } from '@commander-js/extra-typings';
import { VBS_SERVICE } from '../services/vbs.js';
import { invoke, type Invocation } from './context.js';
import { CliFailure } from './errors.js';
import { formatTable } from './format.js';
import { registerQuotaCommands } from './quotas.js';
import { registerVmCommands } from './admin-vms.js';
import { retryWhenUnavailable } from './retry.js';
import { registerUserCommands } from './admin-users.js';
import { registerHostCommands } from './admin-hosts.js';
import { registerMetadataCommands } from './admin-metadata.js';
import type { CliRuntime } from './runtime.js';

/** A CheckConsistency finding, field names as in the WSDL. */
export interface Finding {
  readonly kind: string;
  readonly resource: string;
  readonly location: string;
  readonly detail: string;
  readonly repaired: boolean;
}

export interface CheckResult {
  readonly clean: boolean;
  readonly finding: readonly Finding[];
}

export const FINDING_HEADERS = ['KIND', 'RESOURCE', 'LOCATION', 'REPAIRED', 'DETAIL'] as const;

export function registerAdminCommands(program: Command, runtime: CliRuntime): void {
  const admin = program.command('admin').description("administrators' operations: `check`, `backup`, `rebuild` (the caller must be one of the front's admins), `user` and `restore` (on the data folder)");
  admin
    .command('check')
    .description('compare the metadata with what every delegate reports and list each difference; exit 0 only when everything matches')
    .option('--repair', 'also fix what is safe to fix (orphans are reported, never deleted)')
    .action((opts, cmd) => invoke(runtime, cmd, (inv) => check(inv, opts.repair === true)));
  registerQuotaCommands(admin, runtime);
  registerVmCommands(admin, runtime);
  registerHostCommands(admin, runtime);
  registerMetadataCommands(admin as unknown as Command, runtime);
  registerUserCommands(admin as unknown as Command, runtime);
}

export async function check(inv: Invocation, repair: boolean): Promise<void> {
  const front = inv.connect(VBS_SERVICE);
  const ask = () => front.call('CheckConsistency', { repair });
  // A check only reads, so it may be asked again; a repair is not repeated blindly.
  const out = repair
    ? await ask()
    : await retryWhenUnavailable(ask, {
        sleep: inv.runtime.sleep,
        onRetry: (err, retry, of, delayMs) => inv.runtime.stderr.write(`vbs: ${err.code}: ${err.message} Retrying in ${delayMs / 1000} s (${retry} of ${of}).\n`),
      });
  const result: CheckResult = { clean: out.clean === true, finding: (out.finding ?? []) as unknown as Finding[] };
  inv.print(result, findingsTable);
  if (!result.clean) {
    const left = result.finding.filter((f) => !f.repaired).length;
    const hint = repair ? '' : '; `vbs admin check --repair` fixes what is safe to fix';
    throw new CliFailure(`${left} difference${left === 1 ? '' : 's'} between the metadata and the delegates remain${left === 1 ? 's' : ''}${hint}.`);
  }
}

export function findingsTable(result: CheckResult): string {
  if (!result.finding.length) return 'No differences: the metadata matches what every delegate reports.\n';
  const table = formatTable(
    FINDING_HEADERS,
    result.finding.map((f) => [f.kind, f.resource, f.location, f.repaired ? 'yes' : 'no', f.detail]),
  );
  const repaired = result.finding.filter((f) => f.repaired).length;
  return `${table}${result.finding.length} finding${result.finding.length === 1 ? '' : 's'}, ${repaired} repaired.\n`;
}
