#!/usr/bin/env bash
# npm run bench: the benchmarks in bench/, each against its baseline in the
# same run. As root it installs xfsprogs to measure on an XFS reflink mount.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && ! command -v mkfs.xfs >/dev/null && command -v apt-get >/dev/null; then
  echo "bench: installing xfsprogs" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends xfsprogs >/dev/null
fi
scripts/install-deps.sh
exec npx vitest bench --run --config vitest.bench.config.ts "$@"
