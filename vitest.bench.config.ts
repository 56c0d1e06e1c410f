import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: [],
    benchmark: { include: ['bench/**/*.bench.ts'] },
    // Benchmarks share the disk: one file at a time keeps the numbers honest.
    fileParallelism: false,
    maxWorkers: 1,
  },
});
