#!/usr/bin/env bash
# tmem-bench.sh - tmem put/get through libtmemshim over the TCP transport on
# loopback (batch 1 and 32) next to a raw TCP 4 KiB ping-pong, in one run.
#   bench/tmem-bench.sh [BUILD_DIR] [PAGES]   -> table on stdout, JSON in bench/results/
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
pages=${2:-32768}
dir=$(mktemp -d /tmp/rtmem-bench.XXXXXX)
mkdir -p "$src/bench/results"
trap '"$src/scripts/rtmem-cluster" stop "$dir" >/dev/null' EXIT
"$src/scripts/rtmem-cluster" start "$dir" --bin "$build/bin" --donor-size 512M >/dev/null
"$build/bin/tmem_bench" -s "$dir/borrower.sock" -n "$pages" -j "$src/bench/results/tmem.json"
