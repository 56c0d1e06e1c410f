import { execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { VBS_SERVICE } from '../../src/services/vbs.js';
import { SoapClient } from '../../src/soap/client.js';
import { PkiStore } from '../../src/pki/store.js';
import { ROOT, startVbs } from './harness.js';
import { serve, stopChild } from './serve.js';

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
    const anyPort = (c: Record<string, unknown>): Record<string, unknown> => ({
      ...c,
      listen: { ...(c.listen as object), port: 0 },
      // Two VMM delegates from one file must not share its metrics port either.
      ...(c.metrics ? { metrics: { ...(c.metrics as object), port: 0 } } : {}),
    });
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


