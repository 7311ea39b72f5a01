#!/usr/bin/env bash
# capped.sh - a client with a fixed target (config [client.capped] target = 5000) has
# its puts refused beyond it while another client's data stays intact.
. "$(dirname "$0")/lib.sh" "$1"
cluster_start --client capped=5000
out=$("$CHECK" capped capped 5000) || { echo "$out"; fail "capped scenario"; }
echo "$out"
grep -qx "TARGET 5000" <<<"$out" || fail "capped client should get exactly 5000 pages"
echo "PASS capped"
