#!/usr/bin/env bash
# guest-spine.sh - the verbs back end on SoftRoCE: boots the QEMU guest
# (tests/guest/run-guest.sh), puts an rxe device on a dummy netdev, starts master +
# 2 donors + borrower in one namespace with [cluster] transport = verbs and runs
# tmem_check persistent N (stamped pages written, read back, every byte verified)
# plus an ephemeral pass; then checks the logs say verbs was used end to end.
# Usage: tests/verbs/guest-spine.sh BUILD_DIR [PAGES]   (default 100000 pages)
# Environment: TRANSPORT=tcp runs the same over TCP (for comparison), CHECK_TIMEOUT=S
# bounds tmem_check (default 1200 s: single-page gets take ms each under TCG).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:?usage: guest-spine.sh BUILD_DIR [PAGES]}" && pwd)
pages=${2:-100000}
gs=$(mktemp "${TMPDIR:-/tmp}/rtmem-verbs-spine.XXXXXX")
trap 'rm -f "$gs"' EXIT
cat >"$gs" <<'GUEST'
set -euo pipefail
pages=$1 check_timeout=${2:-1200} transport=${3:-verbs}
/usr/bin/ip link add dummy0 type dummy
/usr/bin/ip addr add 198.51.100.1/24 dev dummy0
/usr/bin/ip link set dummy0 up
rdma link add rxe0 type rxe netdev dummy0
dir=/tmp/vc
mkdir -p $dir
cat >$dir/in.conf <<CONF
[cluster]
master = 198.51.100.1:7000
slab_size = 16M
stats_interval_ms = 1000
run_dir = $dir
transport = verbs

[node.1]
role = donor
address = 198.51.100.1:7101
rack = r1
pool_size = 256M

[node.2]
role = donor
address = 198.51.100.1:7102
rack = r1
pool_size = 256M

[node.10]
role = borrower
rack = r1
socket = $dir/borrower.sock
CONF
rc=0
/rtmem/scripts/rtmem-cluster start $dir --bin /rtmem/bin --config $dir/in.conf || rc=$?
if [ $rc -eq 0 ]; then
	export RTMEM_SOCKET=$dir/borrower.sock
	start=$(date +%s)
	# progress every 30 s (client counters), so a slow emulated run shows it moves
	( while sleep 30; do /rtmem/bin/rtmemctl -c $dir/rtmem.conf --json status |
		/usr/bin/python3 -c 'import json,sys; s=json.load(sys.stdin); print("guest: progress", [(c["puts"], c["gets"]) for c in s["clients"]])' || true; done ) &
	mon=$!
	timeout "$check_timeout" /rtmem/bin/tmem_check persistent "$pages" || rc=$?
	kill $mon 2>/dev/null || true
	echo "guest: persistent $pages pages: rc=$rc in $(( $(date +%s) - start )) s"
	[ $rc -ne 0 ] || /rtmem/bin/tmem_check ephemeral 5000 || rc=$?
	/rtmem/bin/rtmemctl -c $dir/rtmem.conf status || true
	if [ "$transport" = verbs ]; then
		grep -q "verbs+tcp" $dir/donor1.log || { echo "guest: donor 1 not on verbs"; rc=1; }
		grep -q "connected over verbs" $dir/borrower.log || { echo "guest: borrower not on verbs"; rc=1; }
	fi
	/rtmem/scripts/rtmem-cluster stop $dir || rc=1
fi
for f in $dir/*.log; do echo "===== $f"; tail -n ${LOGLINES:-25} "$f"; done
exit $rc
GUEST
exec "$src/tests/guest/run-guest.sh" --bin "$build/bin" --script "$gs" --mem 2G \
	--timeout $(( ${CHECK_TIMEOUT:-1200} + 300 )) -- "$pages" "${CHECK_TIMEOUT:-1200}" "${TRANSPORT:-verbs}"
