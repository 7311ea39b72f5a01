#!/usr/bin/env bash
# stalekey.sh - a slab's key dies with its grant: borrower 10 fills pages, leaves (its
# slabs go back; the donors deregister their memory regions), borrower 11 fills
# pages and so is granted at least one slab borrower 10 had; an RDMA READ with
# borrower 10's old key for that slab fails, a READ with borrower 11's key works,
# and borrower 11's data is intact afterwards. The keys come from the borrowers'
# debug log (RTMEM_DEBUG=borrower: "granted slab OFF:LEN:KEY of donor D"); the
# READs from rtmem-rdmabench probe. Meant for verbs (in the guest); over TCP the
# donor also checks the owner, so only the old-key half is meaningful there.
# Usage: stalekey.sh BUILD_DIR
. "$(dirname "$0")/../integration/lib.sh" "$1"
export RTMEM_DEBUG=borrower
BENCH=$BIN/rtmem-rdmabench
# 2 donors x 4 slabs of 4096 pages: 20000 pages take 5 slabs, 16000 take 4, so the
# second borrower must get at least one slab the first one had
cluster_start --donor-size 64M --slab-size 16M --borrowers 2
transport=$(sed -n 's/^transport = //p' "$CFG")
transport=${transport:-tcp}

holder() { # SOCKET PAGES: a tmem_check hold on fd 3 (out) / 4 (in), pid in $hold_pid
	coproc HOLD { "$CHECK" -s "$1" hold "$2"; }
	hold_pid=$HOLD_PID
	exec 3<&"${HOLD[0]}" 4>&"${HOLD[1]}"
	read -r -t 300 line <&3 || fail "holder on $1 did not get ready"
	[ "$line" = READY ] || fail "holder said '$line'"
}
release() { # verify everything, wait for the holder's exit
	echo go >&4
	read -r -t 300 line <&3 || fail "holder died verifying"
	echo "$line"
	[[ $line == OK* ]] || fail "holder: $line"
	wait "$hold_pid" || fail "holder exit status"
	exec 3<&- 4>&-
}
grants() { sed -n 's/.*granted slab \([0-9]*:[0-9]*:[0-9a-f]*\) of donor \([0-9]*\).*/\2 \1/p' "$1"; }

note "borrower 10 fills 20000 pages"
holder "$DIR/borrower.sock" 20000
release
grants "$DIR/borrower.log" >"$DIR/old.grants"
echo "borrower 10 was granted $(wc -l <"$DIR/old.grants") slabs"
[ -s "$DIR/old.grants" ] || fail "no grant lines in borrower.log (RTMEM_DEBUG)"

note "borrower 10 leaves: its slabs go back, their keys are revoked"
kill -TERM "$(cat "$DIR/borrower.pid")"
for _ in $(seq 300); do kill -0 "$(cat "$DIR/borrower.pid")" 2>/dev/null || break; sleep 0.1; done
kill -0 "$(cat "$DIR/borrower.pid")" 2>/dev/null && fail "borrower 10 did not exit"
rm -f "$DIR/borrower.pid"
grep -q "left the cluster" "$DIR/borrower.log" || fail "borrower 10 did not leave cleanly"

note "borrower 11 fills 16000 pages"
holder "$DIR/borrower2.sock" 16000
grants "$DIR/borrower2.log" >"$DIR/new.grants"
echo "borrower 11 was granted $(wc -l <"$DIR/new.grants") slabs"
reused=
while read -r donor g; do
	old=$(awk -v d="$donor" -v o="${g%%:*}" '$1 == d && index($2, o ":") == 1 {print $2}' \
		"$DIR/old.grants" | tail -n 1)
	if [ -n "$old" ]; then
		reused="$donor $old $g"
		break
	fi
done <"$DIR/new.grants"
[ -n "$reused" ] || fail "borrower 11 got no slab borrower 10 had (see *.grants)"
read -r donor old new <<<"$reused"
echo "donor $donor slab ${old%%:*}: borrower 10's key ${old##*:}, borrower 11's key ${new##*:}"
[ "${old##*:}" != "${new##*:}" ] || fail "the slab was granted again under the same key"
addr=$(awk -v s="[node.$donor]" '$0 == s {f = 1} f && $1 == "address" {print $3; exit}' "$CFG")

note "RDMA READ with the old key ($transport)"
set +e
"$BENCH" probe "$addr" -g "$old" -t "$transport"
rc=$?
set -e
[ $rc -eq 3 ] || fail "READ with the stale key: probe exit $rc, want 3 (failed)"
if [ "$transport" != tcp ]; then
	note "RDMA READ with the new owner's key (control: the probe itself works)"
	"$BENCH" probe "$addr" -g "$new" -t "$transport" || fail "READ with the live key failed"
fi
note "borrower 11's data after the probes"
release
echo "PASS stalekey"
