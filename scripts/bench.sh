#!/usr/bin/env bash
# npm run bench: the data-path benchmarks in bench/ (vitest), each against its
# baseline in the same run, then the control-plane bench on a real `vbs up`
# (src/bench/control-plane.ts), which prints one table and writes
# bench/results/latest.json, then the images bench (src/bench/images.ts:
# import and fan-out beside cp; `--full` adds a 10 GiB import), which writes
# bench/results/images.json. As root it installs xfsprogs to measure on an XFS
# reflink mount.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && ! command -v mkfs.xfs >/dev/null && command -v apt-get >/dev/null; then
  echo "bench: installing xfsprogs" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends xfsprogs >/dev/null
fi
scripts/install-deps.sh
npx tsc -p tsconfig.build.json
# --full is the images bench's; everything else goes to vitest.
full=()
args=()
for a in "$@"; do
  if [ "$a" = --full ]; then full=(--full); else args+=("$a"); fi
done
if [ -z "${VBS_BENCH_ONLY:-}" ]; then
  npx vitest bench --run --config vitest.bench.config.ts "${args[@]}"
fi
case "${VBS_BENCH_ONLY:-}" in
  control-plane) exec node dist/bench/control-plane.js ;;
  images) ;;
  *) node dist/bench/control-plane.js ;;
esac
exec node dist/bench/images.js "${full[@]}"
