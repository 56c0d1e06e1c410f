#!/usr/bin/env bash
# Stops the cluster ceph-up.sh DIR started, and removes DIR (--keep: leave it).
# It stops only daemons whose pid files are in DIR/run and whose process is a
# Ceph daemon started with DIR's ceph.conf or pid files (a stale pid file may
# name a process that has since been reused). OSDs go first, while the mon can
# still acknowledge their shutdown; each group gets TERM, then KILL after 15 s.
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: $0 DIR [--keep]" >&2; exit 2; }
D=$1; KEEP=${2:-}
[ -d "$D" ] || exit 0

# ours PID: the process is alive and is a ceph daemon (its comm starts with ceph-).
ours() {
  local p=$1
  [[ "$p" =~ ^[0-9]+$ ]] && kill -0 "$p" 2>/dev/null || return 1
  case "$(cat "/proc/$p/comm" 2>/dev/null)" in ceph-mon|ceph-mgr|ceph-osd) return 0 ;; esac
  return 1
}
stop() { # stop PID...: TERM all, wait up to 15 s, KILL what is left
  [ $# -eq 0 ] && return 0
  kill -TERM "$@" 2>/dev/null
  local end=$(( $(date +%s) + 15 ))
  while [ "$(date +%s)" -lt "$end" ]; do
    local left=0
    for p; do kill -0 "$p" 2>/dev/null && left=1; done
    [ $left = 0 ] && return 0
    sleep 0.2
  done
  echo "ceph-down: still alive after 15 s, KILL: $*" >&2
  kill -KILL "$@" 2>/dev/null || true
}
pids_of() { # pids_of GLOB: pids from matching pid files that are ours
  local f p out=()
  for f in "$D"/run/$1; do
    [ -f "$f" ] || continue
    p=$(cat "$f" 2>/dev/null)
    ours "$p" && out+=("$p")
  done
  echo "${out[@]:-}"
}
# shellcheck disable=SC2046
stop $(pids_of 'ceph-osd.*.pid')
# shellcheck disable=SC2046
stop $(pids_of 'ceph-mgr.*.pid') $(pids_of 'ceph-mon.*.pid')
[ "$KEEP" = --keep ] || rm -rf "$D"
exit 0
