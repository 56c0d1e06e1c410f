import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Starts nothing: stops the Ceph test cluster at the end if a file of this run started it (test/ceph).
    globalSetup: ['test/ceph/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // End-to-end files start real processes; two cores run two files at once.
    fileParallelism: true,
    maxWorkers: 2,
    reporters: ['default', 'json'],
    outputFile: { json: '.test-tmp/vitest-results.json' },
  },
});
