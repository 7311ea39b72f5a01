#!/usr/bin/env bash
# abi.sh - libtmemshim exports its API and nothing else.
set -euo pipefail
lib=$(find "$1" -name 'libtmemshim.so.1' | head -1)
syms=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^TMEMSHIM_1$' | sort)
echo "$syms"
bad=$(grep -v '^tmem_' <<<"$syms" || true)
[ -z "$bad" ] || { echo "FAIL: libtmemshim exports non-API symbols: $bad"; exit 1; }
[ "$(wc -l <<<"$syms")" -ge 9 ] || { echo "FAIL: API symbols missing"; exit 1; }
echo "PASS abi"
