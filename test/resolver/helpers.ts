import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommandCatalog } from '../../src/commands/catalog.js';
import { CommandRunner } from '../../src/commands/runner.js';
import { FIXED_PARAMS } from '../../src/delegates/vmm/adapter.js';
import { sim } from '../sim/helpers.js';

export const COMMANDS = join(import.meta.dirname, '..', '..', 'commands.properties');

/** A fresh host simulator state folder: the stand-in Nimbus node and OpenStack client live there. */
export function cloudSite(): string {
  return mkdtempSync(join(tmpdir(), 'vbs-resolver-'));
}

/** The runner the resolver service builds, on the simulator's `.sim` patterns. */
export function simRunner(stateDir: string): CommandRunner {
  return new CommandRunner(CommandCatalog.fromText(readFileSync(COMMANDS, 'utf8'), COMMANDS), { fixed: { ...FIXED_PARAMS, stateDir } });
}

/** Runs a simulator management verb; throws with its stderr when it fails. */
export function must(dir: string, ...args: string[]): string {
  const r = sim(dir, args);
  if (r.code !== 0) throw new Error(`hostsim ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

export const ALICE_DN = '/O=Grid/OU=VBS/CN=alice';
export const BOB_DN = '/O=Grid/OU=VBS/CN=bob';
