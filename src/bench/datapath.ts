import { execFile, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, createWriteStream, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { VBS_HOME } from '../core/paths.js';
import { freeTgtdPorts, startTgtd, type RunningTgtd } from '../deploy/tgtd.js';
import { newAccountRequest, request } from '../tgt/ipc.js';

/**
 * `npm run bench:datapath`: the lvm-iscsi data path as the VBS paper's §7
 * measured it. One volume file, exported as a LUN of a real tgtd on loopback
 * with a CHAP account (as VBS exports every volume, docs/chap.md), is read and
 * written three ways, side by side:
 *
 * - local: `qemu-img bench` on the file itself (QEMU's block layer, no iSCSI);
 * - QEMU iSCSI: `qemu-img bench` on the iscsi:// URL (QEMU's libiscsi driver,
 *   what a VM's disk on an lvm-iscsi volume runs through);
 * - iscsi-perf: libiscsi's own load generator on the same LUN (reads only: it
 *   has no write mode), the ceiling the QEMU driver is held against (≥ 80 %).
 *
 * Large sequential (1 MiB) and 4 KiB requests at one queue depth (32 by
 * default: enough requests in flight that the loopback link, not the
 * round trip, limits). qemu-img bench has no random mode: its 4 KiB rows step
 * 1,028 KiB between requests (wrapping at the end), so no two neighbouring
 * requests touch the same or adjacent blocks; iscsi-perf's are random (-r).
 * The CHAP secret reaches libiscsi (both clients) through its environment,
 * LIBISCSI_CHAP_USERNAME/PASSWORD, and tgtd through its control socket: never
 * a command line. Needs root, tgt, qemu-utils with qemu-block-extra, and
 * libiscsi-bin; without them it says what is missing and does not run.
 *
 *   node dist/bench/datapath.js [--mib 256] [--depth 32] [--rounds 3] [--seconds 5]
 */

const MiB = 1024 * 1024;
const IQN = 'iqn.2026-12.org.vbs:bench-datapath';
const CHAP_USER = 'bench-datapath';
const STRIDE = 1028 * 1024;
const RUN_TIMEOUT_MS = 300_000;

const say = (line: string) => process.stdout.write(`${line}\n`);

interface Options {
  mib: number;
  depth: number;
  rounds: number;
  seconds: number;
}

function parseOptions(argv: readonly string[]): Options {
  const o: Options = { mib: 256, depth: 32, rounds: 3, seconds: 5 };
  const limits: Record<keyof Options, [number, number]> = { mib: [16, 65536], depth: [1, 256], rounds: [1, 20], seconds: [1, 120] };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i]?.replace(/^--/, '') as keyof Options;
    const value = Number(argv[i + 1]);
    if (!(key in limits) || !Number.isInteger(value) || value < limits[key][0] || value > limits[key][1]) {
      throw new Error(`usage: datapath [--mib 16..65536] [--depth 1..256] [--rounds 1..20] [--seconds 1..120] (at ${argv[i] ?? ''})`);
    }
    o[key] = value;
  }
  return o;
}

function missingTools(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root (tgtd needs it)';
  for (const [tool, pkg] of [['tgtd', 'tgt'], ['tgtadm', 'tgt'], ['qemu-img', 'qemu-utils'], ['iscsi-perf', 'libiscsi-bin']] as const) {
    if (spawnSync('which', [tool]).status !== 0) return `no ${tool} (Debian ${pkg})`;
  }
  return undefined;
}

/** Real bytes, so no layer can skip zeros. */
function fillRandom(file: string, mib: number): void {
  const fd = openSync(file, 'w');
  try {
    const chunk = Buffer.alloc(4 * MiB);
    for (let off = 0; off < mib * MiB; off += chunk.length) writeSync(fd, randomBytes(chunk.length));
  } finally {
    closeSync(fd);
  }
}

function tgtadm(controlPort: number, args: string[]): void {
  const r = spawnSync('tgtadm', ['-C', String(controlPort), '--lld', 'iscsi', ...args], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`tgtadm ${args.join(' ')}: ${r.stderr || r.error?.message}`);
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((done, fail) =>
    execFile(cmd, args, { env: { ...process.env, ...env }, timeout: RUN_TIMEOUT_MS, encoding: 'utf8' }, (err, stdout, stderr) =>
      err ? fail(new Error(`${cmd} ${args.join(' ')}: ${stderr || err.message}`)) : done(stdout),
    ),
  );
}

interface Workload {
  readonly name: string;
  readonly write: boolean;
  readonly bytes: number;
  /** Requests per qemu-img bench run (each about a few seconds here). */
  readonly count: number;
  readonly random: boolean;
}

/** MiB/s and IOPS of one qemu-img bench run, from its own "Run completed in S seconds". */
async function qemuImgBench(image: string, w: Workload, depth: number, env: NodeJS.ProcessEnv): Promise<{ mibs: number; iops: number }> {
  const args = ['bench', '-f', 'raw', '-c', String(w.count), '-d', String(depth), '-s', String(w.bytes), ...(w.random ? ['-S', String(STRIDE)] : []), ...(w.write ? ['-w'] : []), image];
  const out = await run('qemu-img', args, env);
  const m = /Run completed in ([0-9.]+) seconds/.exec(out);
  if (!m) throw new Error(`qemu-img bench said no time: ${out}`);
  const secs = Number(m[1]);
  return { mibs: (w.count * w.bytes) / MiB / secs, iops: w.count / secs };
}

/**
 * iscsi-perf runs until interrupted, then its last report line holds the
 * run's average ("iops average N"). Reads only.
 */
function iscsiPerf(url: string, w: Workload, depth: number, seconds: number, env: NodeJS.ProcessEnv): Promise<{ mibs: number; iops: number }> {
  const args = ['-m', String(depth), '-b', String(w.bytes / 512), ...(w.random ? ['-r'] : []), url];
  return new Promise((done, fail) => {
    const child = spawn('iscsi-perf', args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out = (out + b.toString()).slice(-4096)));
    child.stderr.on('data', (b: Buffer) => (out = (out + b.toString()).slice(-4096)));
    const stopAt = setTimeout(() => child.kill('SIGINT'), seconds * 1000);
    const hardStop = setTimeout(() => child.kill('SIGKILL'), seconds * 1000 + 30_000);
    child.once('error', fail);
    child.once('exit', () => {
      clearTimeout(stopAt);
      clearTimeout(hardStop);
      const all = [...out.matchAll(/iops average ([0-9]+)/g)];
      const iops = Number(all.at(-1)?.[1]);
      if (!all.length || !(iops > 0)) return fail(new Error(`iscsi-perf ${args.join(' ')} reported no average: ${out.slice(-500)}`));
      done({ mibs: (iops * w.bytes) / MiB, iops });
    });
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

async function main(argv: readonly string[]): Promise<number> {
  const o = parseOptions(argv);
  const missing = missingTools();
  if (missing) {
    say(`data-path bench not run: ${missing}; it needs root, tgt, qemu-utils with qemu-block-extra, and libiscsi-bin`);
    return 0;
  }
  const dir = mkdtempSync(join(tmpdir(), 'vbs-bench-datapath-'));
  const file = join(dir, 'volume.img');
  let target: RunningTgtd | undefined;
  const cleanup = async () => {
    await target?.stop();
    target = undefined;
    rmSync(dir, { recursive: true, force: true });
  };
  const onSignal = () => void cleanup().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    say(`data-path bench: a ${o.mib} MiB volume file on ${tmpdir()}, tgtd on loopback with a CHAP account, queue depth ${o.depth}, ${o.rounds} rounds, ${cpus().length} cores`);
    fillRandom(file, o.mib);
    const log = createWriteStream(join(dir, 'tgtd.log'));
    target = await startTgtd(log, join(dir, 'tgtd.log'), await freeTgtdPorts());
    tgtadm(target.controlPort, ['--op', 'new', '--mode', 'target', '--tid', '1', '-T', IQN]);
    tgtadm(target.controlPort, ['--op', 'new', '--mode', 'logicalunit', '--tid', '1', '--lun', '1', '-b', file]);
    tgtadm(target.controlPort, ['--op', 'bind', '--mode', 'target', '--tid', '1', '-I', '127.0.0.1']);
    const secret = randomBytes(24).toString('base64url');
    await request(target.controlPort, newAccountRequest(CHAP_USER, secret), 30_000);
    tgtadm(target.controlPort, ['--op', 'bind', '--mode', 'account', '--tid', '1', '--user', CHAP_USER]);
    const chap = { LIBISCSI_CHAP_USERNAME: CHAP_USER, LIBISCSI_CHAP_PASSWORD: secret };
    const url = `iscsi://${target.portal}/${IQN}/1`;

    const seqCount = Math.max(64, Math.round((2 * o.mib * MiB) / MiB)); // twice the volume
    const workloads: Workload[] = [
      { name: 'sequential read, 1 MiB', write: false, bytes: MiB, count: seqCount, random: false },
      { name: 'sequential write, 1 MiB', write: true, bytes: MiB, count: seqCount, random: false },
      { name: '4 KiB read, scattered', write: false, bytes: 4096, count: 20_000, random: true },
      { name: '4 KiB write, scattered', write: true, bytes: 4096, count: 20_000, random: true },
    ];
    type Results = { local: number[]; qemu: number[]; perf: number[]; localIops: number[]; qemuIops: number[]; perfIops: number[] };
    const results = new Map<string, Results>(workloads.map((w) => [w.name, { local: [], qemu: [], perf: [], localIops: [], qemuIops: [], perfIops: [] }]));
    // Rounds, each workload's three clients one after another: on a shared machine all three see the same load.
    for (let round = 1; round <= o.rounds; round++) {
      for (const w of workloads) {
        const r = results.get(w.name)!;
        const local = await qemuImgBench(file, w, o.depth, {});
        const qemu = await qemuImgBench(url, w, o.depth, chap);
        r.local.push(local.mibs);
        r.localIops.push(local.iops);
        r.qemu.push(qemu.mibs);
        r.qemuIops.push(qemu.iops);
        let line = `  round ${round}, ${w.name}: local ${local.mibs.toFixed(0)} MiB/s, QEMU iSCSI ${qemu.mibs.toFixed(0)} MiB/s`;
        if (!w.write) {
          const perf = await iscsiPerf(url, w, o.depth, o.seconds, chap);
          r.perf.push(perf.mibs);
          r.perfIops.push(perf.iops);
          line += `, iscsi-perf ${perf.mibs.toFixed(0)} MiB/s`;
        }
        say(line);
      }
    }

    const lines = [
      `| workload (queue depth ${o.depth}) | local file | QEMU iSCSI driver | iscsi-perf | QEMU / iscsi-perf | QEMU / local |`,
      '|---|---:|---:|---:|---:|---:|',
    ];
    const rows: object[] = [];
    for (const w of workloads) {
      const r = results.get(w.name)!;
      const [local, qemu] = [median(r.local), median(r.qemu)];
      const perf = r.perf.length ? median(r.perf) : Number.NaN;
      const cell = (mibs: number, iops: number[]) => (Number.isNaN(mibs) ? '—' : w.bytes === MiB ? `${mibs.toFixed(0)} MiB/s` : `${median(iops).toFixed(0)} IOPS (${mibs.toFixed(1)} MiB/s)`);
      const vsPerf = Number.isNaN(perf) ? '— (no write mode)' : `${((100 * qemu) / perf).toFixed(0)} % (target ≥ 80 %: ${qemu >= 0.8 * perf ? 'met' : 'missed'})`;
      lines.push(`| ${w.name} | ${cell(local, r.localIops)} | ${cell(qemu, r.qemuIops)} | ${cell(perf, r.perfIops)} | ${vsPerf} | ${((100 * qemu) / local).toFixed(0)} % |`);
      rows.push({ workload: w.name, bytes: w.bytes, depth: o.depth, localMiBs: r.local, qemuIscsiMiBs: r.qemu, iscsiPerfMiBs: r.perf, medians: { local, qemu, perf: Number.isNaN(perf) ? null : perf } });
    }
    say('');
    say(`medians of ${o.rounds} rounds:`);
    say(lines.join('\n'));
    const out = resolve(VBS_HOME, 'bench', 'results');
    mkdirSync(out, { recursive: true });
    const about = { date: new Date().toISOString(), machine: `${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${Math.round(totalmem() / 1024 ** 3)} GiB memory`, volumeMiB: o.mib, rounds: o.rounds };
    writeFileSync(join(out, 'datapath.json'), `${JSON.stringify({ about, rows }, null, 2)}\n`);
    say(`written ${join(out, 'datapath.json')}`);
    return 0;
  } finally {
    await cleanup();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`data-path bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
