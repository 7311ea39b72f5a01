#!/usr/bin/env bash
# demo.sh - install dependencies, build, start a one-machine cluster (master, two
# donors of 256 MiB, one borrower), push 100,000 stamped pages (390 MiB, more than
# one donor holds) through the tmem API, verify them, show the cluster's status
# while the pages live on the donors, and tear everything down.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$src/build}
bash "$src/scripts/install-deps.sh"
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
dir=$(mktemp -d /tmp/rtmem-demo.XXXXXX)
trap '"$src/scripts/rtmem-cluster" stop "$dir"' EXIT
"$src/scripts/rtmem-cluster" start "$dir" --bin "$build/bin" --donor-size 256M
export RTMEM_SOCKET=$dir/borrower.sock
echo
echo "== a client stores 100000 pages in a persistent pool and reads them back"
coproc HOLD { "$build/bin/tmem_check" hold 100000; }
hold_pid=$HOLD_PID
read -r line <&"${HOLD[0]}"
echo "client: 100000 pages stored ($line)"
echo
echo "== cluster status while the pages live on the donors"
sleep 1.5 # nodes report statistics to the master once a second
"$build/bin/rtmemctl" -c "$dir/rtmem.conf" status
echo go >&"${HOLD[1]}"
read -r line <&"${HOLD[0]}"
echo
echo "client: $line"
wait "$hold_pid"
echo
