import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CommandCatalog } from '../../../src/commands/catalog.js';
import { silentLogger } from '../../../src/core/log.js';
import { VolumeDelegateConfigSchema, type VolumeDelegateConfig } from '../../../src/config/service-config.js';
import type { VolumeBackend } from '../../../src/delegates/volume/backend.js';
import { openBackend } from '../../../src/delegates/volume/main.js';
import { freePort } from '../../../src/core/free-port.js';
import { eventually as eventuallyWithin } from '../../e2e/harness.js';

/** Polls until `check` returns a value; bounded (longer than the e2e default: simulated LVM is slow under load). */
export const eventually = <T>(check: () => Promise<T | undefined>, ms = 60_000, every = 50): Promise<T> => eventuallyWithin(check, ms, every);
export { freePort };

export const ROOT = resolve(import.meta.dirname, '../../..');
export const HOSTSIM = join(ROOT, 'dist', 'sim', 'hostsim.js');
export const COMMANDS = join(ROOT, 'commands.properties');
export const GiB = 1024 ** 3;
export const IQN_PREFIX = 'iqn.2026-11.org.vbs';

/** Runs the host simulator on a state folder (management verbs and inspection). */
export function sim(state: string, ...args: string[]): string {
  return execFileSync(process.execPath, [HOSTSIM, '--state', state, ...args], { encoding: 'utf8' });
}

/** LV names in the simulated VG. */
export function lvNames(state: string, vg = 'vbs'): string[] {
  return sim(state, 'lvs', '--noheadings', '-o', 'lv_name', vg)
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

export function ietTargets(state: string): string {
  return sim(state, 'iet', 'list');
}

/** Temporary folders, removed by cleanupDirs(). */
const dirs: string[] = [];
export function tempDir(prefix = 'vbs-lvm-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}
export function cleanupDirs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

export interface Site {
  /** Simulator state folder (the VG and, for iet, the targets). */
  state: string;
  /** The delegate's own state folder (export bookkeeping). */
  stateDir: string;
}

/** A fresh simulated VG `vbs` of `sizeGiB`. */
export function simSite(sizeGiB = 8): Site {
  const root = tempDir();
  const state = join(root, 'sim');
  sim(state, 'lvm', 'vgcreate', 'vbs', String(sizeGiB * GiB));
  return { state, stateDir: join(root, 'delegate') };
}

export type LvmBackendConfig = Extract<VolumeDelegateConfig['backend'], { type: 'lvm-iscsi' }>;

export function lvmConfig(site: Site, over: Partial<LvmBackendConfig> = {}): LvmBackendConfig {
  const parsed = VolumeDelegateConfigSchema.parse({
    role: 'volume-delegate',
    listen: { port: 0 },
    tls: { key: 'k', cert: 'c', ca: 'a' },
    backend: {
      type: 'lvm-iscsi',
      vg: 'vbs',
      iqnPrefix: IQN_PREFIX,
      portal: '127.0.0.1:3260',
      target: 'iet',
      stateDir: site.stateDir,
      simState: site.state,
      copyChunkMiB: 256,
      ...over,
    },
  });
  return parsed.backend as LvmBackendConfig;
}

export interface Opened {
  backend: VolumeBackend;
  ran: { key: string; argv: readonly string[] }[];
}

/** Opens the back end in this process; `extraCommands` are appended to commands.properties (later keys win). */
export async function openLvm(cfg: LvmBackendConfig, extraCommands = ''): Promise<Opened> {
  const catalog = CommandCatalog.fromText(`${readFileSync(COMMANDS, 'utf8')}\n${extraCommands}\n`, COMMANDS);
  const ran: Opened['ran'] = [];
  const log = { ...silentLogger, debug: (msg: string, fields?: object) => void (msg === 'run' && ran.push(fields as Opened['ran'][number])) };
  return { backend: await openBackend(cfg, catalog, log as typeof silentLogger), ran };
}


export async function ready(backend: VolumeBackend, id: string): Promise<void> {
  await eventually(async () => {
    const o = await backend.describe(id);
    if (o.state === 'error') throw new Error(`${id}: ${o.message}`);
    return o.state === 'ready' ? true : undefined;
  });
}


export interface Tgtd {
  port: number;
  controlPort: number;
  pid: number;
  portal: string;
  tgtadm(...args: string[]): string;
  /** Removes every target (what a failed test left). */
  clear(): void;
  stop(): Promise<void>;
}

/** A control port no running tgtd uses (tgtd listens on /var/run/tgtd/socket.<N>). */
function freeControlPort(): number {
  const used = new Set(existsSync('/var/run/tgtd') ? readdirSync('/var/run/tgtd').map((f) => Number(/^socket\.(\d+)$/.exec(f)?.[1])) : []);
  for (let i = 0; i < 1000; i++) {
    const n = 20_000 + Math.floor(Math.random() * 12_000); // tgtd takes -C up to 32767
    if (!used.has(n)) return n;
  }
  throw new Error('no free tgtd control port');
}

/** Starts a real tgtd on 127.0.0.1 (root only), waiting until tgtadm reaches it. */
export async function startTgtd(): Promise<Tgtd> {
  const port = await freePort();
  const controlPort = freeControlPort();
  const child: ChildProcess = spawn('tgtd', ['-f', '-C', String(controlPort), '--iscsi', `portal=127.0.0.1:${port}`], { stdio: 'ignore' });
  const pid = child.pid!;
  const tgtadm = (...args: string[]) => execFileSync('tgtadm', ['-C', String(controlPort), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  await eventually(async () => {
    if (child.exitCode !== null) throw new Error(`tgtd exited with ${child.exitCode}`);
    try {
      tgtadm('--lld', 'iscsi', '--op', 'show', '--mode', 'target');
      return true;
    } catch {
      return undefined;
    }
  }, 20_000);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  // What a restart of tgtd loses: its targets and its CHAP accounts.
  const clear = () => {
    const show = tgtadm('--lld', 'iscsi', '--op', 'show', '--mode', 'target');
    for (const m of show.matchAll(/^Target (\d+):/gm)) tgtadm('--lld', 'iscsi', '--op', 'delete', '--mode', 'target', '--tid', m[1]!, '--force');
    const accounts = tgtadm('--lld', 'iscsi', '--op', 'show', '--mode', 'account');
    for (const m of accounts.matchAll(/^\s+(\S+)$/gm)) tgtadm('--lld', 'iscsi', '--op', 'delete', '--mode', 'account', '--user', m[1]!);
  };
  return {
    port,
    controlPort,
    pid,
    portal: `127.0.0.1:${port}`,
    tgtadm,
    clear,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      // tgtd refuses to stop while it has targets: remove what a test left, then stop it.
      try {
        clear();
        tgtadm('--op', 'delete', '--mode', 'system');
      } catch {
        // fall through to the signal
      }
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Runs a libiscsi tool; returns exit code and output. */
export function libiscsi(tool: string, ...args: string[]): { code: number; stdout: string } {
  return libiscsiAs(undefined, tool, ...args);
}

/** A CHAP account an export names (chapUser, chapSecret). */
export interface ChapAccount {
  readonly user: string;
  readonly secret: string;
}

/** Runs a libiscsi tool with a CHAP account, as libiscsi takes one: from its environment. */
export function libiscsiAs(chap: ChapAccount | undefined, tool: string, ...args: string[]): { code: number; stdout: string } {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.LIBISCSI_CHAP_USERNAME;
  delete env.LIBISCSI_CHAP_PASSWORD;
  if (chap) Object.assign(env, { LIBISCSI_CHAP_USERNAME: chap.user, LIBISCSI_CHAP_PASSWORD: chap.secret });
  try {
    return { code: 0, stdout: execFileSync(tool, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000, env }) };
  } catch (err) {
    const e = err as { status?: number; stdout?: string };
    return { code: e.status ?? -1, stdout: e.stdout ?? '' };
  }
}
