// Writes test/durations.json, the expected time of each test file that the
// test sequencer (test/setup/sequencer.ts) starts longest first, from the
// JSON report of a full run (default .test-tmp/vitest-results.json). Run it
// after a full `npm test` on a quiet machine when files were added or grew:
//   node scripts/test-durations.mjs [.test-tmp/vitest-results.json]
// Files under 5 s are left out (they are ordered by size, after the rest).
import { readFileSync, writeFileSync } from 'node:fs';
import { relative } from 'node:path';

const report = process.argv[2] ?? '.test-tmp/vitest-results.json';
const r = JSON.parse(readFileSync(report, 'utf8'));
const seconds = {};
for (const s of (r.testResults ?? []).filter((x) => x.startTime && x.endTime).sort((a, b) => b.endTime - b.startTime - (a.endTime - a.startTime))) {
  const secs = Math.round((s.endTime - s.startTime) / 1000);
  if (secs >= 5) seconds[relative(process.cwd(), s.name)] = secs;
}
const out = {
  about: 'Seconds each slow test file took in a full run; test/setup/sequencer.ts starts the longest first. Refresh: node scripts/test-durations.mjs',
  seconds,
};
writeFileSync('test/durations.json', `${JSON.stringify(out, null, 2)}\n`);
console.log(`test/durations.json: ${Object.keys(seconds).length} files`);
