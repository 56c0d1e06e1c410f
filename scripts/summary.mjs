// Reads vitest's JSON report and prints the closing line CI reads:
// `N passed, N failed`. Exits 1 when a test failed, was skipped or is a todo,
// or when no test ran at all.
import { existsSync, readFileSync } from 'node:fs';

const file = process.argv[2];
if (!existsSync(file)) {
  console.log('0 passed, 1 failed');
  console.error('summary: vitest wrote no report (did it start?)');
  process.exit(1);
}
const r = JSON.parse(readFileSync(file, 'utf8'));
const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
const failedSuites = (r.testResults ?? []).filter((s) => s.status === 'failed' && (s.assertionResults ?? []).length === 0).length;
const failed = (r.numFailedTests ?? 0) + failedSuites;
if (skipped) console.error(`summary: ${skipped} test(s) were skipped or todo; CI runs every test`);
console.log(`${r.numPassedTests ?? 0} passed, ${failed} failed`);
process.exit(failed || skipped || !r.numPassedTests ? 1 : 0);
