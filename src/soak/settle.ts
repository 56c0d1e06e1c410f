import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Finding } from '../cli/admin.js';
import { VBS_HOME } from '../core/paths.js';
import { SERVICES, type SoakDeployment } from './deployment.js';
import { findViolations, isQuiet } from './invariants.js';

const run = promisify(execFile);
const VBS_BIN = join(VBS_HOME, 'bin', 'vbs.js');
/** How long the services get to come back after the chaos, and the deployment to become quiet. */
export const BACK_TIMEOUT_MS = 60_000;
export const QUIET_TIMEOUT_MS = 120_000;

export interface SettleResult {
  /** How long it took until nothing was in flight (or the bound, when it never was). */
  readonly settledMs: number;
  readonly quiet: boolean;
  readonly violations: string[];
  readonly adminCheck: { readonly clean: boolean; readonly findings: readonly Finding[] } | undefined;
}

/**
 * After the chaos: waits (bounded) until every service runs again and nothing
 * is in flight, then checks every invariant on the metadata, the simulated
 * storage and VMM host, and asks `vbs admin check --json` (without `--repair`:
 * the system must become consistent by itself; a difference that needs an
 * operator's repair is a violation, and so is a state that never settles).
 */
export async function settleAndJudge(dep: SoakDeployment): Promise<SettleResult> {
  const violations: string[] = [];
  const t0 = Date.now();
  const backBy = t0 + BACK_TIMEOUT_MS;
  while (SERVICES.some((s) => dep.servicePid(s) === undefined) && dep.exited === undefined && Date.now() < backBy) await delay(200);
  if (dep.exited !== undefined) return { settledMs: Date.now() - t0, quiet: false, violations: [`vbs up ended (${dep.exited}): it gave up on a service; see vbs-up.log`], adminCheck: undefined };
  const down = SERVICES.filter((s) => dep.servicePid(s) === undefined);
  if (down.length) violations.push(`${down.join(', ')} did not run again within ${BACK_TIMEOUT_MS / 1000} s of the chaos ending`);

  const quietBy = Date.now() + QUIET_TIMEOUT_MS;
  let quiet = safeIsQuiet(dep.dir);
  while (!quiet && Date.now() < quietBy) {
    await delay(250);
    quiet = safeIsQuiet(dep.dir);
  }
  const settledMs = Date.now() - t0;
  // When it never became quiet, the quiet invariants name what is still in flight.
  try {
    violations.push(...findViolations(dep.dir));
  } catch (err) {
    violations.push(`the invariants could not be read: ${(err as Error).message}`);
  }
  const adminCheck = await adminCheckOf(dep);
  if (!adminCheck.result) violations.push(`vbs admin check did not answer: ${adminCheck.error}`);
  else for (const f of adminCheck.result.findings.filter((x) => !x.repaired)) violations.push(`vbs admin check: ${f.kind} ${f.resource} at ${f.location}: ${f.detail}`);
  return { settledMs, quiet, violations, adminCheck: adminCheck.result };
}

function safeIsQuiet(dir: string): boolean {
  try {
    return isQuiet(dir);
  } catch {
    return false; // a read that raced a write: look again
  }
}

/** `vbs admin check --json` through the real CLI, as an operator would run it. Exit 1 means findings, not a failure. */
async function adminCheckOf(dep: SoakDeployment): Promise<{ result?: { clean: boolean; findings: Finding[] }; error?: string }> {
  let stdout: string;
  try {
    stdout = (await run(process.execPath, [VBS_BIN, '--config', dep.clientConfig, '--json', 'admin', 'check'], { timeout: 120_000 })).stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    if (!e.stdout) return { error: (e.stderr || e.message).trim() };
    stdout = e.stdout;
  }
  try {
    const parsed = JSON.parse(stdout) as { clean: boolean; finding?: Finding[] };
    return { result: { clean: parsed.clean, findings: parsed.finding ?? [] } };
  } catch {
    return { error: `unreadable output: ${stdout.slice(0, 500)}` };
  }
}
