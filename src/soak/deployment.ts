import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync, writeFileSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { DEFAULT_COMMANDS_FILE, VBS_HOME } from '../core/paths.js';
import { childrenOf, cmdline } from './processes.js';

export type Backend = 'file' | 'lvm-iscsi' | 'rbd';

/** The services `vbs up` supervises, which the chaos may signal. */
export const SERVICES = ['front', 'volume-delegate', 'vmm-delegate'] as const;
export type ServiceName = (typeof SERVICES)[number];

const VBS_BIN = join(VBS_HOME, 'bin', 'vbs.js');
const START_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 30_000;

/**
 * Thin volumes: the shipped file back end reserves every byte with fallocate,
 * and a soak makes hundreds of volumes (a bench filled a disk that way), so
 * the soak's own commands file creates them sparse with truncate instead.
 * Everything else is the shipped file.
 */
export function writeThinCommands(file: string): void {
  const shipped = readFileSync(DEFAULT_COMMANDS_FILE, 'utf8');
  const thin = shipped.replace(/^volume\.file\.create\s*=.*$/m, 'volume.file.create = truncate -s <bytes> <path>');
  if (thin === shipped) throw new Error(`${DEFAULT_COMMANDS_FILE} has no volume.file.create pattern to make thin`);
  writeFileSync(file, thin);
}

/** A `vbs up` the soak started (its own child), and what it says on stderr. */
export class SoakDeployment {
  /** Set when `vbs up` ended (it gave up on a service, or crashed): the run is over. */
  exited: string | undefined;
  private readonly exitedPromise: Promise<void>;
  private readonly stderrLog: WriteStream;
  /** `vbs up`'s reports of services that stopped unexpectedly or failed to start again (ours and any others). */
  unexpectedStops = 0;
  /** Service processes known to serve: the first ones, and each one `vbs up` reports back. */
  private readonly readyPids = new Set<number>();

  private constructor(
    readonly dir: string,
    readonly url: string,
    private readonly child: ChildProcess,
    stderrLog: WriteStream,
    exitedPromise: Promise<void>,
  ) {
    this.stderrLog = stderrLog;
    this.exitedPromise = exitedPromise;
  }

  get pid(): number {
    return this.child.pid!;
  }

  get clientConfig(): string {
    return join(this.dir, 'client.json');
  }

  /**
   * Starts `vbs up` in `dir` on a free port with the thin commands file, and
   * waits (bounded) until it says it is up. Its stderr goes to `stderrFile`.
   */
  static async start(o: { dir: string; backend: Backend; commands: string; stderrFile: string; env?: NodeJS.ProcessEnv; db?: string; cpuProfileDir?: string; upArgs?: readonly string[] }): Promise<SoakDeployment> {
    const args = [VBS_BIN, 'up', '--data', o.dir, '--port', '0', '--commands', o.commands, '--backend', o.backend];
    // The metadata on PostgreSQL (the bench's side-by-side run); default SQLite.
    if (o.db !== undefined) args.push('--db', o.db);
    // The bench's --profile: each service writes a CPU profile when it stops.
    if (o.cpuProfileDir !== undefined) args.push('--cpu-prof', o.cpuProfileDir);
    // The bench's real VMM host: `--vmm qemu --qmp-dir DIR`.
    args.push(...(o.upArgs ?? []));
    // The simulated IET: the soak checks targets through the simulator, and needs no root.
    if (o.backend === 'lvm-iscsi') args.push('--target', 'iet');
    // Its own process group: a Ctrl-C at the terminal reaches the soak, which
    // then ends the chaos and still checks, instead of stopping `vbs up` too.
    // `env`: what the services must see (the clock's offset file): `vbs up` passes its environment on to them.
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, ...o.env } });
    // Whatever way the soak ends (short of SIGKILL), the deployment ends with it.
    const stopOnExit = () => child.kill('SIGTERM');
    process.once('exit', stopOnExit);
    const stderrLog = createWriteStream(o.stderrFile);
    let exitedHow: string | undefined;
    const exitedPromise = new Promise<void>((r) =>
      child.once('exit', (code, sig) => {
        process.removeListener('exit', stopOnExit);
        exitedHow = sig ? `signal ${sig}` : `exit code ${code}`;
        r();
      }),
    );
    let stderrText = '';
    let deployment: SoakDeployment | undefined;
    createInterface({ input: child.stderr! }).on('line', (line) => {
      stderrLog.write(`${new Date().toISOString()} ${line}\n`);
      if (stderrText.length < 10_000) stderrText += `${line}\n`;
      if (!deployment) return;
      if (/stopped unexpectedly|did not start again/.test(line)) deployment.unexpectedStops++;
      const back = /the (\S+) service is back \(PID ([0-9]+)/.exec(line);
      if (back) {
        deployment.readyPids.add(Number(back[2]));
        deployment.onBack?.(back[1]!, Number(back[2]));
      }
    });
    const url = await new Promise<string>((resolveUrl, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGTERM');
        reject(new Error(`vbs up did not start within ${START_TIMEOUT_MS / 1000} s: ${stderrText}`));
      }, START_TIMEOUT_MS);
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const m = /^VBS is up: (\S+)/.exec(line);
        if (m) {
          clearTimeout(timer);
          resolveUrl(m[1]!);
        }
      });
      void exitedPromise.then(() => {
        clearTimeout(timer);
        reject(new Error(`vbs up ended (${exitedHow}) before it was up: ${stderrText}`));
      });
    });
    deployment = new SoakDeployment(o.dir, url, child, stderrLog, exitedPromise);
    for (const name of SERVICES) {
      const pid = deployment.servicePid(name);
      if (pid !== undefined) deployment.readyPids.add(pid);
    }
    void exitedPromise.then(() => (deployment!.exited = exitedHow));
    return deployment;
  }

  /** The PID of a service's current process (a child of this `vbs up`), if exactly one runs. */
  servicePid(name: ServiceName): number | undefined {
    const match = childrenOf(this.pid).filter((p) => cmdline(p).includes(` serve ${name} `));
    return match.length === 1 ? match[0] : undefined;
  }

  /** Called with each service `vbs up` reports back after a restart. */
  private onBack: ((service: string, pid: number) => void) | undefined;

  /**
   * Stops a service (SIGTERM) so `vbs up` starts it again, with the
   * configuration as it now is in its file, and waits (bounded) until it
   * serves. Not a crash the soak should count: the stop report is forgotten.
   */
  async restartService(name: ServiceName): Promise<void> {
    const pid = this.servicePid(name);
    if (pid === undefined) throw new Error(`the ${name} service is not running`);
    const stopsBefore = this.unexpectedStops;
    await new Promise<void>((resolveBack, reject) => {
      const timer = setTimeout(() => reject(new Error(`the ${name} service did not come back within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
      this.onBack = (service) => {
        if (service !== name) return;
        clearTimeout(timer);
        this.onBack = undefined;
        resolveBack();
      };
      process.kill(pid, 'SIGTERM');
    });
    this.unexpectedStops = stopsBefore;
  }

  /** Whether the process is a service that has said it serves (not one still starting, or recovering its journal). */
  isReady(pid: number): boolean {
    return this.readyPids.has(pid);
  }

  /** Stops `vbs up` (SIGTERM, then SIGKILL if it lingers) and waits until it is gone. */
  async stop(): Promise<void> {
    if (this.exited === undefined) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await this.exitedPromise;
      clearTimeout(timer);
    }
    await new Promise<void>((r) => this.stderrLog.end(r));
  }

  /** Resolves when `vbs up` has ended. */
  whenExited(): Promise<void> {
    return this.exitedPromise;
  }
}
