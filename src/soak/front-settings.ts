import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeAtomic } from '../pki/store.js';
import { ProxyThread } from './proxy-thread.js';

/**
 * The front's settings for a soak: a claim lease short enough to run out
 * while its holder still waits on a stalled call, and every delegate reached
 * through a faulty proxy (in a thread of its own) the chaos controls.
 */
export const SOAK_FRONT_SETTINGS = {
  /** The engine's claim lease (`claimLeaseMs`; 120 s by default). */
  claimLeaseMs: 4_000,
  /**
   * The longest back-off between two tries of unfinished work
   * (`retryMaxDelayMs`; 300 s by default). The soak judges whether work
   * settles once the chaos stops, within QUIET_TIMEOUT_MS (src/soak/settle.ts):
   * after a long chaos an undo's back-off had grown to the default's five
   * minutes, so work merely waiting its turn was judged stuck (a 10-minute
   * lvm-iscsi run: 85 undos due after the soak had looked). Several tries must
   * fit in the window.
   */
  retryMaxDelayMs: 15_000,
} as const;

/**
 * The front's call timeout is left as shipped (`delegateTimeoutMs`, 30 s):
 * a shorter one made every lvm-iscsi create time out on this loaded 2-core
 * machine (a simulated LVM command is a Node process of its own), which
 * tested nothing but the timeout. The stalls outlast whatever it is.
 */
const DEFAULT_CALL_TIMEOUT_MS = 30_000;

interface Endpoint {
  name: string;
  url: string;
}

/**
 * Rewrites the front's configuration in the deployment folder (as `vbs up`
 * wrote it): the soak's settings, and each delegate's URL replaced by a new
 * proxy's, which forwards to it. Returns the proxies by the delegates' roles,
 * and the front's call timeout (which stalls and hangs outlast).
 * The front reads it when it next starts (SoakDeployment.restartService).
 */
export async function proxyTheFront(dir: string): Promise<{ proxies: Map<'volume-delegate' | 'vmm-delegate', ProxyThread>; callTimeoutMs: number }> {
  const file = join(dir, 'front.json');
  const cfg = JSON.parse(readFileSync(file, 'utf8')) as { volumeDelegates: Endpoint[]; vmmHosts: Endpoint[]; delegateTimeoutMs?: number } & Record<string, unknown>;
  const proxies = new Map<'volume-delegate' | 'vmm-delegate', ProxyThread>();
  // `vbs up` runs one delegate of each kind.
  const proxied = async (role: 'volume-delegate' | 'vmm-delegate', list: Endpoint[]) => {
    if (list.length !== 1) throw new Error(`front.json names ${list.length} ${role}s; the soak proxies exactly one`);
    const url = new URL(list[0]!.url);
    const proxy = await ProxyThread.start(Number(url.port));
    proxies.set(role, proxy);
    url.port = String(proxy.port);
    return [{ ...list[0]!, url: url.toString() }];
  };
  const next = {
    ...cfg,
    ...SOAK_FRONT_SETTINGS,
    volumeDelegates: await proxied('volume-delegate', cfg.volumeDelegates),
    vmmHosts: await proxied('vmm-delegate', cfg.vmmHosts),
  };
  writeAtomic(file, `${JSON.stringify(next, null, 2)}\n`, 0o600);
  return { proxies, callTimeoutMs: cfg.delegateTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS };
}
