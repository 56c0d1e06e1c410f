import type { TestProject } from 'vitest/node';
import { removeCluster, startCluster } from './postgres-cluster.js';

/**
 * Once per run: one PostgreSQL cluster for every test file that runs on both
 * engines (test/setup/engines.ts). Each file, and each deployment in it, gets
 * a schema of its own in it, so files do not see each other's rows. Stopped
 * and removed when the run ends.
 */
export default async function setup(project: TestProject): Promise<() => void> {
  const cluster = await startCluster();
  project.provide('pgUrl', cluster.url);
  return () => removeCluster(cluster);
}

declare module 'vitest' {
  export interface ProvidedContext {
    pgUrl: string;
  }
}
