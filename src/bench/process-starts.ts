/**
 * What a process start costs VBS (issue 21, "Under load"): every host command
 * is a process the volume or VMM delegate starts (src/commands/runner.ts), and
 * on the simulated lvm-iscsi back end each of those is a Node process of its
 * own (src/sim/hostsim.ts). Measured here, each beside its baseline in the
 * same run:
 *
 *  1. One start of `/bin/true` from a process holding a delegate-sized heap
 *     and from a small one: child_process.spawn, the runner's
 *     runProcessGroup, execa, and a small long-lived helper process that
 *     starts commands on request (what the issue suggests when fork from a
 *     large heap is slow).
 *  2. The simulator's start: `node -e 0` (Node alone), the hostsim entry as
 *     shipped, and the same command with every tool module loaded (what the
 *     entry did before it loaded tools on demand), or, with
 *     `--baseline-sim FILE`, another build's hostsim.js.
 *
 * Wall time (p50, p90) and the CPU the started processes used (user + system,
 * read from /proc/self/stat's children fields): on our 2-core machines under
 * load, CPU is what limits how many host commands a minute the delegates run.
 *
 *   npm run build && node dist/bench/process-starts.js [--runs N] [--heap-mb M] [--baseline-sim FILE]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { CommandHelper } from '../commands/helper-client.js';
import { runProcessGroup } from '../commands/process-group.js';
import { percentile } from './stats.js';

const ROOT = resolve(import.meta.dirname, '../..');
const HOSTSIM = join(ROOT, 'dist', 'sim', 'hostsim.js');
const TRUE = '/bin/true';

/** Clock ticks per second of /proc's CPU times (USER_HZ: 100 on every Linux we run). */
const TICKS_PER_SECOND = 100;

function statFields(pid: number | 'self'): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** CPU (ms) used so far by a process's children that have ended and been waited for (proc(5) cutime + cstime). */
function childrenCpuMs(pid: number | 'self' = 'self'): number {
  const f = statFields(pid);
  return ((Number(f[13]) + Number(f[14])) * 1000) / TICKS_PER_SECOND;
}

/** CPU (ms) a process used itself so far (proc(5) utime + stime): where fork's copying of a large heap's page tables lands. */
function ownCpuMs(pid: number | 'self' = 'self'): number {
  const f = statFields(pid);
  return ((Number(f[11]) + Number(f[12])) * 1000) / TICKS_PER_SECOND;
}

interface Measured {
  readonly name: string;
  readonly p50: number;
  readonly p90: number;
  /** CPU of the started processes per start, ms. */
  readonly cpuMs: number;
  /** CPU of the starting side per start, ms: this process (and the helper, when one starts the command). */
  readonly starterCpuMs: number;
  /** Time this process's main thread (a delegate's event loop) was busy per start, ms: what it could not serve meanwhile. */
  readonly loopMs: number;
}

/** Runs `once` `runs` times in a row (after one warm-up), timing each. */
async function measure(name: string, runs: number, once: () => Promise<void>, helperPid?: number): Promise<Measured> {
  await once();
  const times: number[] = [];
  const cpu = () => childrenCpuMs(helperPid ?? 'self');
  const starter = () => ownCpuMs() + (helperPid ? ownCpuMs(helperPid) : 0);
  const [cpuBefore, starterBefore] = [cpu(), starter()];
  const loopBefore = performance.eventLoopUtilization();
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await once();
    times.push(performance.now() - t0);
  }
  const loop = performance.eventLoopUtilization(loopBefore);
  return {
    name,
    p50: percentile(times, 50),
    p90: percentile(times, 90),
    cpuMs: (cpu() - cpuBefore) / runs,
    starterCpuMs: (starter() - starterBefore) / runs,
    loopMs: loop.active / runs,
  };
}

function mustExitZero(what: string, code: number | null | undefined): void {
  if (code !== 0) throw new Error(`${what} exited with ${code}`);
}

/** child_process.spawn as the runner calls it (own process group, piped output), waiting for 'close'. */
function plainSpawn(file: string, args: readonly string[]): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn(file, [...args], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.resume();
    child.stderr.resume();
    child.once('error', fail);
    child.once('close', (code) => {
      try {
        mustExitZero(file, code);
        done();
      } catch (err) {
        fail(err);
      }
    });
  });
}

/**
 * A small long-lived Node process that starts commands on request (one JSON
 * line in: argv; one line out: the exit code), as a delegate could keep
 * beside it so that its own large heap is never forked.
 */
const HELPER_SOURCE = `
const { spawn } = require('node:child_process');
const rl = require('node:readline').createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const { id, argv } = JSON.parse(line);
  const child = spawn(argv[0], argv.slice(1), { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.resume();
  child.stderr.resume();
  child.once('error', () => process.stdout.write(JSON.stringify({ id, code: -1 }) + '\\n'));
  child.once('close', (code) => process.stdout.write(JSON.stringify({ id, code }) + '\\n'));
});
`;

class Helper {
  private readonly child: ChildProcess;
  private readonly waiting = new Map<number, (code: number) => void>();
  private next = 0;

  constructor() {
    this.child = spawn(process.execPath, ['-e', HELPER_SOURCE], { stdio: ['pipe', 'pipe', 'inherit'] });
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const { id, code } = JSON.parse(line) as { id: number; code: number };
      this.waiting.get(id)?.(code);
      this.waiting.delete(id);
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  run(argv: readonly string[]): Promise<void> {
    const id = this.next++;
    return new Promise((done, fail) => {
      this.waiting.set(id, (code) => (code === 0 ? done() : fail(new Error(`${argv[0]} exited with ${code}`))));
      this.child.stdin!.write(`${JSON.stringify({ id, argv })}\n`);
    });
  }

  stop(): void {
    this.child.stdin!.end();
  }
}

/** Live objects standing in for a delegate's heap: many small objects, as a service's caches and buffers are. */
function ballast(mb: number): unknown[] {
  const out: unknown[] = [];
  const perChunk = 1024; // ~1 KiB strings and objects
  for (let i = 0; i < mb * 1024; i++) out.push({ i, s: `${i}`.padEnd(perChunk, 'x') });
  return out;
}

function rssMb(): number {
  return Math.round(process.memoryUsage().rss / 1024 / 1024);
}

/** runProcessGroup in a worker thread of this process: the fork leaves the event loop, but still copies this process's page tables. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
let run;
parentPort.on('message', async ({ id, file, args }) => {
  run ??= (await import(workerData.module)).runProcessGroup;
  const r = await run(file, args, { timeoutMs: 10000 });
  parentPort.postMessage({ id, exitCode: r.exitCode });
});
`;

class ThreadStarter {
  private readonly worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { module: pathToFileURL(join(ROOT, 'dist', 'commands', 'process-group.js')).href } });
  private readonly waiting = new Map<number, (code: number | undefined) => void>();
  private next = 0;

  constructor() {
    this.worker.on('message', ({ id, exitCode }: { id: number; exitCode?: number }) => {
      this.waiting.get(id)?.(exitCode);
      this.waiting.delete(id);
    });
  }

  run(file: string): Promise<void> {
    const id = this.next++;
    return new Promise((done, fail) => {
      this.waiting.set(id, (code) => (code === 0 ? done() : fail(new Error(`${file} exited with ${code}`))));
      this.worker.postMessage({ id, file, args: [] });
    });
  }

  stop(): Promise<number> {
    return this.worker.terminate();
  }
}

async function spawnRows(runs: number): Promise<Measured[]> {
  const helper = new Helper();
  await helper.run([TRUE]);
  const thread = new ThreadStarter();
  const commandHelper = new CommandHelper(join(ROOT, 'dist', 'commands', 'command-helper.js'));
  const viaCommandHelper = async () => mustExitZero(TRUE, (await commandHelper.run(TRUE, [], { timeoutMs: 10_000 })).exitCode);
  await viaCommandHelper();
  try {
    return [
      await measure('child_process.spawn', runs, () => plainSpawn(TRUE, [])),
      await measure('runProcessGroup (the runner)', runs, async () => {
        const r = await runProcessGroup(TRUE, [], { timeoutMs: 10_000 });
        mustExitZero(TRUE, r.exitCode);
      }),
      await measure('execa', runs, async () => {
        const r = await execa(TRUE, [], { reject: false });
        mustExitZero(TRUE, r.exitCode);
      }),
      await measure('spawn helper (request round trip)', runs, () => helper.run([TRUE]), helper.pid),
      await measure('runProcessGroup in a worker thread', runs, () => thread.run(TRUE)),
      await measure('the command helper (CommandRunner helper)', runs, viaCommandHelper, commandHelper.pid),
    ];
  } finally {
    helper.stop();
    commandHelper.stop();
    await thread.stop();
  }
}

const EAGER_MODULES = ['devices', 'faults', 'iet', 'io', 'iscsiadm', 'libiscsi', 'lvm', 'nimbus', 'openstack', 'proxmox', 'state', 'vm', 'xen'];

async function simulatorRows(runs: number, baselineSim: string | undefined): Promise<Measured[]> {
  const state = mkdtempSync(join(tmpdir(), 'vbs-bench-sim-'));
  const sim = (entry: string, ...args: string[]) => plainSpawn(process.execPath, [entry, '--state', state, ...args]);
  try {
    await sim(HOSTSIM, 'lvm', 'vgcreate', 'vg0', String(64 * 1024 ** 3));
    await sim(HOSTSIM, 'vm', 'create', 'vm1');
    const lvs = ['lvs', '--noheadings', '--units', 'b', '--nosuffix', '--separator', ',', '-o', 'lv_name,lv_size,origin,lv_attr', 'vg0'];
    // What the entry cost before tools were loaded on demand: every tool module, then the same lvs.
    const eager = `await Promise.all(${JSON.stringify(EAGER_MODULES.map((m) => join(ROOT, 'dist', 'sim', `${m}.js`)))}.map((m) => import(m)));` + `process.argv.splice(1, 0, ${JSON.stringify(HOSTSIM)}); await import(${JSON.stringify(HOSTSIM)});`;
    const rows = [
      await measure('node -e 0 (Node alone)', runs, () => plainSpawn(process.execPath, ['-e', '0'])),
      await measure('hostsim lvs, every tool module loaded', runs, () =>
        plainSpawn(process.execPath, ['--input-type=module', '-e', eager, '--', '--state', state, ...lvs]),
      ),
    ];
    if (baselineSim) rows.push(await measure(`hostsim lvs, ${baselineSim}`, runs, () => sim(baselineSim, ...lvs)));
    rows.push(
      await measure('hostsim lvs (as shipped)', runs, () => sim(HOSTSIM, ...lvs)),
      await measure('hostsim xm list (as shipped)', runs, () => sim(HOSTSIM, 'xm', 'list')),
      await measure('hostsim iet list (as shipped)', runs, () => plainSpawn(process.execPath, [HOSTSIM, '--state', state, 'iet', 'list'])),
    );
    return rows;
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
}

function table(title: string, rows: readonly Measured[]): string {
  const w = Math.max(...rows.map((r) => r.name.length));
  const fmt = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(1)).padStart(8);
  return [
    title,
    `  ${'what'.padEnd(w)}  ${'p50 ms'.padStart(8)}  ${'p90 ms'.padStart(8)}  ${'CPU ms'.padStart(8)}  ${'starter'.padStart(8)}  ${'loop ms'.padStart(8)}`,
    ...rows.map((r) => `  ${r.name.padEnd(w)}  ${fmt(r.p50)}  ${fmt(r.p90)}  ${fmt(r.cpuMs)}  ${fmt(r.starterCpuMs)}  ${fmt(r.loopMs)}`),
    '  (CPU ms: the started process, user + system; starter: the side that started it, per start;',
    '   loop ms: how long the starter\'s main thread, its event loop, was busy per start)',
  ].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string' }, 'heap-mb': { type: 'string' }, 'baseline-sim': { type: 'string' }, 'spawn-only': { type: 'boolean' } }, strict: true });
  const runs = Number(values.runs ?? 30);
  const heapMb = Number(values['heap-mb'] ?? 256);
  if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(heapMb) || heapMb < 0) throw new Error('--runs and --heap-mb must be whole numbers');
  console.log(`process starts: ${runs} runs each; ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), load ${loadavg().map((l) => l.toFixed(1)).join(' ')}, Node ${process.version}`);
  console.log(table(`\nOne start of ${TRUE}, from this process as it is (RSS ${rssMb()} MB):`, await spawnRows(runs)));
  const held = ballast(heapMb);
  console.log(table(`\nThe same from a delegate-sized heap (${heapMb} MB of live objects, RSS ${rssMb()} MB):`, await spawnRows(runs)));
  held.length = 0;
  if (!values['spawn-only']) console.log(table('\nA simulated host command (a Node process each):', await simulatorRows(runs, values['baseline-sim'])));
  console.log(`\nload at the end: ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
