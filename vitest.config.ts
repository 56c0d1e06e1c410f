import { defineConfig } from 'vitest/config';
import LongestFirst from './test/setup/sequencer.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Once per run: the seed of the sampled cases (printed; VBS_TEST_SEED repeats it); and the
    // Ceph test cluster, stopped at the end if a file of this run started it (test/ceph); and a
    // PostgreSQL cluster for the files that run on both metadata engines (test/setup/engines.ts).
    globalSetup: ['test/setup/global.ts', 'test/ceph/global-setup.ts', 'test/setup/postgres.ts'],
    // End-to-end files start real processes; two cores run two files at once.
    fileParallelism: true,
    maxWorkers: 2,
    // Longest files first (test/durations.json), so both workers end together.
    sequence: { sequencer: LongestFirst },
    reporters: ['default', 'json'],
    outputFile: { json: '.test-tmp/vitest-results.json' },
  },
});
