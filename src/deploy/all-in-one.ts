import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { execFileSync } from 'node:child_process';
import { VBS_HOME } from '../core/paths.js';
import { PkiStore, writeAtomic } from '../pki/store.js';
import { canRunTgtd, startTgtd, type RunningTgtd } from './tgtd.js';

export interface UpOptions {
  readonly dataDir: string;
  readonly port: number;
  readonly commands?: string;
  /** Simulated VMs created on first start. */
  readonly simVms?: readonly string[];
  /** `file` (default): volumes as files; `lvm-iscsi`: LVs of a simulated VG, exported over iSCSI. */
  readonly backend?: 'file' | 'lvm-iscsi';
}

export interface Deployment {
  readonly frontUrl: string;
  readonly clientConfig: string;
  stop(): Promise<void>;
  /** Resolves when any service exits on its own (it should not). */
  readonly died: Promise<string>;
  /** What serves the volumes, for the start-up banner. */
  readonly storage: string;
}

const CLI = join(VBS_HOME, 'dist', 'cli', 'main.js');
const HOSTSIM = join(VBS_HOME, 'dist', 'sim', 'hostsim.js');
export const DEFAULT_SIM_VMS = ['vm1', 'vm2', 'vm3'];
/** The simulated volume group of `--backend lvm-iscsi` (sparse files: only written data takes space). */
export const SIM_VG = 'vbs';
const SIM_VG_BYTES = 256 * 1024 ** 3;
export const IQN_PREFIX = 'iqn.2026-11.org.vbs';

/**
 * The all-in-one deployment: a CA and certificates on first start, then one
 * process per service on 127.0.0.1 (delegates first, on free ports, then the
 * front), and DIR/client.json for the admin once the front accepts requests.
 */
export async function up(opts: UpOptions): Promise<Deployment> {
  const dir = resolve(opts.dataDir);
  for (const sub of ['', 'volumes', 'logs', 'vmm-sim']) mkdirSync(join(dir, sub), { recursive: true, mode: 0o700 });
  const pki = new PkiStore(join(dir, 'pki'));
  pki.ensureCa();
  const loopback = ['127.0.0.1', 'localhost'];
  pki.ensureIdentity('front', { commonName: 'vbs-front', use: 'server+client', hosts: loopback });
  pki.ensureIdentity('volume-delegate', { commonName: 'vbs-volume-delegate', use: 'server', hosts: loopback });
  pki.ensureIdentity('vmm-delegate', { commonName: 'vbs-vmm-delegate', use: 'server', hosts: loopback });
  pki.ensureIdentity('admin', { commonName: 'admin', use: 'client' });
  seedSimVms(join(dir, 'vmm-sim'), opts.simVms ?? DEFAULT_SIM_VMS);
  const backendType = opts.backend ?? 'file';
  // One simulated site: the VG, the IET and the VMM host share a state folder,
  // so the simulated initiator finds what the simulated target exports.
  if (backendType === 'lvm-iscsi') seedSimVg(join(dir, 'vmm-sim'));
  const tgtd = backendType === 'lvm-iscsi' && canRunTgtd() ? await startTgtd(join(dir, 'logs', 'tgtd.log')) : undefined;

  const tls = (name: string) => ({ key: `pki/${name}.key`, cert: `pki/${name}.crt`, ca: 'pki/ca.crt' });
  const commands = opts.commands ? resolve(opts.commands) : undefined;
  const listen = (port: number) => ({ host: '127.0.0.1', port });
  writeJson(join(dir, 'volume-delegate.json'), {
    role: 'volume-delegate',
    name: 'local',
    listen: listen(0),
    tls: tls('volume-delegate'),
    ...(commands ? { commands } : {}),
    backend: backendType === 'file' ? { type: 'file', root: 'volumes' } : lvmIscsiBackend(tgtd),
  });
  writeJson(join(dir, 'vmm-delegate.json'), {
    role: 'vmm-delegate',
    hostName: 'localhost',
    listen: listen(0),
    tls: tls('vmm-delegate'),
    ...(commands ? { commands } : {}),
    volumeRoots: ['volumes'],
    simState: 'vmm-sim',
  });

  const children: ChildProcess[] = [];
  let deathReport: (msg: string) => void = () => {};
  const died = new Promise<string>((r) => (deathReport = r));
  let stopping = false;
  const stop = async () => {
    stopping = true;
    for (const c of [...children].reverse()) await stopChild(c);
    await tgtd?.stop();
  };
  try {
    const volumeUrl = await startChild('volume-delegate', dir, children, () => !stopping && deathReport('volume-delegate'));
    const vmmUrl = await startChild('vmm-delegate', dir, children, () => !stopping && deathReport('vmm-delegate'));
    writeJson(join(dir, 'front.json'), {
      role: 'front',
      listen: listen(opts.port),
      tls: tls('front'),
      database: 'vbs.db',
      volumeDelegates: [{ name: 'local', url: volumeUrl }],
      vmmHosts: [{ name: 'localhost', url: vmmUrl }],
    });
    const frontUrl = await startChild('front', dir, children, () => !stopping && deathReport('front'));
    const clientConfig = join(dir, 'client.json');
    writeJson(clientConfig, { url: frontUrl, ...tls('admin') });
    const storage =
      backendType === 'file'
        ? 'files in volumes/'
        : `LVs of the simulated VG ${SIM_VG}, iSCSI targets on ${tgtd ? `a real tgtd at ${tgtd.portal} (PID ${tgtd.pid})` : 'the simulated IET'}`;
    return { frontUrl, clientConfig, stop, died, storage };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * The lvm-iscsi back end on the host simulator's VG: targets on a real tgtd
 * when one runs here (its portal is real), else on the simulated IET.
 */
function lvmIscsiBackend(tgtd: RunningTgtd | undefined): object {
  return {
    type: 'lvm-iscsi',
    vg: SIM_VG,
    iqnPrefix: IQN_PREFIX,
    stateDir: 'volume-delegate-state',
    simState: 'vmm-sim',
    ...(tgtd ? { target: 'tgt', portal: tgtd.portal, tgtControlPort: tgtd.controlPort } : { target: 'iet', portal: '127.0.0.1:3260' }),
  };
}

/** The simulated volume group, created on first start. */
function seedSimVg(stateDir: string): void {
  const st = JSON.parse(execFileSync(process.execPath, [HOSTSIM, '--state', stateDir, 'dump'], { encoding: 'utf8' })) as { vgs: { name: string }[] };
  if (st.vgs.some((v) => v.name === SIM_VG)) return;
  execFileSync(process.execPath, [HOSTSIM, '--state', stateDir, 'lvm', 'vgcreate', SIM_VG, String(SIM_VG_BYTES)], { encoding: 'utf8' });
}

function writeJson(file: string, value: object): void {
  writeAtomic(file, `${JSON.stringify(value, null, 2)}\n`, 0o600);
}

/** A simulated host with no VMs yet gets a few, so a new user has something to attach to. */
function seedSimVms(stateDir: string, vms: readonly string[]): void {
  const sim = (...args: string[]) => execFileSync(process.execPath, [HOSTSIM, '--state', stateDir, ...args], { encoding: 'utf8' });
  if ((JSON.parse(sim('vm', 'list')) as unknown[]).length > 0) return;
  for (const vm of vms) sim('vm', 'create', vm);
}

/** Starts `vbs serve <role>` and resolves with its URL once it prints its ready line. */
function startChild(role: string, dir: string, children: ChildProcess[], onUnexpectedExit: () => void): Promise<string> {
  const log = createWriteStream(join(dir, 'logs', `${role}.log`), { flags: 'a' });
  // stdin is a pipe that only closes when `up` is gone, however it ended.
  const child = spawn(process.execPath, [CLI, 'serve', role, '--config', join(dir, `${role}.json`), '--exit-with-parent'], {
    cwd: dir,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.push(child);
  child.stderr!.pipe(log);
  return new Promise((resolveUrl, reject) => {
    const lines = createInterface({ input: child.stdout! });
    let ready = false;
    lines.on('line', (line) => {
      try {
        const msg = JSON.parse(line) as { ready?: string };
        if (msg.ready && !ready) {
          ready = true;
          resolveUrl(msg.ready);
        }
      } catch {
        // not a control line
      }
    });
    child.once('exit', (code, signal) => {
      if (!ready) reject(new Error(`${role} exited (${code ?? signal}) before it was ready; see ${join(dir, 'logs', `${role}.log`)}`));
      else onUnexpectedExit();
    });
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolveStop) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolveStop();
    });
    child.kill('SIGTERM');
  });
}
