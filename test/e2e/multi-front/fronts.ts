import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { CRASH_ENV } from '../../../src/core/crash-points.js';
import { freePort } from '../../../src/core/free-port.js';
import { ensureDeploymentPki } from '../../../src/deploy/all-in-one.js';
import { VBS_SERVICE } from '../../../src/services/vbs.js';
import { SoapClient } from '../../../src/soap/client.js';
import { seedDeploymentPki } from '../../setup/pki.js';
import { ROOT, VBS_BIN } from '../harness.js';

const run = promisify(execFile);
const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const HOSTSIM = join(ROOT, 'dist', 'sim', 'hostsim.js');
const WAIT_READY_MS = 30_000;

export const FRONTS = ['front-a', 'front-b'] as const;
export type FrontName = (typeof FRONTS)[number];
type Service = 'volume-delegate' | 'vmm-delegate' | FrontName;

/** How long a claim holds: a dead front's work must be finished by the other within it. */
export const LEASE_MS = 15_000;

interface Running {
  readonly child: ChildProcess;
  readonly exited: Promise<NodeJS.Signals | null>;
}

/**
 * Two fronts on one metadata database (a SQLite file in the deployment's
 * folder, or a PostgreSQL URL: the run's cluster, a schema of its own), and
 * the two delegates they share, as `vbs up --fronts 2` lays them out, but
 * each process under the test's
 * control: a front can be started with a crash point (src/core/crash-points.ts)
 * at which it SIGKILLs itself, killed, and started again. Everything started
 * is tracked by PID and ended by `destroy`.
 */
export class TwoFronts {
  private readonly running = new Map<Service, Running>();
  private readonly clients: SoapClient[] = [];

  private constructor(
    readonly dir: string,
    private readonly ports: Readonly<Record<Service, number>>,
    private readonly database: string,
  ) {}

  /** `database`: what both fronts' `database` key says; by default the SQLite file `vbs.db` in the deployment's folder. */
  static async create(vms: readonly string[], database = 'vbs.db'): Promise<TwoFronts> {
    const dir = mkdtempSync(join(tmpdir(), 'vbs-fronts-'));
    const ports = { 'volume-delegate': await freePort(), 'vmm-delegate': await freePort(), 'front-a': await freePort(), 'front-b': await freePort() };
    const c = new TwoFronts(dir, ports, database);
    try {
      for (const sub of ['volumes', 'logs', 'vmm-sim']) mkdirSync(join(dir, sub), { recursive: true, mode: 0o700 });
      c.writeConfigs();
      for (const vm of vms) c.sim('vm', 'create', vm);
      for (const s of ['volume-delegate', 'vmm-delegate', ...FRONTS] as const) await c.start(s);
      return c;
    } catch (err) {
      await c.destroy();
      throw err;
    }
  }

  url(front: FrontName): string {
    return `https://127.0.0.1:${this.ports[front]}/vbs`;
  }

  private writeConfigs(): void {
    seedDeploymentPki(this.dir);
    ensureDeploymentPki(this.dir);
    const tls = (name: string) => ({ key: `pki/${name}.key`, cert: `pki/${name}.crt`, ca: 'pki/ca.crt' });
    const listen = (s: Service) => ({ host: '127.0.0.1', port: this.ports[s] });
    const write = (name: string, value: object) => writeFileSync(join(this.dir, name), `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
    write('volume-delegate.json', { role: 'volume-delegate', name: 'local', listen: listen('volume-delegate'), tls: tls('volume-delegate'), backend: { type: 'file', root: 'volumes' } });
    write('vmm-delegate.json', { role: 'vmm-delegate', hostName: 'localhost', listen: listen('vmm-delegate'), tls: tls('vmm-delegate'), adapter: 'sim', volumeRoots: ['volumes'], simState: 'vmm-sim' });
    for (const f of FRONTS) {
      write(`${f}.json`, {
        role: 'front',
        listen: listen(f),
        tls: tls('front'),
        // One metadata database for both.
        database: this.database,
        auditLog: `audit-${f}.log`,
        volumeDelegates: [{ name: 'local', url: `https://127.0.0.1:${this.ports['volume-delegate']}/volume-delegate` }],
        vmmHosts: [{ name: 'localhost', url: `https://127.0.0.1:${this.ports['vmm-delegate']}/vmm-delegate` }],
        pollIntervalMs: 200,
        healthIntervalMs: 1_000,
        retryFirstDelayMs: 500,
        claimLeaseMs: LEASE_MS,
      });
    }
    // The admin's CLI configuration naming both fronts (as `vbs up --fronts 2` writes it).
    write('client.json', { url: FRONTS.map((f) => this.url(f)), key: 'pki/admin.key', cert: 'pki/admin.crt', ca: 'pki/ca.crt', connectTimeoutMs: 2_000 });
  }

  /** Starts a service, with a crash point if given, and waits (bounded) for its ready line. */
  async start(s: Service, crashAt?: string): Promise<void> {
    const env = { ...process.env };
    delete env[CRASH_ENV];
    if (crashAt) env[CRASH_ENV] = crashAt;
    const role = s.startsWith('front') ? 'front' : s;
    const child = spawn(process.execPath, [CLI, 'serve', role, '--config', join(this.dir, `${s}.json`), '--exit-with-parent'], { cwd: this.dir, env, stdio: ['pipe', 'pipe', 'pipe'] });
    child.stderr!.pipe(createWriteStream(join(this.dir, 'logs', `${s}.log`), { flags: 'a' }));
    const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_code, signal) => r(signal)));
    this.running.set(s, { child, exited });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${s} was not ready within ${WAIT_READY_MS} ms`)), WAIT_READY_MS);
      createInterface({ input: child.stdout! }).on('line', (line) => {
        if (line.startsWith('{"ready"')) {
          clearTimeout(timer);
          resolve();
        }
      });
      void exited.then((signal) => {
        clearTimeout(timer);
        reject(new Error(`${s} exited (${signal}) before it was ready:\n${this.log(s).slice(-2_000)}`));
      });
    });
  }

  /** Resolves with the signal that ended a service (a crash point's SIGKILL), waiting at most `ms`. */
  async exited(s: Service, ms = 30_000): Promise<NodeJS.Signals | null> {
    const r = this.running.get(s);
    if (!r) throw new Error(`${s} was never started`);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${s} still runs after ${ms} ms`)), ms)));
    try {
      return await Promise.race([r.exited, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  isRunning(s: Service): boolean {
    const r = this.running.get(s);
    return Boolean(r && r.child.exitCode === null && r.child.signalCode === null);
  }

  /** kill -9, and wait until it is gone. */
  async kill(s: Service): Promise<void> {
    const r = this.running.get(s);
    if (!r) return;
    if (this.isRunning(s)) r.child.kill('SIGKILL');
    await this.exited(s);
  }

  log(s: Service): string {
    try {
      return readFileSync(join(this.dir, 'logs', `${s}.log`), 'utf8');
    } catch {
      return '';
    }
  }

  /** A SOAP client of the admin, to one front. */
  soap(front: FrontName): SoapClient {
    const pki = (f: string) => readFileSync(join(this.dir, 'pki', f));
    const c = new SoapClient({ def: VBS_SERVICE, url: this.url(front), tls: { key: pki('admin.key'), cert: pki('admin.crt'), ca: pki('ca.crt') } });
    this.clients.push(c);
    return c;
  }

  /** The vbs CLI as the admin, with client.json naming both fronts; never throws. */
  async cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const r = await run(process.execPath, [VBS_BIN, '--config', join(this.dir, 'client.json'), ...args], { timeout: 120_000 });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  }

  sim(...args: string[]): string {
    return execFileSync(process.execPath, [HOSTSIM, '--state', join(this.dir, 'vmm-sim'), ...args], { encoding: 'utf8' });
  }

  async destroy(): Promise<void> {
    for (const c of this.clients.splice(0)) c.close();
    for (const s of [...this.running.keys()].reverse()) await this.kill(s);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
