#!/usr/bin/env bash
# npm run bench: the data-path benchmarks in bench/ (vitest), each against its
# baseline in the same run, then the control-plane bench on a real `vbs up`
# (src/bench/control-plane.ts), which prints one table and writes
# bench/results/latest.json. VBS_BENCH_ONLY=control-plane skips the data-path
# benches; VBS_BENCH_ONLY=databases runs only the metadata engines side by
# side (SQLite and PostgreSQL; bench/results/databases.json). Then the images
# bench (src/bench/images.ts: import and fan-out beside cp; `--full` adds a
# 10 GiB import) writes bench/results/images.json. As root it installs
# xfsprogs to measure on an XFS reflink mount. The databases' table is printed
# side by side (metric | SQLite | PostgreSQL); `--db postgres://…` (or
# VBS_BENCH_DB) measures a given PostgreSQL, in a schema of its own dropped after.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && ! command -v mkfs.xfs >/dev/null && command -v apt-get >/dev/null; then
  echo "bench: installing xfsprogs" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends xfsprogs >/dev/null
fi
scripts/install-deps.sh
npx tsc -p tsconfig.build.json
# --profile DIR [--strace]: where the CPU goes under load, not the table (docs/operators/bench.md).
# --qemu, --libvirt: attach and detach on a real QEMU VM / libvirt domain (TCG).
if [ "${1:-}" = --profile ] || [ "${1:-}" = --qemu ] || [ "${1:-}" = --libvirt ]; then
  exec node dist/bench/control-plane.js "$@"
fi
# --full is the images bench's; --db URL is the PostgreSQL the metadata engines
# are compared on (VBS_BENCH_DB; else the bench starts a throw-away one on
# loopback); everything else goes to vitest.
full=()
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --full) full=(--full) ;;
    --db) export VBS_BENCH_DB="${2:?--db needs a postgres:// URL}"; shift ;;
    --db=*) export VBS_BENCH_DB="${1#--db=}" ;;
    *) args+=("$1") ;;
  esac
  shift
done
if [ "${VBS_BENCH_ONLY:-}" != control-plane ] && [ "${VBS_BENCH_ONLY:-}" != databases ]; then
  npx vitest bench --run --config vitest.bench.config.ts "${args[@]}"
fi
case "${VBS_BENCH_ONLY:-}" in
  control-plane | databases) exec node dist/bench/control-plane.js ;;
  images) ;;
  *) node dist/bench/control-plane.js ;;
esac
exec node dist/bench/images.js "${full[@]}"
