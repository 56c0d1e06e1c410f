import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Where a process's main thread spent its time, from a V8 `.cpuprofile`
 * (`node --cpu-prof`, or the inspector's Profiler): each sample is given to a
 * category by its stack, the leaf-most frame that names one winning, so TLS
 * work under the delegate call counts as TLS, and XML parsing under the HTTP
 * server counts as XML. Idle samples (the event loop waiting) are left out.
 * What remains is the thread's busy time: on the CPU, or blocked in a
 * synchronous call (SQLite's fsync, fork in spawn), which V8 samples as the
 * JS frame that made it: time the thread could do nothing else. Compare it
 * with the process's CPU from /proc to tell the two apart.
 *
 * Repeat: `node dist/bench/profile-breakdown.js [--per N] NAME=FILE...`
 * (the bench's --profile writes the files and runs this on them).
 */

export interface CallFrame {
  readonly functionName: string;
  readonly url: string;
}
export interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}
export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples?: readonly number[];
  readonly timeDeltas?: readonly number[];
}

export const CATEGORIES = [
  'TLS and crypto',
  'XML encode/decode',
  'SQLite',
  'host command start',
  'delegate call (SOAP client)',
  'HTTP',
  'sockets and streams',
  'engine (workflows, journal)',
  'garbage collection',
  'native, unattributed',
  'other VBS code',
  'other libraries',
  'other Node.js',
] as const;
export type Category = (typeof CATEGORIES)[number];

/** Rules tried on each frame from the leaf up; the first frame one matches decides. Order matters within a frame. */
const SPECIFIC: readonly (readonly [Category, RegExp])[] = [
  ['SQLite', /better-sqlite3|\/dist\/db\//],
  ['XML encode/decode', /fast-xml-parser|strnum|\/dist\/soap\/xml|\/node_modules\/sax\//],
  ['TLS and crypto', /^node:(_tls_|tls$|crypto$|internal\/tls|internal\/crypto)/],
  ['host command start', /^node:(child_process$|internal\/child_process)|\/dist\/commands\/|\/node_modules\/execa\//],
  ['delegate call (SOAP client)', /\/dist\/soap\/client\.js$/],
  ['HTTP', /^node:(_http_|http$|https$|internal\/http)/],
  ['sockets and streams', /^node:(net$|stream$|internal\/streams|internal\/stream_base|internal\/net)/],
  ['engine (workflows, journal)', /\/dist\/workflows\//],
];

/** Where no frame of the stack matched a rule: by the leaf alone. */
function fallback(frame: CallFrame): Category {
  if (frame.functionName === '(garbage collector)') return 'garbage collection';
  if (frame.functionName === '(program)' || frame.url === '') return 'native, unattributed';
  if (frame.url.includes('/node_modules/')) return 'other libraries';
  if (frame.url.includes('/dist/')) return 'other VBS code';
  return 'other Node.js';
}

const IDLE = '(idle)';

/**
 * A span of CLOCK_MONOTONIC in microseconds: V8 stamps samples with it, and
 * `process.hrtime` reads the same clock, so a profile of a whole service's
 * life can be cut to the phase another process timed (start-up left out).
 */
export interface Window {
  readonly fromUs: number;
  readonly toUs: number;
}

/** Milliseconds of main-thread busy time by category (idle left out), and the wall time counted. */
export function breakdown(profile: CpuProfile, window?: Window): { busyMs: Record<Category, number>; wallMs: number; idleMs: number } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const memo = new Map<number, Category | 'idle'>();
  const categoryOf = (id: number): Category | 'idle' => {
    const known = memo.get(id);
    if (known) return known;
    const leaf = byId.get(id)!;
    let found: Category | 'idle' | undefined = leaf.callFrame.functionName === IDLE ? 'idle' : undefined;
    for (let at: number | undefined = id; found === undefined && at !== undefined; at = parent.get(at)) {
      const url = byId.get(at)!.callFrame.url;
      found = SPECIFIC.find(([, re]) => re.test(url))?.[0];
    }
    const c = found ?? fallback(leaf.callFrame);
    memo.set(id, c);
    return c;
  };
  const busyMs = Object.fromEntries(CATEGORIES.map((c) => [c, 0])) as Record<Category, number>;
  let idleMs = 0;
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  // A sample's time runs until the next sample (delta i+1 belongs to sample
  // i); the last one's until the profile ends.
  const lastAt = profile.startTime + deltas.reduce((a, b) => a + b, 0);
  let at = profile.startTime;
  for (let i = 0; i < samples.length; i++) {
    at += deltas[i] ?? 0;
    if (window && (at < window.fromUs || at >= window.toUs)) continue;
    const ms = Math.max(0, i + 1 < samples.length ? (deltas[i + 1] ?? 0) : profile.endTime - lastAt) / 1000;
    const c = categoryOf(samples[i]!);
    if (c === 'idle') idleMs += ms;
    else busyMs[c] += ms;
  }
  const from = Math.max(profile.startTime, window?.fromUs ?? -Infinity);
  const to = Math.min(profile.endTime, window?.toUs ?? Infinity);
  return { busyMs, wallMs: Math.max(0, to - from) / 1000, idleMs };
}

export interface Part {
  readonly name: string;
  readonly busyMs: Record<Category, number>;
}

/**
 * One markdown table: a row per category (those with any time), a column per
 * process, in ms per operation when `per` is given, and the share of the whole.
 */
export function breakdownTable(parts: readonly Part[], per = 1): string {
  const total = (p: Part) => CATEGORIES.reduce((s, c) => s + p.busyMs[c], 0);
  const all = parts.reduce((s, p) => s + total(p), 0);
  const unit = per === 1 ? 'ms' : 'ms/op';
  const fmt = (v: number) => (v / per).toFixed(v / per >= 10 ? 1 : 2);
  const lines = [`| category | ${parts.map((p) => `${p.name} ${unit}`).join(' | ')} | all ${unit} | share |`, `|---|${parts.map(() => '---:|').join('')}---:|---:|`];
  const rows = CATEGORIES.map((c) => ({ c, sum: parts.reduce((s, p) => s + p.busyMs[c], 0) }))
    .filter((r) => r.sum > 0)
    .sort((a, b) => b.sum - a.sum);
  for (const { c, sum } of rows) lines.push(`| ${c} | ${parts.map((p) => fmt(p.busyMs[c])).join(' | ')} | ${fmt(sum)} | ${all > 0 ? ((100 * sum) / all).toFixed(1) : '0.0'} % |`);
  lines.push(`| **all** | ${parts.map((p) => fmt(total(p))).join(' | ')} | ${fmt(all)} | 100 % |`);
  return lines.join('\n');
}

function main(argv: readonly string[]): number {
  let per = 1;
  const parts: Part[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--per') {
      per = Number(argv[++i]);
      if (!Number.isInteger(per) || per < 1) throw new Error('--per takes a whole number of operations, at least 1');
      continue;
    }
    const eq = a.indexOf('=');
    const [name, file] = eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [basename(a, '.cpuprofile'), a];
    const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
    if (!Array.isArray(profile.nodes)) throw new Error(`${file} is not a .cpuprofile (no nodes)`);
    parts.push({ name, busyMs: breakdown(profile).busyMs });
  }
  if (parts.length === 0) {
    process.stderr.write('usage: profile-breakdown [--per N] [NAME=]FILE.cpuprofile...\n');
    return 2;
  }
  process.stdout.write(`${breakdownTable(parts, per)}\n`);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`profile-breakdown: ${(err as Error).message}\n`);
    process.exitCode = 2;
  }
}
