import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { VBS_SERVICE } from '../../src/services/vbs.js';
import { SoapClient } from '../../src/soap/client.js';
import { PkiStore } from '../../src/pki/store.js';
import { ROOT, startVbs } from './harness.js';

const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const HOSTSIM = join(ROOT, 'dist', 'sim', 'hostsim.js');

export interface RaceHost {
  readonly name: string;
  readonly vms: readonly string[];
}

export interface RaceDeploymentOptions {
  /** The volume delegate's backend.capacityGiB. */
  readonly capacityGiB: number;
  /** Simulated VMM hosts and their VMs; the first is `vbs up`'s own `localhost`. */
  readonly hosts: readonly RaceHost[];
  /** Extra settings of front.json (delegateTimeoutMs, ...). */
  readonly front?: Record<string, unknown>;
}

export interface RaceDeployment {
  readonly dir: string;
  readonly url: string;
  /** A new SOAP client (its own connections) acting as `user`. */
  soap(user?: string): SoapClient;
  stop(): Promise<void>;
}

/**
 * `vbs up` has no option for a capacity cap or a second VMM host, so this
 * starts it once to lay out the folder (CA, certificates, configurations,
 * simulated VMs), stops it, adjusts the configurations, and runs each service
 * with `vbs serve` as `vbs up` would: volume delegate, VMM delegates, front.
 */
export async function startRaceDeployment(opts: RaceDeploymentOptions): Promise<RaceDeployment> {
  const base = await startVbs();
  await base.stop(true);
  const dir = base.dir;
  const children: ChildProcess[] = [];
  const clients: SoapClient[] = [];
  const stop = async () => {
    for (const c of clients) c.close();
    for (const c of [...children].reverse()) await stopChild(c);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const readJson = (f: string) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as Record<string, unknown>;
    const writeJson = (f: string, v: object) => writeFileSync(join(dir, f), JSON.stringify(v, null, 2), { mode: 0o600 });

    // vbs up wrote the ports its services had; every service here gets a
    // fresh one instead (port 0): there may be several VMM delegates, and the
    // old ports may have been taken since.
    const anyPort = (c: Record<string, unknown>): Record<string, unknown> => ({ ...c, listen: { ...(c.listen as object), port: 0 } });
    const volume = anyPort(readJson('volume-delegate.json'));
    writeJson('volume-delegate.json', { ...volume, backend: { ...(volume.backend as object), capacityGiB: opts.capacityGiB } });

    const vmmBase = anyPort(readJson('vmm-delegate.json'));
    const vmmConfigs: { host: string; file: string }[] = [];
    opts.hosts.forEach((h, i) => {
      const simState = i === 0 ? 'vmm-sim' : `vmm-sim-${h.name}`;
      const file = i === 0 ? 'vmm-delegate.json' : `vmm-delegate-${h.name}.json`;
      writeJson(file, { ...vmmBase, hostName: h.name, simState });
      const existing = (JSON.parse(sim(join(dir, simState), 'vm', 'list')) as { name: string }[]).map((v) => v.name);
      for (const vm of h.vms) if (!existing.includes(vm)) sim(join(dir, simState), 'vm', 'create', vm);
      vmmConfigs.push({ host: h.name, file });
    });

    const volumeUrl = await serve('volume-delegate', join(dir, 'volume-delegate.json'), dir, children);
    const vmmUrls = await Promise.all(vmmConfigs.map((c) => serve('vmm-delegate', join(dir, c.file), dir, children)));
    const front = anyPort(readJson('front.json'));
    writeJson('front.json', {
      ...front,
      volumeDelegates: [{ name: String(volume.name), url: volumeUrl }],
      vmmHosts: vmmConfigs.map((c, i) => ({ name: c.host, url: vmmUrls[i] })),
      pollIntervalMs: 100,
      ...opts.front,
    });
    const url = await serve('front', join(dir, 'front.json'), dir, children);

    const pki = new PkiStore(join(dir, 'pki'));
    return {
      dir,
      url,
      soap(user = 'admin') {
        const name = user === 'admin' ? 'admin' : `user-${user}`;
        if (user !== 'admin') pki.ensureIdentity(name, { commonName: user, use: 'client' });
        const c = new SoapClient({
          def: VBS_SERVICE,
          url,
          tls: { key: readFileSync(join(dir, 'pki', `${name}.key`)), cert: readFileSync(join(dir, 'pki', `${name}.crt`)), ca: readFileSync(join(dir, 'pki', 'ca.crt')) },
          timeoutMs: 60_000,
        });
        clients.push(c);
        return c;
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

function sim(state: string, ...args: string[]): string {
  return execFileSync(process.execPath, [HOSTSIM, '--state', state, ...args], { encoding: 'utf8' });
}

/** `vbs serve ROLE`, stopped with us (stdin closes), resolved with its URL once ready. */
function serve(role: string, config: string, dir: string, children: ChildProcess[]): Promise<string> {
  const child = spawn(process.execPath, [CLI, 'serve', role, '--config', config, '--exit-with-parent'], { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr = (stderr + String(d)).slice(-4000)));
  child.stderr!.pipe(createWriteStream(join(dir, 'logs', `${role}-${children.length}.log`), { flags: 'a' }));
  return new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`${role} did not start in 60 s: ${stderr}`)), 60_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /^\{"ready":"([^"]+)"/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolveUrl(m[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${role} exited with ${code}: ${stderr}`));
    });
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      done();
    });
    child.kill('SIGTERM');
  });
}
