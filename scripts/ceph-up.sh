#!/usr/bin/env bash
# A throw-away single-node Ceph cluster for trying VBS's rbd back end and for
# its tests: one mon, one mgr, one OSD (BlueStore on a sparse file), loopback
# only, cephx on, no systemd. Every daemon keeps its data, logs, sockets and pid
# file under DIR; ceph-down.sh DIR stops exactly those daemons and removes DIR.
#
# Usage: ceph-up.sh DIR [--mon-port N] [--pool NAME] [--osd-size-gib N]
#   --mon-port N   the mon's msgr2 port; its msgr1 port is N+1 (default 3300 and
#                  6789, Ceph's own). Only one cluster per mon port per host.
#   --pool NAME    an rbd pool created and initialised (default vbs).
# Afterwards:
#   DIR/ceph.conf                       the cluster's configuration (monitors, timeouts)
#   DIR/ceph.client.admin.keyring       the admin key
#   DIR/ceph.client.vbs.keyring         client.vbs, with `profile rbd` caps: what VBS uses
# Exit codes: 0 up and HEALTH_OK; 1 a step failed or a wait ran out (the
# daemons started so far are stopped again); 2 bad usage or DIR exists.
set -euo pipefail

usage() { echo "usage: $0 DIR [--mon-port N] [--pool NAME] [--osd-size-gib N]" >&2; exit 2; }
[ $# -ge 1 ] || usage
D=$1; shift
MON_PORT=3300; MON_V1_PORT=6789; POOL=vbs; OSD_GIB=10
while [ $# -gt 0 ]; do
  case "$1" in
    --mon-port) [[ "${2:-}" =~ ^[0-9]{2,5}$ ]] || usage; MON_PORT=$2; MON_V1_PORT=$(( $2 + 1 )); shift 2 ;;
    --pool) [[ "${2:-}" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$ ]] || usage; POOL=$2; shift 2 ;;
    --osd-size-gib) [[ "${2:-}" =~ ^[1-9][0-9]{0,4}$ ]] || usage; OSD_GIB=$2; shift 2 ;;
    *) usage ;;
  esac
done
case "$D" in /*) ;; *) D="$PWD/$D" ;; esac
[ -e "$D" ] && { echo "ceph-up: $D exists; run ceph-down.sh $D first" >&2; exit 2; }
for tool in ceph ceph-mon ceph-mgr ceph-osd ceph-authtool monmaptool rbd uuidgen; do
  command -v "$tool" >/dev/null || { echo "ceph-up: $tool is not installed (Debian: ceph-mon ceph-mgr ceph-osd ceph-common)" >&2; exit 1; }
done

HERE=$(cd "$(dirname "$0")" && pwd)
# Whatever fails from here, nothing of ours is left running.
trap 'rc=$?; if [ $rc -ne 0 ]; then echo "ceph-up: failed (rc=$rc); see $D/log; stopping what was started" >&2; "$HERE/ceph-down.sh" "$D" --keep >&2 || true; fi' EXIT

T0=$(date +%s%N)
say() { local ms=$(( ($(date +%s%N) - T0) / 1000000 )); printf '[%4d.%01ds] %s\n' $(( ms / 1000 )) $(( ms % 1000 / 100 )) "$*"; }
# wait_for SECONDS WHAT CMD...: poll CMD until it succeeds, or fail when the deadline passes.
wait_for() {
  local end=$(( $(date +%s) + $1 )) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -ge "$end" ] && { echo "ceph-up: timed out after $1 s waiting for $what" >&2; return 1; }
    sleep 0.5
  done
}

mkdir -p "$D"/{mon,mgr,osd,run,log,crash}
chmod 755 "$D"
FSID=$(uuidgen)
MON_ADDR="[v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_V1_PORT]"
# Why each unusual line is here: ../shared/CEPH.md (docs/rbd.md has the short form).
cat > "$D/ceph.conf" <<CONF
[global]
fsid = $FSID
mon initial members = a
mon host = $MON_ADDR
public network = 127.0.0.1/32
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 2
osd crush chooseleaf type = 0
keyring = $D/\$cluster.\$name.keyring
run dir = $D/run
pid file = $D/run/\$cluster-\$name.pid
log file = $D/log/\$cluster-\$name.log
mon cluster log file = default=$D/log/\$cluster.\$channel.log cluster=$D/log/\$cluster.log
crash dir = $D/crash
mon data = $D/mon/\$cluster-\$id
mgr data = $D/mgr/\$cluster-\$id
osd data = $D/osd/\$cluster-\$id
# A client that cannot reach the mon gives up in seconds, not after 300 s.
client mount timeout = 10
rados mon op timeout = 15
rados osd op timeout = 30
# Daemons' admin sockets; clients (every rbd call) have none, or they would race for one name.
admin socket = $D/run/\$cluster-\$name.asok
[client]
admin socket =
[mon]
keyring = \$mon_data/keyring
[mgr]
keyring = \$mgr_data/keyring
[osd]
keyring = \$osd_data/keyring
osd objectstore = bluestore
bluestore block create = true
bluestore block size = $(( OSD_GIB * 1024 * 1024 * 1024 ))
bluestore fsck on mkfs = false
osd memory target = 1073741824
CONF
export CEPH_CONF="$D/ceph.conf"
say "conf written: fsid $FSID, mon $MON_ADDR"

ceph-authtool --create-keyring "$D/ceph.mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool --create-keyring "$D/ceph.client.admin.keyring" --gen-key -n client.admin \
  --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
ceph-authtool "$D/ceph.mon.keyring" --import-keyring "$D/ceph.client.admin.keyring" >/dev/null
monmaptool --create --fsid "$FSID" --addv a "$MON_ADDR" "$D/monmap" >/dev/null
ceph-mon --mkfs -i a --monmap "$D/monmap" --keyring "$D/ceph.mon.keyring" 2>>"$D/log/daemon-stderr.log"
ceph-mon -i a 2>>"$D/log/daemon-stderr.log"   # daemonizes; pid in run/ceph-mon.a.pid
# Every ceph call below carries its own connect timeout: a dead mon fails it, never hangs it.
C() { timeout 60 ceph --connect-timeout 15 "$@"; }
wait_for 60 "the mon" C -s
say "mon up"

mkdir -p "$D/mgr/ceph-x"
C auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' mds 'allow *' -o "$D/mgr/ceph-x/keyring"
ceph-mgr -i x 2>>"$D/log/daemon-stderr.log"
say "mgr started"

OSD_UUID=$(uuidgen)
OSD_ID=$(C osd new "$OSD_UUID")
mkdir -p "$D/osd/ceph-$OSD_ID"
C auth get-or-create "osd.$OSD_ID" mon 'allow profile osd' mgr 'allow profile osd' osd 'allow *' -o "$D/osd/ceph-$OSD_ID/keyring"
timeout 120 ceph-osd -i "$OSD_ID" --mkfs --osd-uuid "$OSD_UUID" >"$D/log/osd-mkfs.out" 2>&1
ceph-osd -i "$OSD_ID" 2>>"$D/log/daemon-stderr.log"
osd_up() { C osd stat -f json | grep -q '"num_up_osds":1'; }
wait_for 90 "osd.$OSD_ID to come up" osd_up
say "osd.$OSD_ID up"

C osd pool create "$POOL" 8 8 >/dev/null 2>&1
timeout 60 rbd --client_mount_timeout 15 pool init "$POOL"
# VBS's own identity: rbd on every pool (tests make a pool per file). Restrict
# it to one pool in production: osd 'profile rbd pool=NAME'. The mon caps past
# `profile rbd` let it make and remove the cephx clients of attachments
# (client.vbs.<volume>.<host>, each admitted to one image: docs/rbd.md, Attach).
VBS_MON_CAPS='profile rbd, allow command "auth get-or-create-key" with entity prefix client.vbs., allow command "auth caps" with entity prefix client.vbs., allow command "auth rm" with entity prefix client.vbs.'
C auth get-or-create client.vbs mon "$VBS_MON_CAPS" osd 'profile rbd' mgr 'profile rbd' -o "$D/ceph.client.vbs.keyring"
chmod 600 "$D/ceph.client.vbs.keyring" "$D/ceph.client.admin.keyring"
say "pool $POOL ready, client.vbs made"

health_ok() { [ "$(C health)" = HEALTH_OK ]; }
wait_for 120 HEALTH_OK health_ok
echo "$MON_PORT" > "$D/mon-port"
say "HEALTH_OK: CEPH_CONF=$D/ceph.conf"
trap - EXIT
