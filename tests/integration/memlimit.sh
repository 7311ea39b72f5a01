#!/usr/bin/env bash
# memlimit.sh - a borrower with mem_limit = 128M never owns more than that: puts beyond
# the capacity are refused (the client keeps its data), every accepted page verifies.
. "$(dirname "$0")/lib.sh" "$1"
cluster_start --mem-limit 128M --donor-size 256M
out=$("$CHECK" ephemeral 50000) || { echo "$out"; fail "ephemeral run under the limit"; }
echo "$out"
owned=$(json_get "[n for n in s['nodes'] if n['id']==10][0]['total_pages']")
echo "borrower owns $owned pages (limit 32768)"
[ "$owned" -gt 0 ] && [ "$owned" -le 32768 ] || fail "owned $owned pages, limit 32768"
echo "PASS memlimit"
