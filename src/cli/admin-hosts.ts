import type { Command } from '@commander-js/extra-typings';
import * as validate from '../core/validate.js';
import { VBS_SERVICE } from '../services/vbs.js';
import { invoke, type Invocation } from './context.js';
import { CliFailure, checkLocally } from './errors.js';
import { formatTable } from './format.js';
import type { CliRuntime } from './runtime.js';

/** RetireHost's answer, field names as in the WSDL. */
export interface RetireResult {
  readonly host: string;
  readonly volume: readonly { volumeId: string; released: number; fenced: boolean; message?: string }[];
  readonly pending: number;
}

/** `vbs admin host retire NAME`: for a VMM host gone for good. */
export function registerHostCommands(admin: Command, runtime: CliRuntime): void {
  const host = admin.command('host').description('VMM hosts as the front knows them');
  host
    .command('retire')
    .description('for a VMM host gone for good: keep it out of every volume target, release its attachments and cancel the work stuck on it; remove it from the front configuration after')
    .argument('<name>', 'the VMM host, as the front configuration names it')
    .action((name, _opts, cmd) => invoke(runtime, cmd, (inv) => retireHost(inv, name)));
}

export async function retireHost(inv: Invocation, name: string): Promise<void> {
  const host = checkLocally(() => validate.hostName(name, 'host'));
  // Not retried blindly: each volume's release is itself a journaled workflow, and asking again finishes what is left.
  const out = await inv.connect(VBS_SERVICE).call('RetireHost', { host });
  const result: RetireResult = { host: String(out.host), volume: (out.volume ?? []) as unknown as RetireResult['volume'], pending: Number(out.pending ?? 0) };
  inv.print(result, retireTable);
  const failed = result.volume.filter((v) => v.message !== undefined).length;
  if (failed || result.pending) {
    throw new CliFailure(`${failed} volume${failed === 1 ? '' : 's'} not released yet and ${result.pending} piece${result.pending === 1 ? '' : 's'} of work still pending on '${host}'; run it again once the volume delegates answer.`);
  }
}

export function retireTable(r: RetireResult): string {
  if (!r.volume.length) return `Nothing was attached to or pending on '${r.host}'.\n`;
  const table = formatTable(
    ['VOLUME', 'RELEASED', 'FENCED', 'MESSAGE'],
    r.volume.map((v) => [v.volumeId, String(v.released), v.fenced ? 'yes' : 'no (storage cannot fence)', v.message ?? '']),
  );
  return `${table}'${r.host}' is retired: remove it from the front configuration's vmmHosts.\n`;
}
