#!/usr/bin/env bash
# donorkill.sh - a donor killed (SIGKILL) while the borrower is reading its pages:
# the borrower's transfers to it fail, the gets of its pages fail (EIO once it is
# invalidated) and never return wrong bytes; the borrower marks its slabs lost and
# reports it (status "lost", log); the other donor's pages stay intact and fresh puts
# still work. Runs over TCP on the host and over verbs in the
# guest (RTMEM_CLUSTER_ARGS). Usage: donorkill.sh BUILD_DIR
. "$(dirname "$0")/../integration/lib.sh" "$1"
PAGES=${DONORKILL_PAGES:-24000}
LOST=$BIN/tmem_lost
# two donors of 16384 pages each: 24000 pages need both
cluster_start --donor-size 64M --slab-size 16M
coproc LC { "$LOST" "$PAGES"; }
lc_pid=$LC_PID
exec 3<&"${LC[0]}" 4>&"${LC[1]}" # bash drops LC[] when the client exits
read -r -t 300 line <&3 || fail "client did not get ready"
[ "$line" = READY ] || fail "client said '$line'"
lent1=$(json_get "[n['total_pages']-n['free_pages'] for n in s['nodes'] if n['id']==1][0]")
lent2=$(json_get "[n['total_pages']-n['free_pages'] for n in s['nodes'] if n['id']==2][0]")
echo "donor 1 lends $lent1 pages, donor 2 lends $lent2"
[ "$lent1" -gt 0 ] && [ "$lent2" -gt 0 ] || fail "both donors should hold pages"
read -r -t 300 line <&3 || fail "client died in its first read pass"
echo "$line"
# The master is paused first, so the borrower must find out from the data path: its
# requests to the dead donor fail (in flight: connection reset / flushed; later:
# not connected) and the client gets errors. Then the master resumes, sees donor 1's
# control connection gone and invalidates it: the borrower marks the slabs lost.
mpid=$(cat "$DIR/master.pid")
failc() { kill -CONT "$mpid" 2>/dev/null || true; fail "$@"; }
note "master paused; SIGKILL donor 1 while the client reads"
kill -STOP "$mpid"
kill -KILL "$(cat "$DIR/donor1.pid")"
rm -f "$DIR/donor1.pid"
hit=0
while read -r -t 300 line <&3; do # until a read pass meets the dead donor
	echo "$line"
	if [[ $line =~ err=([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -gt 0 ]; then
		hit=1
		break
	fi
done
[ $hit -eq 1 ] || failc "no read pass saw the dead donor"
failed=$(grep -c "pages\? .* (donor 1): " "$DIR/borrower.log" || true)
echo "borrower logged $failed failed page transfers with donor 1, e.g.:"
grep "pages\? .* (donor 1): " "$DIR/borrower.log" | sed -n '1p;$p'
[ "$failed" -gt 0 ] || failc "borrower logged no failed transfer with donor 1"
note "master resumed"
kill -CONT "$mpid"
lost=0
for _ in $(seq 300); do
	lost=$(json_get "[n['lost_slabs'] for n in s['nodes'] if n['id']==10][0]")
	[ "$lost" -gt 0 ] && break
	sleep 0.1
done
echo "borrower reports $lost lost slabs"
[ "$lost" -gt 0 ] || fail "borrower reports no lost slab"
echo go >&4
while read -r -t 300 line <&3; do
	echo "$line"
	[[ $line == OK* ]] && break
done
wait "$lc_pid" || fail "client: wrong data or wrong errors (see above)"
[[ $line == OK* ]] || fail "client did not finish"
grep -q "donor 1 failed" "$DIR/borrower.log" || fail "borrower log does not report donor 1"
grep "donor 1 failed" "$DIR/borrower.log" | head -1
ctl status || fail "rtmemctl status"
echo "PASS donorkill"
