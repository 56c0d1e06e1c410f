import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { VBS_SERVICE } from '../../src/services/vbs.js';
import { SoapClient } from '../../src/soap/client.js';
import { PkiStore } from '../../src/pki/store.js';
import { seedDeploymentPki } from '../setup/pki.js';

const run = promisify(execFile);
export const ROOT = resolve(import.meta.dirname, '../..');
export const VBS_BIN = join(ROOT, 'bin', 'vbs.js');

export interface Vbs {
  readonly dir: string;
  readonly url: string;
  readonly clientConfig: string;
  readonly process: ChildProcess;
  /** A SOAP client acting as `user` (a certificate issued by this deployment's CA). */
  soap(user?: string): SoapClient;
  /** Runs the vbs CLI as the admin; never throws, returns exit code and output. */
  cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Stops `vbs up` (SIGTERM) and, unless keepData, removes its folder. */
  stop(keepData?: boolean): Promise<void>;
}

/**
 * Gives user the VMs on vmmHost (AssignVm, as `vbs admin vm assign`): a user
 * attaches only into VMs they own, and the simulated VMs are the
 * administrators' until assigned. `admin` is an administrator's client.
 */
export async function assignVms(admin: SoapClient, user: string, vmmHost: string, vms: readonly string[]): Promise<void> {
  for (const vmId of vms) await admin.call('AssignVm', { vmmHost, vmId, user });
}

/**
 * Starts `vbs up` in a fresh folder on a free port and waits until it is
 * ready. A fresh folder starts with a copy of the run's deployment PKI
 * (test/setup/pki.ts); a folder the caller gives is left as it is, so `vbs up`
 * makes what is missing itself.
 */
export async function startVbs(extraArgs: string[] = [], given?: string, env: NodeJS.ProcessEnv = process.env): Promise<Vbs> {
  const dir = given ?? mkdtempSync(join(tmpdir(), 'vbs-e2e-'));
  if (given === undefined) seedDeploymentPki(dir);
  const child = spawn(process.execPath, [VBS_BIN, 'up', '--data', dir, '--port', '0', ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const url = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`vbs up did not start in 60 s: ${stderr}`)), 60_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /^VBS is up: (\S+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolveUrl(m[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`vbs up exited with ${code}: ${stderr}`));
    });
  });
  const clients: SoapClient[] = [];
  const pki = new PkiStore(join(dir, 'pki'));
  const clientConfig = join(dir, 'client.json');
  return {
    dir,
    url,
    clientConfig,
    process: child,
    soap(user = 'admin') {
      if (user !== 'admin') pki.ensureIdentity(`user-${user}`, { commonName: user, use: 'client' });
      const name = user === 'admin' ? 'admin' : `user-${user}`;
      const c = new SoapClient({
        def: VBS_SERVICE,
        url,
        tls: { key: readFileSync(join(dir, 'pki', `${name}.key`)), cert: readFileSync(join(dir, 'pki', `${name}.crt`)), ca: readFileSync(join(dir, 'pki', 'ca.crt')) },
      });
      clients.push(c);
      return c;
    },
    async cli(...args: string[]) {
      try {
        const r = await run(process.execPath, [VBS_BIN, '--config', clientConfig, ...args], { timeout: 120_000 });
        return { code: 0, stdout: r.stdout, stderr: r.stderr };
      } catch (err) {
        const e = err as { code?: number; stdout?: string; stderr?: string };
        return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
      }
    },
    async stop(keepData = false) {
      for (const c of clients) c.close();
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      if (!keepData) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls `check` until it returns a value, at most `ms`; bounded, as every loop in a test. */
export async function eventually<T>(check: () => Promise<T | undefined>, ms = 30_000, every = 100): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, every));
  }
}
