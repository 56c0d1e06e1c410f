#!/usr/bin/env bash
# The test command (`npm test`): installs what the tests need, builds, runs
# every test with vitest, and ends with one line `N passed, N failed`.
# Fails when any test failed or was skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --with-test-tools || exit 1
npm run --silent build || exit 1
rm -f .test-tmp/vitest-results.json .test-tmp/test-seed
npx vitest run "$@"
status=$?
node scripts/summary.mjs .test-tmp/vitest-results.json
summary=$?
[ $status -eq 0 ] && [ $summary -eq 0 ]
