import { execFile, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { VBS_SERVICE } from '../../../src/services/vbs.js';
import { SoapClient } from '../../../src/soap/client.js';
import { startVbs, VBS_BIN } from '../harness.js';
import { serve as serveWith, stopChild } from '../serve.js';
import type { Site } from './site.js';

/** `vbs serve ROLE` with the folder's ROLE.json. */
const serve = (role: string, dir: string, children: ChildProcess[]) => serveWith(role, join(dir, `${role}.json`), dir, children, `${role}-served`);

const run = promisify(execFile);

/** A service this test started, which it may kill and start again on the same port. */
export interface ServedService {
  readonly pid: number;
  kill(): Promise<void>;
  restart(): Promise<void>;
}

export interface ServedSite extends Site {
  readonly vmm: ServedService;
  stop(): Promise<void>;
}

/**
 * The lvm-iscsi deployment with each service run by `vbs serve`, as `vbs up`
 * runs them, for what `vbs up` cannot do: a front with its own settings
 * (delegateTimeoutMs; the volume delegate's too, when given) and a VMM delegate that stays down until the test
 * brings it back (`vbs up` reacts to a service that dies on its own).
 * `vbs up` lays the folder out first (CA, certificates, configurations, VG,
 * VMs); its targets are on the simulated IET, so no tgtd outlives it.
 */
export async function startServedLvmIscsi(front: Record<string, unknown>, volumeDelegate: Record<string, unknown> = {}): Promise<ServedSite> {
  const base = await startVbs(['--backend', 'lvm-iscsi', '--target', 'iet']);
  await base.stop(true);
  const dir = base.dir;
  const children: ChildProcess[] = [];
  let api: SoapClient | undefined;
  const stop = async () => {
    api?.close();
    for (const c of [...children].reverse()) await stopChild(c);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const readJson = (f: string) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as Record<string, unknown>;
    const writeJson = (f: string, v: object) => writeFileSync(join(dir, f), JSON.stringify(v, null, 2), { mode: 0o600 });
    // vbs up wrote the ports its services had, which may be taken since: start on fresh ones.
    for (const f of ['volume-delegate.json', 'vmm-delegate.json', 'front.json']) {
      const c = readJson(f);
      // Fresh ports, metrics' too: vbs up's may have been taken since it stopped.
      const metrics = c.metrics ? { metrics: { ...(c.metrics as object), port: 0 } } : {};
      writeJson(f, { ...c, listen: { ...(c.listen as object), port: 0 }, ...metrics, ...(f === 'volume-delegate.json' ? volumeDelegate : {}) });
    }
    const volumeUrl = await serve('volume-delegate', dir, children);
    let vmmChild = children.length;
    const vmmUrl = await serve('vmm-delegate', dir, children);
    // Restarts bind the same port, so the front finds the delegate again.
    writeJson('vmm-delegate.json', { ...readJson('vmm-delegate.json'), listen: { host: '127.0.0.1', port: Number(new URL(vmmUrl).port) } });
    writeJson('front.json', {
      ...readJson('front.json'),
      volumeDelegates: [{ name: 'local', url: volumeUrl }],
      vmmHosts: [{ name: 'localhost', url: vmmUrl }],
      pollIntervalMs: 100,
      healthIntervalMs: 500,
      retryFirstDelayMs: 500,
      ...front,
    });
    const url = await serve('front', dir, children);
    // A request here may wait out two of the front's delegate timeouts (a step and its undo) on a loaded machine.
    writeJson('client.json', { ...readJson('client.json'), url, timeoutMs: 90_000 });
    const pki = (f: string) => readFileSync(join(dir, 'pki', f));
    api = new SoapClient({ def: VBS_SERVICE, url, tls: { key: pki('admin.key'), cert: pki('admin.crt'), ca: pki('ca.crt') }, timeoutMs: 60_000 });
    const vmm: ServedService = {
      get pid() {
        return children[vmmChild]!.pid!;
      },
      kill: () => stopChild(children[vmmChild]!, 'SIGKILL'),
      async restart() {
        vmmChild = children.length;
        const again = await serve('vmm-delegate', dir, children);
        if (again !== vmmUrl) throw new Error(`the VMM delegate came back at ${again}, not ${vmmUrl}`);
      },
    };
    return {
      dir,
      api,
      vmm,
      async cli(...args: string[]) {
        try {
          const r = await run(process.execPath, [VBS_BIN, '--config', join(dir, 'client.json'), ...args], { timeout: 120_000 });
          return { code: 0, stdout: r.stdout, stderr: r.stderr };
        } catch (err) {
          const e = err as { code?: number; stdout?: string; stderr?: string };
          return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
        }
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}



/**
 * The processes under `pid` (its children and theirs: a delegate's host
 * commands are children of its command helper) whose command line contains
 * `text` (from /proc).
 */
export function childProcesses(pid: number, text: string): number[] {
  const parentOf = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      parentOf.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const under = (p: number): boolean => {
    for (let at = parentOf.get(p), hops = 0; at !== undefined && hops < 64; at = parentOf.get(at), hops++) if (at === pid) return true;
    return false;
  };
  const out: number[] = [];
  for (const p of parentOf.keys()) {
    if (!under(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ').includes(text)) out.push(p);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
