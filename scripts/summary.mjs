// Reads vitest's JSON report and prints, before the closing line CI reads
// (`N passed, N failed`), the suite's wall time and its ten slowest files, so
// that growth of the suite is seen at every stop. Exits 1 when a test failed,
// was skipped or is a todo, or when no test ran at all.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

const file = process.argv[2];
if (!existsSync(file)) {
  console.log('0 passed, 1 failed');
  console.error('summary: vitest wrote no report (did it start?)');
  process.exit(1);
}
const r = JSON.parse(readFileSync(file, 'utf8'));
const suites = r.testResults ?? [];

const minutes = (ms) => `${(ms / 60_000).toFixed(1)} min`;
const ends = suites.map((s) => s.endTime ?? 0).filter((t) => t > 0);
if (r.startTime && ends.length) console.log(`suite time: ${minutes(Math.max(...ends) - r.startTime)} (${suites.length} files)`);
const slowest = suites
  .filter((s) => s.startTime && s.endTime)
  .map((s) => ({ name: relative(process.cwd(), s.name), ms: s.endTime - s.startTime }))
  .sort((a, b) => b.ms - a.ms)
  .slice(0, 10);
if (slowest.length) {
  console.log('slowest files:');
  for (const s of slowest) console.log(`  ${minutes(s.ms).padStart(9)}  ${s.name}`);
}

// The seed of the run's sampled cases (test/setup/global.ts), to reproduce a failure.
const seedFile = join(dirname(file), 'test-seed');
if (existsSync(seedFile)) {
  const seed = readFileSync(seedFile, 'utf8').trim();
  console.log(`test seed: ${seed} (VBS_TEST_SEED=${seed} npm test repeats this run's sampled cases)`);
}

const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
const failedSuites = suites.filter((s) => s.status === 'failed' && (s.assertionResults ?? []).length === 0).length;
const failed = (r.numFailedTests ?? 0) + failedSuites;
if (skipped) console.error(`summary: ${skipped} test(s) were skipped or todo; CI runs every test`);
console.log(`${r.numPassedTests ?? 0} passed, ${failed} failed`);
process.exit(failed || skipped || !r.numPassedTests ? 1 : 0);
