#!/usr/bin/env bash
# leave.sh - a donor asked to leave while the borrower holds its slabs: Force-Return
# moves the pages to the other donor, every page still verifies, the donor exits.
. "$(dirname "$0")/lib.sh" "$1"
cluster_start --donor-size 256M
coproc HOLD { "$CHECK" hold 40000; }
hold_pid=$HOLD_PID
read -r -t 120 line <&"${HOLD[0]}" || fail "holder did not get ready"
[ "$line" = READY ] || fail "holder said '$line'"
lent1=$(json_get "[n['total_pages']-n['free_pages'] for n in s['nodes'] if n['id']==1][0]")
echo "donor 1 lends $lent1 pages before leaving"
[ "$lent1" -gt 0 ] || fail "donor 1 should hold slabs of the borrower"
note "rtmemctl leave 1"
ctl leave 1 --wait || fail "leave of donor 1"
state=$(json_get "[n['state'] for n in s['nodes'] if n['id']==1][0]")
[ "${state,,}" = inactive ] || fail "donor 1 is $state after leaving"
for _ in $(seq 100); do kill -0 "$(cat "$DIR/donor1.pid")" 2>/dev/null || break; sleep 0.1; done
kill -0 "$(cat "$DIR/donor1.pid")" 2>/dev/null && fail "donor 1 still running after leave-notify"
echo go >&"${HOLD[1]}"
read -r -t 120 line <&"${HOLD[0]}" || fail "holder died verifying"
echo "$line"
[[ "$line" == OK* ]] || fail "holder: $line"
wait "$hold_pid" || fail "holder exit status"
grep -q "moving" "$DIR/borrower.log" || fail "borrower log shows no migration"
echo "PASS leave"
