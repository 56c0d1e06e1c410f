import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { TestProject } from 'vitest/node';
import { CEPH_SCRIPTS, testClusterDir } from './where.js';

/**
 * The Ceph test cluster is started lazily, by the first test file that needs
 * it (test/ceph/cluster.ts), and shared by every file of the run. This run's
 * id (its main process) marks the cluster it started; when the run ends the
 * cluster it owns is stopped. Runs that never touch Ceph pay nothing.
 */
export default function setup(project: TestProject): () => void {
  const run = String(process.pid);
  project.provide('cephRun', run);
  return () => {
    const dir = testClusterDir();
    let owner = '';
    try {
      owner = readFileSync(`${dir}/started-by-run`, 'utf8').trim();
    } catch {
      return; // no cluster
    }
    // Alone on the cluster first: a file of another vitest run may still be using it.
    if (owner === run) execFileSync('flock', ['-x', '-w', '900', `${dir}.use.lock`, `${CEPH_SCRIPTS}/ceph-down.sh`, dir], { stdio: 'inherit', timeout: 960_000 });
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    cephRun: string;
  }
}
