#!/usr/bin/env bash
# spine.sh - master + 2 donors + borrower: 100,000 stamped pages through a persistent
# pool (more than one donor holds), read back byte for byte, flush half, reuse the
# capacity; an ephemeral pool never returns a wrong page; status shows it all.
. "$(dirname "$0")/lib.sh" "$1"
cluster_start --donor-size 256M
note "persistent pool, 100000 pages"
"$CHECK" persistent 100000 || fail "persistent scenario"
note "ephemeral pool, 20000 pages"
"$CHECK" ephemeral 20000 || fail "ephemeral scenario"
note "status"
ctl status || fail "rtmemctl status"
owned=$(json_get "[n for n in s['nodes'] if n['id']==10][0]['total_pages']")
lent1=$(json_get "[n['total_pages']-n['free_pages'] for n in s['nodes'] if n['id']==1][0]")
lent2=$(json_get "[n['total_pages']-n['free_pages'] for n in s['nodes'] if n['id']==2][0]")
echo "borrower owns $owned pages; donor 1 lends $lent1, donor 2 lends $lent2"
[ "$owned" -gt 65536 ] || fail "borrower should own more than one donor's pool ($owned pages)"
[ "$lent1" -gt 0 ] && [ "$lent2" -gt 0 ] || fail "both donors should lend slabs"
puts=$(json_get "sum(c['puts'] for c in s['clients'])")
echo "clients still attached: puts counted $puts"
note "clean borrower shutdown returns every slab"
kill -TERM "$(cat "$DIR/borrower.pid")"
for _ in $(seq 100); do kill -0 "$(cat "$DIR/borrower.pid")" 2>/dev/null || break; sleep 0.1; done
kill -0 "$(cat "$DIR/borrower.pid")" 2>/dev/null && fail "borrower did not exit on SIGTERM"
grep -q "left the cluster" "$DIR/borrower.log" || fail "borrower did not get leave-notify"
sleep 1.5 # donors report statistics every second
lent=$(json_get "sum(n['total_pages']-n['free_pages'] for n in s['nodes'] if n['role']=='donor')")
state=$(json_get "[n['state'] for n in s['nodes'] if n['id']==10][0]")
echo "after the borrower left: donors lend $lent pages, borrower is $state"
[ "$lent" -eq 0 ] || fail "donors still lend $lent pages"
[ "${state,,}" = inactive ] || fail "borrower is $state"
echo "PASS spine"
