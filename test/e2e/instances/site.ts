import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { CRASH_ENV } from '../../../src/core/crash-points.js';
import { freePort } from '../../../src/core/free-port.js';
import { ensureDeploymentPki } from '../../../src/deploy/all-in-one.js';
import { seedDeploymentPki } from '../../setup/pki.js';
import { PkiStore } from '../../../src/pki/store.js';
import { ROOT, VBS_BIN } from '../harness.js';

const run = promisify(execFile);
const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const HOSTSIM = join(ROOT, 'dist', 'sim', 'hostsim.js');
const READY_MS = 30_000;

export const ROLES = ['volume-delegate', 'node1', 'node2', 'instance-resolver', 'front'] as const;
export type Role = (typeof ROLES)[number];
const SERVE_ROLE: Record<Role, string> = {
  'volume-delegate': 'volume-delegate',
  node1: 'vmm-delegate',
  node2: 'vmm-delegate',
  'instance-resolver': 'instance-resolver',
  front: 'front',
};

/**
 * The integrated mode on one machine, every part a real process: a front,
 * a volume delegate (files), two simulated Xen hosts `node1` and `node2` (a
 * VMM delegate each, on its own host simulator state), and the instance
 * resolver running nimbus, openstack and static against the stand-ins in
 * `cloud-sim` (elastic.db, nimbus-admin, openstack). The front tries scan,
 * nimbus, openstack, static, in that order. Users alice and bob have
 * certificates and CLI configurations of their own.
 */
export class Site {
  private readonly children = new Map<Role, ChildProcess>();

  private constructor(
    readonly dir: string,
    private readonly ports: Readonly<Record<Role, number>>,
  ) {}

  static async create(): Promise<Site> {
    const dir = mkdtempSync(join(tmpdir(), 'vbs-instances-'));
    const ports = {} as Record<Role, number>;
    for (const r of ROLES) ports[r] = await freePort();
    const site = new Site(dir, ports);
    try {
      site.writeConfigs();
      for (const r of ROLES) await site.start(r);
      return site;
    } catch (err) {
      await site.destroy();
      throw err;
    }
  }

  private writeConfigs(): void {
    for (const sub of ['volumes', 'logs', 'node1-sim', 'node2-sim', 'cloud-sim']) mkdirSync(join(this.dir, sub), { recursive: true });
    seedDeploymentPki(this.dir);
    ensureDeploymentPki(this.dir);
    const pki = new PkiStore(join(this.dir, 'pki'));
    for (const user of ['alice', 'bob']) {
      pki.ensureIdentity(`user-${user}`, { commonName: user, use: 'client' });
      this.write(`client-${user}.json`, { url: this.url('front', '/vbs'), key: `pki/user-${user}.key`, cert: `pki/user-${user}.crt`, ca: 'pki/ca.crt' });
    }
    // The deployment's administrator (its certificate carries the administrator purpose).
    this.write('client-admin.json', { url: this.url('front', '/vbs'), key: 'pki/admin.key', cert: 'pki/admin.crt', ca: 'pki/ca.crt' });
    const tls = (name: string) => ({ key: `pki/${name}.key`, cert: `pki/${name}.crt`, ca: 'pki/ca.crt' });
    const listen = (r: Role) => ({ host: '127.0.0.1', port: this.ports[r] });
    this.write('volume-delegate.json', { role: 'volume-delegate', name: 'local', listen: listen('volume-delegate'), tls: tls('volume-delegate'), backend: { type: 'file', root: 'volumes' } });
    for (const node of ['node1', 'node2'] as const) {
      this.write(`${node}.json`, { role: 'vmm-delegate', hostName: node, adapter: 'sim', listen: listen(node), tls: tls('vmm-delegate'), volumeRoots: ['volumes'], simState: `${node}-sim` });
    }
    this.write('instance-resolver.json', {
      role: 'instance-resolver',
      listen: listen('instance-resolver'),
      tls: tls('instance-resolver'),
      simState: 'cloud-sim',
      nimbus: { elasticDb: 'cloud-sim/nimbus/elastic.db' },
      clouds: { openstack: { accounts: { 'proj-alice': ['alice'], 'proj-bob': ['bob'] } } },
      static: { file: 'instances.json' },
    });
    this.write('instances.json', {});
    this.write('front.json', {
      role: 'front',
      listen: listen('front'),
      tls: tls('front'),
      database: 'vbs.db',
      volumeDelegates: [{ name: 'local', url: this.url('volume-delegate', '/volume-delegate') }],
      vmmHosts: (['node1', 'node2'] as const).map((n) => ({ name: n, url: this.url(n, '/vmm-delegate') })),
      pollIntervalMs: 100,
      healthIntervalMs: 500,
      delegateTimeoutMs: 20_000,
      // No cache: each test changes the clouds between attaches.
      instances: { resolvers: ['scan', 'nimbus', 'openstack', 'static'], resolverUrl: this.url('instance-resolver', '/instance-resolver'), cacheMs: 0 },
    });
  }

  private url(r: Role, path: string): string {
    return `https://127.0.0.1:${this.ports[r]}${path}`;
  }

  write(name: string, value: object): void {
    writeFileSync(join(this.dir, name), `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
  }

  /** `vbs serve` for one part, with a crash point if given; waits (bounded) for its ready line. */
  async start(r: Role, crashAt?: string): Promise<void> {
    const env = { ...process.env };
    delete env[CRASH_ENV];
    if (crashAt) env[CRASH_ENV] = crashAt;
    const child = spawn(process.execPath, [CLI, 'serve', SERVE_ROLE[r], '--config', join(this.dir, `${r}.json`), '--exit-with-parent'], {
      cwd: this.dir,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.children.set(r, child);
    child.stderr!.pipe(createWriteStream(join(this.dir, 'logs', `${r}.log`), { flags: 'a' }));
    await new Promise<void>((ready, reject) => {
      const timer = setTimeout(() => reject(new Error(`${r} was not ready in ${READY_MS} ms`)), READY_MS);
      createInterface({ input: child.stdout! }).on('line', (line) => {
        if (line.startsWith('{"ready"')) {
          clearTimeout(timer);
          ready();
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${r} exited (${code ?? signal}) before it was ready: ${this.log(r).slice(-2000)}`));
      });
    });
  }

  /** Resolves once the part's process has ended (killed, or a crash point), bounded. */
  async exited(r: Role, ms = 30_000): Promise<void> {
    const child = this.children.get(r);
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((done, reject) => {
      const timer = setTimeout(() => reject(new Error(`${r} still runs after ${ms} ms`)), ms);
      child.once('exit', () => {
        clearTimeout(timer);
        done();
      });
    });
  }

  /** Stops a part (SIGKILL with `kill9`), by the PID we started. */
  async stop(r: Role, kill9 = false): Promise<void> {
    const child = this.children.get(r);
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = this.exited(r);
    child.kill(kill9 ? 'SIGKILL' : 'SIGTERM');
    await gone;
  }

  log(r: Role): string {
    try {
      return readFileSync(join(this.dir, 'logs', `${r}.log`), 'utf8');
    } catch {
      return '';
    }
  }

  /** The vbs CLI as `user`; never throws. */
  async cli(user: 'alice' | 'bob' | 'admin', ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const r = await run(process.execPath, [VBS_BIN, '--config', join(this.dir, `client-${user}.json`), ...args], { timeout: 120_000 });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  }

  /** The CLI with --json; throws unless it exits 0. */
  async json<T>(user: 'alice' | 'bob' | 'admin', ...args: string[]): Promise<T> {
    const r = await this.cli(user, '--json', ...args);
    if (r.code !== 0) throw new Error(`vbs ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  }

  /** The host simulator of a VMM host, or of the clouds (`cloud`). */
  sim(where: 'node1' | 'node2' | 'cloud', ...args: string[]): string {
    return execFileSync(process.execPath, [HOSTSIM, '--state', join(this.dir, `${where}-sim`), ...args], { encoding: 'utf8' });
  }

  /** The disks of every VM of a simulated host: `vm:dev` → backing file. */
  disks(node: 'node1' | 'node2'): Record<string, string> {
    const vms = JSON.parse(this.sim(node, 'vm', 'list')) as { name: string; disks: { dev: string; target: string }[] }[];
    return Object.fromEntries(vms.flatMap((vm) => vm.disks.map((d) => [`${vm.name}:${d.dev}`, d.target])));
  }

  /** Read-only look at the front's metadata (count of journaled workflows of a kind). */
  workflows(kind: string): number {
    const db = new Database(join(this.dir, 'vbs.db'), { readonly: true });
    try {
      return (db.prepare('SELECT count(*) AS n FROM workflows WHERE kind = ?').get(kind) as { n: number }).n;
    } finally {
      db.close();
    }
  }

  /** The journaled state of step `n` (from 1) of the running workflow of a kind, if any. */
  stepState(kind: string, n: number): string | undefined {
    const db = new Database(join(this.dir, 'vbs.db'), { readonly: true });
    try {
      const row = db
        .prepare(`SELECT s.state FROM workflow_steps s JOIN workflows w ON w.id = s.workflow_id WHERE w.kind = ? AND w.state = 'running' AND s.idx = ?`)
        .get(kind, n - 1) as { state: string } | undefined;
      return row?.state;
    } finally {
      db.close();
    }
  }

  async destroy(): Promise<void> {
    for (const r of [...ROLES].reverse()) await this.stop(r).catch(() => this.children.get(r)?.kill('SIGKILL'));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
