#!/usr/bin/env bash
# Installs what VBS and its tests need on a bare Debian machine: npm packages
# (compiling the TypeScript through the prepare script) and, when run as root,
# the Debian packages the tests drive for real. Safe to run again: it only
# installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# The system tests (test/system) drive real QEMU (TCG where there is no KVM),
# libvirt, XFS reflinks and network namespaces; the rbd back end's tests a
# throw-away Ceph cluster (scripts/ceph-up.sh); the EC2 tests the AWS CLI and
# boto3; the metrics tests promtool and Prometheus; the metadata tests on
# PostgreSQL a throw-away PostgreSQL 15 cluster (test/setup/postgres-cluster.ts).
want_debs=(awscli python3-boto3 prometheus python3-zeep python3-openssl util-linux coreutils tgt libiscsi-bin
  qemu-system-x86 qemu-block-extra qemu-utils libvirt-daemon-system libvirt-clients
  iproute2 xfsprogs e2fsprogs
  ceph-mon ceph-mgr ceph-osd ceph-common
  postgresql)
if [ "${1:-}" = "--with-test-tools" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${want_debs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing Debian packages: ${missing[*]}" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

if [ ! -d node_modules/better-sqlite3/build ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "install-deps: npm ci" >&2
  npm ci --no-fund --no-audit >&2
fi
if [ ! -f dist/cli/main.js ]; then npm run --silent build >&2; fi
