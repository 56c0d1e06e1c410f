import { join } from 'node:path';
import { freePort } from '../core/free-port.js';
import { writeAtomic } from '../pki/store.js';

/** Where each service of a deployment serves its metrics, and the file Prometheus can read them from. */
export interface MetricsEndpoints {
  /** role → http://127.0.0.1:PORT/metrics */
  readonly urls: Readonly<Record<string, string>>;
  /** DIR/prometheus-targets.json: a file_sd_configs file (docs/metrics.md). */
  readonly targetsFile: string;
}

export const TARGETS_FILE = 'prometheus-targets.json';

/** A free loopback port for each role's metrics listener. */
export async function metricsPorts<R extends string>(roles: readonly R[]): Promise<Record<R, number>> {
  const ports = {} as Record<R, number>;
  const taken = new Set<number>();
  for (const role of roles) {
    // freePort looks, it does not hold: two looks in a row may see the same port.
    let port = await freePort();
    for (let i = 0; taken.has(port) && i < 20; i++) port = await freePort();
    taken.add(port);
    ports[role] = port;
  }
  return ports;
}

/**
 * Writes DIR/prometheus-targets.json, in Prometheus's file_sd format: one
 * target per service, labelled with its role (Prometheus rereads the file
 * when it changes, so a `vbs up` restarted on new ports is followed).
 */
export function writeScrapeTargets(dir: string, ports: Readonly<Record<string, number>>): MetricsEndpoints {
  const targetsFile = join(dir, TARGETS_FILE);
  const groups = Object.entries(ports).map(([role, port]) => ({ targets: [`127.0.0.1:${port}`], labels: { role } }));
  writeAtomic(targetsFile, `${JSON.stringify(groups, null, 2)}\n`, 0o644);
  return { urls: Object.fromEntries(Object.entries(ports).map(([role, port]) => [role, `http://127.0.0.1:${port}/metrics`])), targetsFile };
}
