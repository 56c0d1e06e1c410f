#!/usr/bin/env bash
# Test fixture, run under `flock DIR.lock`: makes sure the one test cluster of
# this host is up at DIR, starting it when it is not. The vitest run whose main
# process is RUN_PID owns it (test/ceph/global-setup.ts stops it when that run
# ends); a cluster left by a run that died is adopted by this one.
#   ensure-cluster.sh DIR MON_PORT RUN_PID
set -euo pipefail
D=$1; PORT=$2; RUN=$3
HERE=$(cd "$(dirname "$0")" && pwd); SCRIPTS="$HERE/../../scripts"
# Running: its mon answers. (Not "HEALTH_OK": a warning of a moment, such as a pool
# another file just made, must never make us tear down a cluster other files use.)
running() {
  [ -f "$D/mon-port" ] || return 1
  timeout 60 ceph --conf "$D/ceph.conf" --connect-timeout 20 health >/dev/null 2>&1
}
if ! running; then
  "$SCRIPTS/ceph-down.sh" "$D"
  if ! "$SCRIPTS/ceph-up.sh" "$D" --mon-port "$PORT" >"$D.up.log" 2>&1; then
    echo "ensure-cluster: ceph-up.sh failed:" >&2
    cat "$D.up.log" >&2
    exit 1
  fi
  echo "$RUN" > "$D/started-by-run"
fi
owner=$(cat "$D/started-by-run" 2>/dev/null || true)
if [ "$owner" != "$RUN" ] && ! kill -0 "$owner" 2>/dev/null; then echo "$RUN" > "$D/started-by-run"; fi
