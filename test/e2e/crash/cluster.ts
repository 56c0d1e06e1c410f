import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CRASH_ENV } from '../../../src/core/crash-points.js';
import { freePort } from '../../../src/core/free-port.js';
import { freeTgtdPorts, startTgtd, type RunningTgtd } from '../../../src/deploy/tgtd.js';
import { ensureDeploymentPki } from '../../../src/deploy/all-in-one.js';
import { VBS_SERVICE } from '../../../src/services/vbs.js';
import { SoapClient } from '../../../src/soap/client.js';
import { hostInitiatorName } from '../../../src/core/initiator-name.js';
import { writeSimInitiatorName } from '../../../src/sim/libiscsi.js';
import { ROOT } from '../harness.js';
import { seedDeploymentPki } from '../../setup/pki.js';
import { QemuVm } from '../../system/host.js';

const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const HOSTSIM = join(ROOT, 'dist', 'sim', 'hostsim.js');

export const ROLES = ['volume-delegate', 'vmm-delegate', 'front'] as const;
export type Role = (typeof ROLES)[number];

/**
 * What stores the volumes: files (the default), or the lvm-iscsi back end as
 * `vbs up --backend lvm-iscsi` sets it up (LVs of a simulated VG in the VMM
 * host simulator's state folder, one site), exporting on the simulated IET or
 * on a real tgtd the cluster starts.
 */
export type Backend = { readonly type: 'file' } | { readonly type: 'lvm-iscsi'; readonly target: 'iet' | 'tgt' } | RbdBackend;

/**
 * The rbd back end on a Ceph cluster the test brings (test/ceph/cluster.ts:
 * its ceph.conf, client.vbs's key file, a pool of the file's own). rbd
 * volumes attach without iSCSI through QEMU's own rbd driver, which the
 * simulated hypervisor does not have: the VMs are real QEMU processes (TCG,
 * paused, no guest, virtio-scsi), driven by the qemu adapter over QMP.
 */
export interface RbdBackend {
  readonly type: 'rbd';
  /** The cluster, asked when a deployment is laid out (the test file gets it in its beforeAll). */
  readonly ceph: () => { readonly conf: string; readonly vbsKeyring: string; readonly pool: string };
}

export const FILE_BACKEND: Backend = { type: 'file' };
export const LVM_IET: Backend = { type: 'lvm-iscsi', target: 'iet' };
export const LVM_TGT: Backend = { type: 'lvm-iscsi', target: 'tgt' };

/** The simulated VG (as `vbs up` makes it: sparse files, so only written data takes space). */
const SIM_VG = 'vbs';
const SIM_VG_BYTES = 256 * 1024 ** 3;
export const IQN_PREFIX = 'iqn.2026-11.org.vbs';

export interface StartOptions {
  /** A crash point (src/core/crash-points.ts) at which the service kills itself. */
  readonly crashAt?: string;
  /** An operator's own commands.properties (`vbs serve --commands`). */
  readonly commands?: string;
}

interface Running {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const WAIT_READY_MS = 30_000;
const WAIT_EXIT_MS = 20_000;

/**
 * Three `vbs serve` processes, as `vbs up` lays them out (the same CA,
 * certificates and configuration files), but each one under the test's
 * control: killed with SIGKILL, restarted with or without a crash point. The
 * ports are fixed when the cluster is made, so a restarted delegate is found
 * at the same URL by a front that kept running.
 *
 * Everything it starts is tracked by PID: the services, and processes a killed
 * service left behind (a copy it had started), recognised by the cluster's
 * own folder in their command line. `destroy` ends them and removes the folder.
 */
export class Cluster {
  private readonly running = new Map<Role, Running>();
  private readonly starts = new Map<Role, number>();
  private readonly clients: SoapClient[] = [];
  private frontUrl = '';
  /** The real tgtd of an lvm-iscsi cluster exporting with tgt (stopped by destroy). */
  private tgtd: RunningTgtd | undefined;
  private tgtdLog: WriteStream | undefined;
  /** rbd: the QEMU VMs, and the folder of their QMP sockets (outside `dir`, whose processes killStrays ends). */
  private readonly qemuVms: QemuVm[] = [];
  private qmpDir: string | undefined;

  private constructor(
    readonly dir: string,
    private readonly ports: Readonly<Record<Role, number>>,
    readonly backend: Backend,
  ) {}

  static async create(vms: readonly string[], backend: Backend = FILE_BACKEND): Promise<Cluster> {
    const dir = mkdtempSync(join(tmpdir(), 'vbs-crash-'));
    let cluster: Cluster | undefined;
    try {
      for (const sub of ['volumes', 'logs', 'vmm-sim']) mkdirSync(join(dir, sub), { recursive: true, mode: 0o700 });
      const ports = { 'volume-delegate': await freePort(), 'vmm-delegate': await freePort(), front: await freePort() };
      cluster = new Cluster(dir, ports, backend);
      if (backend.type === 'lvm-iscsi') {
        // One simulated site: the VG, the IET and the VMM host share a state folder.
        cluster.sim('lvm', 'vgcreate', SIM_VG, String(SIM_VG_BYTES));
        if (backend.target === 'tgt') {
          const logFile = join(dir, 'logs', 'tgtd.log');
          cluster.tgtdLog = createWriteStream(logFile, { flags: 'a' });
          cluster.tgtd = await startTgtd(cluster.tgtdLog, logFile, await freeTgtdPorts());
          // The simulated VMM host logs in as the name the targets' ACL admits for it.
          writeSimInitiatorName(join(dir, 'vmm-sim'), hostInitiatorName('localhost'));
        }
      }
      if (backend.type === 'rbd') {
        cluster.qmpDir = mkdtempSync(join(tmpdir(), 'vbs-crash-qmp-'));
        for (const vm of vms) cluster.qemuVms.push(await QemuVm.start(cluster.qmpDir, vm));
      }
      cluster.writeConfigs();
      if (backend.type !== 'rbd') for (const vm of vms) cluster.sim('vm', 'create', vm);
      for (const role of ROLES) await cluster.start(role);
      return cluster;
    } catch (err) {
      if (cluster) await cluster.destroy();
      else rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** The volume delegate's back end, as `vbs up` configures it. */
  private backendConfig(): object {
    if (this.backend.type === 'file') return { type: 'file', root: 'volumes' };
    if (this.backend.type === 'rbd') {
      const ceph = this.backend.ceph();
      return { type: 'rbd', cephConf: ceph.conf, keyring: ceph.vbsKeyring, pool: ceph.pool, clientId: 'vbs' };
    }
    const common = { type: 'lvm-iscsi', vg: SIM_VG, iqnPrefix: IQN_PREFIX, stateDir: 'volume-delegate-state', simState: 'vmm-sim' };
    if (this.backend.target === 'iet') return { ...common, target: 'iet', portal: '127.0.0.1:3260' };
    if (!this.tgtd) throw new Error('the tgt back end needs its tgtd started first');
    return { ...common, target: 'tgt', portal: this.tgtd.portal, tgtControlPort: this.tgtd.controlPort };
  }

  /** The configuration files `vbs up` writes, with fixed ports and brisk polling. */
  private writeConfigs(): void {
    // Each look at lvm-iscsi or rbd storage is a process of its own (lvs, rbd ls): poll less often.
    const lvm = this.backend.type !== 'file';
    seedDeploymentPki(this.dir);
    ensureDeploymentPki(this.dir);
    const tls = (name: string) => ({ key: `pki/${name}.key`, cert: `pki/${name}.crt`, ca: 'pki/ca.crt' });
    const listen = (role: Role) => ({ host: '127.0.0.1', port: this.ports[role] });
    const url = (role: Role, path: string) => `https://127.0.0.1:${this.ports[role]}${path}`;
    const write = (name: string, value: object) => writeFileSync(join(this.dir, name), `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
    write('volume-delegate.json', {
      role: 'volume-delegate',
      name: 'local',
      listen: listen('volume-delegate'),
      tls: tls('volume-delegate'),
      backend: this.backendConfig(),
    });
    write('vmm-delegate.json', {
      role: 'vmm-delegate',
      hostName: 'localhost',
      listen: listen('vmm-delegate'),
      tls: tls('vmm-delegate'),
      volumeRoots: ['volumes'],
      ...(this.qmpDir ? { adapter: 'qemu', qmpDir: this.qmpDir } : { adapter: 'sim', simState: 'vmm-sim' }),
    });
    write('front.json', {
      role: 'front',
      listen: listen('front'),
      tls: tls('front'),
      database: 'vbs.db',
      volumeDelegates: [{ name: 'local', url: url('volume-delegate', '/volume-delegate') }],
      vmmHosts: [{ name: 'localhost', url: url('vmm-delegate', '/vmm-delegate') }],
      // A delegate back from a kill is noticed (and what waited on it redone) within half a second.
      // On lvm-iscsi each poll of a copy runs lvs, and each probe lvs and vgs (a process each), so less often.
      pollIntervalMs: lvm ? 250 : 100,
      healthIntervalMs: lvm ? 2_000 : 500,
      // A detach or delete stalled on a killed delegate is finished soon after it is back.
      retryFirstDelayMs: 500,
    });
    this.frontUrl = url('front', '/vbs');
  }

  /** Starts `vbs serve <role>` and waits (bounded) for its ready line. */
  async start(role: Role, opts: StartOptions = {}): Promise<void> {
    if (this.isRunning(role)) throw new Error(`${role} is already running`);
    const env = { ...process.env };
    delete env[CRASH_ENV];
    if (opts.crashAt) env[CRASH_ENV] = opts.crashAt;
    const args = [CLI, 'serve', role, '--config', join(this.dir, `${role}.json`), '--exit-with-parent'];
    if (opts.commands) args.push('--commands', opts.commands);
    const child = spawn(process.execPath, args, { cwd: this.dir, env, stdio: ['pipe', 'pipe', 'pipe'] });
    const log = createWriteStream(join(this.dir, 'logs', `${role}.log`), { flags: 'a' });
    child.stderr!.pipe(log);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
    this.running.set(role, { child, exited });
    this.starts.set(role, this.generation(role) + 1);
    await new Promise<void>((resolveReady, reject) => {
      const timer = setTimeout(() => reject(new Error(`${role} was not ready within ${WAIT_READY_MS} ms; see ${this.logOf(role)}`)), WAIT_READY_MS);
      createInterface({ input: child.stdout! }).on('line', (line) => {
        if (line.startsWith('{"ready"')) {
          clearTimeout(timer);
          resolveReady();
        }
      });
      void exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`${role} exited (${code ?? signal}) before it was ready:\n${this.tail(role)}`));
      });
    });
  }

  /** How many times the service was started: clients of an older generation talk to a dead process. */
  generation(role: Role): number {
    return this.starts.get(role) ?? 0;
  }

  isRunning(role: Role): boolean {
    const r = this.running.get(role);
    return Boolean(r && r.child.exitCode === null && r.child.signalCode === null);
  }

  /** Resolves with the signal that ended the service, or undefined if it still runs after `ms`. */
  async waitExit(role: Role, ms = WAIT_EXIT_MS): Promise<NodeJS.Signals | null | undefined> {
    const r = this.running.get(role);
    if (!r) return null;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((res) => (timer = setTimeout(() => res(undefined), ms)));
    const result = await Promise.race([r.exited.then((e) => e.signal), timeout]);
    clearTimeout(timer);
    // Only forget the process waited for, never one started since.
    if (result !== undefined && this.running.get(role) === r) {
      this.running.delete(role);
      this.killStrays();
    }
    return result;
  }

  /** kill -9 the service, wait for it to be gone, and end what it left running. */
  async kill(role: Role): Promise<void> {
    const r = this.running.get(role);
    if (!r) return;
    if (this.isRunning(role)) r.child.kill('SIGKILL');
    const signal = await this.waitExit(role);
    if (signal === undefined) throw new Error(`${role} (pid ${r.child.pid}) survived SIGKILL for ${WAIT_EXIT_MS} ms`);
  }

  async restart(role: Role, opts: StartOptions = {}): Promise<void> {
    await this.kill(role);
    await this.start(role, opts);
  }

  /**
   * Processes a killed service left behind (a copy command it had started):
   * their command line names a file in this cluster's folder and their parent
   * is none of the services still running (nor a running service's command
   * helper, which starts its commands). Killed by PID.
   */
  killStrays(): void {
    const ours = new Set([...this.running.values()].filter((r) => r.child.exitCode === null && r.child.signalCode === null).map((r) => r.child.pid));
    for (const entry of readdirSync('/proc')) {
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ours.has(parent) && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('command-helper.js')) ours.add(Number(entry));
      } catch {
        // not a process, or gone meanwhile
      }
    }
    for (const entry of readdirSync('/proc')) {
      if (!/^[0-9]+$/.test(entry) || ours.has(Number(entry)) || Number(entry) === process.pid) continue;
      let cmdline: string;
      let parent: number;
      try {
        cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      } catch {
        continue;
      }
      if (!cmdline.includes(this.dir) || cmdline.includes(`${CLI}\0serve`) || ours.has(parent)) continue;
      try {
        process.kill(Number(entry), 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }

  /** A SOAP client for the admin identity (closed by destroy). */
  soap(): SoapClient {
    const pki = (f: string) => readFileSync(join(this.dir, 'pki', f));
    const c = new SoapClient({ def: VBS_SERVICE, url: this.frontUrl, tls: { key: pki('admin.key'), cert: pki('admin.crt'), ca: pki('ca.crt') }, timeoutMs: 60_000 });
    this.clients.push(c);
    return c;
  }

  /** The host simulator on this cluster's VMM state folder. */
  sim(...args: string[]): string {
    return execFileSync(process.execPath, [HOSTSIM, '--state', join(this.dir, 'vmm-sim'), ...args], { encoding: 'utf8' });
  }

  logOf(role: Role): string {
    return join(this.dir, 'logs', `${role}.log`);
  }

  /** The last lines of a service's log, for failure messages. */
  tail(role: Role, lines = 15): string {
    try {
      return readFileSync(this.logOf(role), 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** Ends every process the cluster started and removes its folder. */
  async destroy(): Promise<void> {
    for (const c of this.clients.splice(0)) c.close();
    for (const role of [...ROLES].reverse()) {
      try {
        await this.kill(role);
      } catch {
        // reported by the test that left it; keep cleaning
      }
    }
    this.killStrays();
    for (const vm of this.qemuVms.splice(0)) await vm.stop().catch(() => undefined);
    if (this.qmpDir) rmSync(this.qmpDir, { recursive: true, force: true });
    await this.tgtd?.stop();
    this.tgtdLog?.end();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

