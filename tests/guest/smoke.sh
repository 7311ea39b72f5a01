#!/usr/bin/env bash
# smoke.sh - self-test of the QEMU guest harness (run-guest.sh): boots the guest, checks
# the kernel, the project binaries and python3 are there, loads rdma_rxe and creates a
# SoftRoCE device on a dummy netdev. Usage: tests/guest/smoke.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: smoke.sh BUILD_DIR}" && pwd)
gs=$(mktemp "${TMPDIR:-/tmp}/rtmem-smoke.XXXXXX")
trap 'rm -f "$gs"' EXIT
cat >"$gs" <<'GUEST'
set -euo pipefail
echo "guest: $(uname -srm), $(nproc) cpus, $(free -m | awk '/Mem:/{print $2}') MiB, args: $*"
[ "$#" = 2 ] && [ "$2" = "two words" ] || { echo "guest: arguments lost"; exit 1; }
test -x /rtmem/bin/rtmemctl || { echo "guest: no rtmemctl"; exit 1; }
/rtmem/bin/rtmemctl --help >/dev/null 2>&1 || [ $? -ne 127 ] || { echo "guest: rtmemctl does not load"; exit 1; }
echo '{"a": [1, 2]}' | /usr/bin/python3 -c 'import json, sys; print("python:", json.load(sys.stdin)["a"][1])'
grep -q '^rdma_rxe ' /proc/modules || { echo "guest: rdma_rxe not loaded"; exit 1; }
/usr/bin/ip link add dummy0 type dummy
/usr/bin/ip addr add 198.51.100.1/24 dev dummy0
/usr/bin/ip link set dummy0 up
rdma link add rxe0 type rxe netdev dummy0
rdma link show
ibv_devices | grep -q rxe0 || { echo "guest: ibv_devices does not list rxe0"; exit 1; }
ibv_devinfo -d rxe0 | grep -E 'transport|state'
test -b /dev/nbd0 || { echo "guest: no /dev/nbd0"; exit 1; }
echo "guest: smoke OK"
GUEST
"$here/run-guest.sh" --bin "$build/bin" --script "$gs" --mem 512M --timeout 300 -- one "two words"
