#!/usr/bin/env bash
# guest-stale-key.sh - rtmem-rdmabench in the QEMU guest on SoftRoCE: the stale-key
# probe (serve, SIGHUP re-grant: the old key must fail, the new one work; then both on
# one connection, which needs the non-blocking reconnect). The ctest
# verbs.guest-stale-key. Throughput over verbs and TCP is bench/softroce-bench.sh.
# Usage: tests/verbs/guest-stale-key.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:?usage: guest-stale-key.sh BUILD_DIR}" && pwd)
gs=$(mktemp "${TMPDIR:-/tmp}/rtmem-verbs-stalekey.XXXXXX")
trap 'rm -f "$gs"' EXIT
cat >"$gs" <<'GUEST'
set -euo pipefail
/usr/bin/ip link add dummy0 type dummy
/usr/bin/ip addr add 198.51.100.1/24 dev dummy0
/usr/bin/ip link set dummy0 up
rdma link add rxe0 type rxe netdev dummy0
B=/rtmem/bin/rtmem-rdmabench
echo "guest: stale-key probe over verbs"
timeout 60 $B serve 198.51.100.1:7300 -t verbs >/tmp/serve.out 2>/tmp/serve.err &
sp=$!
for _ in $(seq 50); do grep -q grant /tmp/serve.out && break; sleep 0.1; done
old=$(awk '/^grant/{print $2}' /tmp/serve.out | tail -1)
$B probe 198.51.100.1:7300 -t verbs -g "$old"
kill -HUP $sp
for _ in $(seq 50); do [ "$(grep -c ^grant /tmp/serve.out)" -ge 2 ] && break; sleep 0.1; done
new=$(awk '/^grant/{print $2}' /tmp/serve.out | tail -1)
rc=0
$B probe 198.51.100.1:7300 -t verbs -g "$old" && { echo "guest: stale key still works"; rc=1; } || [ $? -eq 3 ]
$B probe 198.51.100.1:7300 -t verbs -g "$new" || { echo "guest: new key fails"; rc=1; }
# both on one connection: the stale key kills the QP, the reconnect runs without
# blocking (reads see -ENOTCONN until it is up), then the new key works
$B probe 198.51.100.1:7300 -t verbs -g "$old" -g "$new" >/tmp/probe2.out || true
cat /tmp/probe2.out
grep -q "key ${old##*:}: Permission denied" /tmp/probe2.out &&
	grep -q "key ${new##*:}: ok" /tmp/probe2.out ||
	{ echo "guest: stale then new key on one connection: wrong"; rc=1; }
kill $sp; wait $sp || true
cat /tmp/serve.err
[ $rc -eq 0 ] && echo "guest: stale key refused, new key works"
exit $rc
GUEST
exec "$src/tests/guest/run-guest.sh" --bin "$build/bin" --script "$gs" --mem 1G \
	--timeout 900
