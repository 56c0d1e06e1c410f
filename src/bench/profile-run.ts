import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join, resolve } from 'node:path';
import { breakdown, breakdownTable, type CpuProfile, type Part } from './profile-breakdown.js';

/**
 * The bench's `--profile DIR`: where the CPU of a create goes under load.
 * Each phase runs on a fresh `vbs up --cpu-prof` (front and delegates write a
 * .cpuprofile when they stop), the bench's own client profiled through the
 * inspector, and the CPU each process used read from /proc before and after
 * (the host commands' own CPU is what their parent reaped: the volume
 * delegate's command helper, or the delegate in a build without one).
 * Optionally `strace -c -f` on the front and the volume delegate in a phase
 * of its own (its overhead would distort the profiles). Writes DIR/<phase>/breakdown.md.
 */

export interface Phase {
  readonly name: string;
  readonly what: string;
  /** Runs the load; says how many operations it did. */
  readonly run: () => Promise<number>;
}

export interface ProfiledDeployment {
  servicePid(name: 'front' | 'volume-delegate' | 'vmm-delegate'): number | undefined;
  stop(): Promise<void>;
}

const TICK_MS = 10; // USER_HZ is 100 on Linux

/** utime+stime of the process and cutime+cstime of the children it has reaped, in ms. */
export function cpuOf(pid: number): { self: number; children: number } {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  // After the name: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14)
  return { self: (Number(f[11]) + Number(f[12])) * TICK_MS, children: (Number(f[13]) + Number(f[14])) * TICK_MS };
}

/**
 * The delegate's command helper (src/commands/helper-client.ts), if it has
 * started one: the host commands are its children, not the delegate's.
 */
export function helperOf(pid: number): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    try {
      const s = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('command-helper.js')) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

/** CPU of the delegate's helper (its own, and its reaped children's: the commands), zero before it started. */
function helperCpu(delegate: number): { self: number; children: number } {
  const pid = helperOf(delegate);
  return pid === undefined ? { self: 0, children: 0 } : cpuOf(pid);
}

function newest(dir: string): string | undefined {
  try {
    const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort();
    return files.length ? join(dir, files[files.length - 1]!) : undefined;
  } catch {
    return undefined;
  }
}

/** strace -c -f attached to a process until `stop` is called; its summary lands in `out`. */
function straceOn(pid: number, out: string): { stop: () => Promise<void> } {
  const child = spawn('strace', ['-c', '-f', '-o', out, '-p', String(pid)], { stdio: 'ignore' });
  const gone = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    stop: async () => {
      child.kill('SIGINT');
      await gone;
    },
  };
}

export async function profilePhase(o: {
  dir: string;
  phase: Phase;
  start: (cpuProfileDir: string) => Promise<ProfiledDeployment>;
  strace?: boolean;
  say: (line: string) => void;
}): Promise<string> {
  const out = resolve(o.dir, o.phase.name);
  mkdirSync(out, { recursive: true });
  const dep = await o.start(out);
  const front = dep.servicePid('front');
  const delegate = dep.servicePid('volume-delegate');
  if (front === undefined || delegate === undefined) throw new Error('profile: the front or the volume delegate is not running');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 1000 });
  // Both services: the delegate's process starts, and the front's writes (its fdatasync calls are its commits).
  const straces = o.strace ? [straceOn(delegate, join(out, 'strace-volume-delegate.txt')), straceOn(front, join(out, 'strace-front.txt'))] : [];
  const before = { front: cpuOf(front), delegate: cpuOf(delegate), helper: helperCpu(delegate), client: process.cpuUsage() };
  await session.post('Profiler.start');
  const t0 = process.hrtime.bigint();
  const ops = await o.phase.run();
  const t1 = process.hrtime.bigint();
  const wallMs = Number(t1 - t0) / 1e6;
  // The services' profiles cover their whole life: only the phase counts.
  const phase = { fromUs: Number(t0 / 1000n), toUs: Number(t1 / 1000n) };
  const { profile } = await session.post('Profiler.stop');
  const after = { front: cpuOf(front), delegate: cpuOf(delegate), helper: helperCpu(delegate), client: process.cpuUsage(before.client) };
  for (const s of straces) await s.stop();
  session.disconnect();
  writeFileSync(join(out, 'client.cpuprofile'), JSON.stringify(profile));
  writeFileSync(join(out, 'phase.json'), `${JSON.stringify({ ...phase, operations: ops })}\n`);
  await dep.stop();
  const parts: Part[] = [];
  for (const [name, file] of [
    ['front', newest(join(out, 'front'))],
    ['volume delegate', newest(join(out, 'volume-delegate'))],
    ['client (bench)', join(out, 'client.cpuprofile')],
  ] as const) {
    if (file === undefined) throw new Error(`profile: no .cpuprofile from the ${name} in ${out}`);
    parts.push({ name, busyMs: breakdown(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, name.startsWith('client') ? undefined : phase).busyMs });
  }
  const perOp = (v: number) => (v / ops).toFixed(2);
  const procCpu = {
    front: after.front.self - before.front.self,
    delegate: after.delegate.self - before.delegate.self,
    helper: after.helper.self - before.helper.self,
    // A delegate without a helper (an older build) reaps its commands itself.
    commands: after.delegate.children - before.delegate.children + (after.helper.children - before.helper.children),
    client: (after.client.user + after.client.system) / 1000,
  };
  const all = procCpu.front + procCpu.delegate + procCpu.helper + procCpu.commands + procCpu.client;
  const share = (v: number) => `${((100 * v) / all).toFixed(1)} %`;
  const text = [
    `## ${o.phase.name}: ${o.phase.what}`,
    '',
    `${ops} operations in ${(wallMs / 1000).toFixed(1)} s (${((ops * 1000) / wallMs).toFixed(1)} /s).`,
    '',
    'CPU of each process during the phase (from /proc; all threads, so it includes what the sampling profiler cannot see):',
    '',
    '| process | CPU ms/op | share |',
    '|---|---:|---:|',
    `| front | ${perOp(procCpu.front)} | ${share(procCpu.front)} |`,
    `| volume delegate | ${perOp(procCpu.delegate)} | ${share(procCpu.delegate)} |`,
    `| its command helper (starts the host commands) | ${perOp(procCpu.helper)} | ${share(procCpu.helper)} |`,
    `| host commands (their own CPU) | ${perOp(procCpu.commands)} | ${share(procCpu.commands)} |`,
    `| client (the bench) | ${perOp(procCpu.client)} | ${share(procCpu.client)} |`,
    `| **all** | ${perOp(all)} | 100 % |`,
    '',
    'Main-thread busy time by category (V8 sampling profiles; idle left out; a synchronous call that blocks the thread, such as an fsync in SQLite or the fork of a spawn, counts as busy although it is not CPU):',
    '',
    breakdownTable(parts, ops),
    '',
  ].join('\n');
  writeFileSync(join(out, 'breakdown.md'), text);
  o.say(text);
  return text;
}
