import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomInt } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { Chaos, type ChaosEvent } from './chaos.js';
import { SERVICES, SoakDeployment, writeThinCommands } from './deployment.js';
import { watchInvariants } from './invariants.js';
import { parseSoakOptions, UsageError, USAGE, type SoakOptions } from './options.js';
import { Prng } from './prng.js';
import { RequestLog } from './request-log.js';
import { settleAndJudge, type SettleResult } from './settle.js';
import { Workload } from './workload.js';

/** How often the invariants that hold at every instant are sampled while the chaos runs. */
const SAMPLE_EVERY_MS = 2_000;

/**
 * `npm run soak`: runs a deployment (`vbs up`), C clients making random valid
 * requests, and chaos (SIGKILL and SIGSTOP/SIGCONT of its services, SIGKILL
 * of the host commands its delegates run) for N seconds; then settles and
 * checks every invariant. Ends with `soak: <ops> operations, <kills> kills,
 * <n> violations`, exit 1 on any violation, and leaves a post-mortem folder:
 * requests.jsonl, chaos.jsonl, violations.json, vbs-up.log and the
 * deployment itself (its logs and metadata).
 */
async function main(argv: readonly string[]): Promise<number> {
  let opts: SoakOptions;
  try {
    opts = parseSoakOptions(argv, () => randomInt(2 ** 32 - 1));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`soak: ${err.message}\n${USAGE}\n`);
    return 2;
  }
  const out = opts.out ? resolve(opts.out) : mkdtempSync(join(tmpdir(), `vbs-soak-${opts.backend}-`));
  const dir = join(out, 'deployment');
  mkdirSync(dir, { recursive: true });
  const say = (line: string) => process.stdout.write(`${line}\n`);
  say(`soak: ${opts.seconds} s on the ${opts.backend} back end, seed ${opts.seed}, ${opts.clients} clients; post-mortem in ${out}`);

  const commands = join(out, 'commands.properties');
  writeThinCommands(commands);
  const dep = await SoakDeployment.start({ dir, backend: opts.backend, commands, stderrFile: join(out, 'vbs-up.log') });
  const prng = new Prng(opts.seed);
  const log = new RequestLog(join(out, 'requests.jsonl'));
  const workload = new Workload({ clientConfig: dep.clientConfig, clients: opts.clients, seed: opts.seed, maxVolumes: 4 + 3 * opts.clients, maxSnapshots: 2 + 2 * opts.clients }, prng.fork(), log);
  const chaos = new Chaos(dep, prng.fork(), join(out, 'chaos.jsonl'));
  // A first Ctrl-C ends the chaos early and goes on to the checks; a second one stops at once.
  const early = new AbortController();
  let interrupts = 0;
  const onSignal = () => {
    if (++interrupts === 1) return early.abort();
    void dep.stop().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let settled: SettleResult | undefined;
  let during: string[] = [];
  const started = Date.now();
  try {
    const watch = watchInvariants(dir, SAMPLE_EVERY_MS);
    workload.start();
    chaos.start();
    await Promise.race([delay(opts.seconds * 1000, undefined, { signal: early.signal }).catch(() => {}), dep.whenExited()]);
    await chaos.stop();
    await workload.stop();
    during = watch.stop().map((v) => `during the run: ${v}`);
    settled = await settleAndJudge(dep);
  } finally {
    await chaos.stop().catch(() => {});
    await log.close();
    await dep.stop();
  }
  const violations = [...during, ...settled.violations];
  const report = {
    seed: opts.seed,
    backend: opts.backend,
    seconds: opts.seconds,
    clients: opts.clients,
    ranMs: Date.now() - started,
    operations: log.total,
    outcomes: Object.fromEntries(log.outcomes),
    kills: chaos.kills,
    chaos: chaosCounts(chaos.events),
    unexpectedStops: dep.unexpectedStops,
    settledMs: settled.settledMs,
    quiet: settled.quiet,
    violations,
    internalErrors: log.internalErrors,
    // What the clients did to each resource a violation names: where a post-mortem starts.
    histories: Object.fromEntries(idsIn(violations).map((id) => [id, log.historyOf(id)])),
    adminCheck: settled.adminCheck,
  };
  writeFileSync(join(out, 'violations.json'), `${JSON.stringify(report, null, 2)}\n`);
  printSummary(say, opts, out, report);
  say(`soak: ${log.total} operations, ${chaos.kills} kills, ${violations.length} violations`);
  return violations.length ? 1 : 0;
}

function idsIn(lines: readonly string[]): string[] {
  return [...new Set(lines.flatMap((l) => l.match(/\b(?:vol|snap)-[0-9a-f]{17}\b/g) ?? []))];
}

function chaosCounts(events: readonly ChaosEvent[]): Record<string, Record<string, number>> {
  const counts: Record<string, Record<string, number>> = {};
  for (const e of events) {
    const kind = e.missed ? `${e.kind} (missed)` : e.kind;
    counts[kind] ??= {};
    counts[kind][e.service] = (counts[kind][e.service] ?? 0) + 1;
  }
  return counts;
}

function printSummary(
  say: (line: string) => void,
  opts: SoakOptions,
  out: string,
  r: { operations: number; outcomes: Record<string, number>; chaos: Record<string, Record<string, number>>; unexpectedStops: number; settledMs: number; quiet: boolean; violations: string[]; internalErrors: unknown[] },
): void {
  const outcomes = Object.entries(r.outcomes).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ');
  say(`summary (seed ${opts.seed}, ${opts.backend}):`);
  say(`  requests: ${r.operations} (${outcomes || 'none'})`);
  for (const [kind, per] of Object.entries(r.chaos)) {
    const list = SERVICES.filter((s) => per[s]).map((s) => `${s} ${per[s]}`).join(', ');
    say(`  ${kind}: ${Object.values(per).reduce((a, b) => a + b, 0)} (${list})`);
  }
  say(`  services that stopped unexpectedly (as vbs up reported): ${r.unexpectedStops}`);
  say(`  internal errors returned to clients: ${r.internalErrors.length}`);
  say(`  settled: ${r.quiet ? `quiet after ${(r.settledMs / 1000).toFixed(1)} s` : `NOT quiet after ${(r.settledMs / 1000).toFixed(1)} s`}`);
  for (const v of r.violations) say(`  VIOLATION: ${v}`);
  say(`  post-mortem: ${out} (requests.jsonl, chaos.jsonl, violations.json, vbs-up.log, deployment/logs)`);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`soak: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(2);
  },
);
