import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomInt } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { Chaos, type ChaosEvent } from './chaos.js';
import { SoakClock } from './clock-step.js';
import { SERVICES, SoakDeployment, writeThinCommands } from './deployment.js';
import { proxyTheFront, SOAK_FRONT_SETTINGS } from './front-settings.js';
import { HANG_TOOLS, HostHangs } from './hang.js';
import { startSamplers } from './samplers.js';
import { parseSoakOptions, UsageError, USAGE, type SoakOptions } from './options.js';
import { Prng } from './prng.js';
import { SoakVms } from './qemu-vms.js';
import { RequestLog } from './request-log.js';
import { settleAndJudge, type SettleResult } from './settle.js';
import { VMS, Workload } from './workload.js';

/** How often the invariants that hold at every instant are sampled while the chaos runs. */
const SAMPLE_EVERY_MS = 2_000;
/** How often the hypervisors' disks are compared with the metadata while the chaos runs. */
const HYPERVISOR_SAMPLE_EVERY_MS = 300;

/**
 * `npm run soak`: runs a deployment (`vbs up`, the front reaching its
 * delegates through faulty proxies, with a short claim lease and a clock the
 * soak steps), C clients making random valid requests, and chaos (SIGKILL
 * and SIGSTOP/SIGCONT of its services, SIGKILL of the host commands its
 * delegates run, hung host commands, cut and stalled delegate calls, clock
 * steps) for N seconds, while an observer compares the hypervisors' disks
 * with the metadata every few hundred ms; then settles and checks every
 * invariant. Ends with `soak: <ops> operations, <kills> kills, <n>
 * violations`, exit 1 on any violation or when the clients did fewer
 * requests than the floor, and leaves a post-mortem folder: requests.jsonl,
 * chaos.jsonl, violations.json, vbs-up.log and the deployment itself (its
 * logs and metadata).
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
  // A soak judges one run from nothing: an earlier run's deployment (its
  // database, its leftovers) in the same folder would be counted as this one's.
  if (existsSync(dir) && readdirSync(dir).length) {
    process.stderr.write(`soak: ${out} already holds a deployment from an earlier run; give an empty or new --out folder\n`);
    return 2;
  }
  mkdirSync(dir, { recursive: true });
  const say = (line: string) => process.stdout.write(`${line}\n`);
  say(`soak: ${opts.seconds} s on the ${opts.backend} back end, seed ${opts.seed}, ${opts.clients} clients; post-mortem in ${out}`);

  const commands = join(out, 'commands.properties');
  writeThinCommands(commands);
  // The services' clock, which the chaos steps; every service `vbs up` starts reads it.
  const clock = new SoakClock(join(out, 'clock-offset'));
  // rbd: real QEMU VMs (the simulated hypervisor cannot open rbd images), and the cluster named.
  const vms = opts.backend === 'rbd' ? SoakVms.start(join(out, 'qmp'), VMS) : undefined;
  const upArgs = rbdUpArgs(opts, vms);
  const dep = await SoakDeployment.start({ dir, backend: opts.backend, commands, stderrFile: join(out, 'vbs-up.log'), env: { VBS_CLOCK_OFFSET_FILE: clock.file }, upArgs }).catch(async (err: unknown) => {
    await vms?.stop();
    throw err;
  });
  // The front again, now through the proxies and with the soak's lease and call timeout.
  const { proxies, callTimeoutMs } = await proxyTheFront(dir).catch(async (err: unknown) => {
    await dep.stop();
    await vms?.stop();
    throw err;
  });
  const reconfigured = Date.now();
  const restartAll = async () => {
    await dep.restartService('front');
    if (opts.backend === 'rbd') {
      overcommitRbd(dir);
      await dep.restartService('volume-delegate');
    }
  };
  await restartAll().catch(async (err: unknown) => {
    await dep.stop();
    await vms?.stop();
    for (const p of proxies.values()) await p.close();
    throw err;
  });
  const prng = new Prng(opts.seed);
  const log = new RequestLog(join(out, 'requests.jsonl'));
  const workload = new Workload({ clientConfig: dep.clientConfig, clients: opts.clients, seed: opts.seed, maxVolumes: 4 + 3 * opts.clients, maxSnapshots: 2 + 2 * opts.clients }, prng.fork(), log);
  const chaos = new Chaos(dep, prng.fork(), join(out, 'chaos.jsonl'), {
    proxies,
    hangs: new HostHangs(join(dir, 'vmm-sim')),
    hangKeys: HANG_TOOLS[opts.backend],
    clock,
    leaseMs: SOAK_FRONT_SETTINGS.claimLeaseMs,
    callTimeoutMs,
  });
  chaos.noteRestart('front', reconfigured);
  if (opts.backend === 'rbd') chaos.noteRestart('volume-delegate', reconfigured);
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
  let hypervisorSamples = 0;
  const started = Date.now();
  try {
    const samplers = startSamplers(dir, SAMPLE_EVERY_MS, HYPERVISOR_SAMPLE_EVERY_MS);
    workload.start();
    chaos.start();
    await Promise.race([delay(opts.seconds * 1000, undefined, { signal: early.signal }).catch(() => {}), dep.whenExited()]);
    await chaos.stop();
    await workload.stop();
    const seen = await samplers.stop();
    hypervisorSamples = seen.samples;
    during = [...seen.invariants.map((v) => `during the run: ${v}`), ...seen.hypervisors.map((v) => `during the run (${v.time}): ${v.violation}`)];
    settled = await settleAndJudge(dep);
  } finally {
    await chaos.stop().catch(() => {});
    await log.close();
    await dep.stop();
    await vms?.stop();
    for (const p of proxies.values()) await p.close();
  }
  const violations = [...during, ...settled.violations];
  // Too little work proves nothing: the run fails, whatever it saw.
  const tooLittle = log.total < opts.minOperations ? `the clients made ${log.total} requests, fewer than the floor of ${opts.minOperations} (--min-operations)` : undefined;
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
    // Cuts and stalls armed are used by the next request that passes: these did take effect.
    proxyFaults: Object.fromEntries([...proxies].map(([name, p]) => [name, { ...p.fired }])),
    clockOffsetMs: clock.offsetMs,
    hypervisorSamples,
    minOperations: opts.minOperations,
    tooLittle,
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
  if (tooLittle) say(`soak: FAILED: ${tooLittle}`);
  say(`soak: ${log.total} operations, ${chaos.kills} kills, ${violations.length} violations`);
  return violations.length || tooLittle ? 1 : 0;
}

/** The capacity the rbd soak's volume delegate provisions: thin images, as the file soak's are sparse. */
const RBD_SOAK_CAPACITY_GIB = 256;

/**
 * The rbd back end counts each image at its full size against the pool's
 * free space (docs/rbd.md), so a test cluster of 10 GiB holds nine 1-GiB
 * volumes and most creates would be refused for space. The soak writes no
 * data, so it over-commits on purpose (`capacityGiB`), as its file back end
 * makes sparse volumes.
 */
function overcommitRbd(dir: string): void {
  const file = join(dir, 'volume-delegate.json');
  const cfg = JSON.parse(readFileSync(file, 'utf8')) as { backend: Record<string, unknown> };
  cfg.backend.capacityGiB = RBD_SOAK_CAPACITY_GIB;
  writeFileSync(file, `${JSON.stringify(cfg, null, 2)}\n`, { mode: 0o600 });
}

/** `vbs up`'s arguments for the rbd back end: the cluster, and the QEMU VMs' sockets. */
function rbdUpArgs(opts: SoakOptions, vms: SoakVms | undefined): string[] {
  if (!opts.ceph || !vms) return [];
  const { conf, pool, keyring } = opts.ceph;
  return ['--vmm', 'qemu', '--qmp-dir', vms.qmpDir, '--ceph-conf', resolve(conf), ...(pool ? ['--ceph-pool', pool] : []), ...(keyring ? ['--ceph-keyring', resolve(keyring)] : [])];
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
  r: {
    operations: number;
    outcomes: Record<string, number>;
    chaos: Record<string, Record<string, number>>;
    proxyFaults: Record<string, { cut: number; stall: number }>;
    clockOffsetMs: number;
    hypervisorSamples: number;
    unexpectedStops: number;
    settledMs: number;
    quiet: boolean;
    violations: string[];
    internalErrors: unknown[];
  },
): void {
  const outcomes = Object.entries(r.outcomes).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ');
  say(`summary (seed ${opts.seed}, ${opts.backend}):`);
  say(`  requests: ${r.operations} (${outcomes || 'none'})`);
  for (const [kind, per] of Object.entries(r.chaos)) {
    const list = [...SERVICES, 'all']
      .filter((s) => per[s])
      .map((s) => `${s} ${per[s]}`)
      .join(', ');
    say(`  ${kind}: ${Object.values(per).reduce((a, b) => a + b, 0)} (${list})`);
  }
  const fired = Object.entries(r.proxyFaults).map(([name, f]) => `${name} ${f.cut} cut, ${f.stall} stalled`).join('; ');
  say(`  delegate calls that took a cut or a stall: ${fired}`);
  say(`  the services' clock ended ${(r.clockOffsetMs / 1000).toFixed(1)} s ahead of the real one`);
  say(`  hypervisor samples during the load: ${r.hypervisorSamples}`);
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
