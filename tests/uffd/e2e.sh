#!/usr/bin/env bash
# e2e.sh - rtmem-run end to end with the real daemons over the TCP transport:
#  1. rtmem-run --local-mem 64M -- usemem 512M: every word verifies and the pages
#     live on the donors (the client's `used` in rtmemctl status is > 0 meanwhile);
#  2. the same with a capped client target: puts are refused part way, pages spill
#     to the local file and still verify;
#  3. a run killed with SIGKILL mid-way leaves no client (no pages) in the borrower
#     and no socket behind.
# Usage: e2e.sh BUILD_DIR
. "$(dirname "$0")/../integration/lib.sh" "$1"
RUN=$BIN/rtmem-run
USEMEM=$BIN/usemem
# In the sanitizer build the preloaded library needs the ASan runtime loaded first.
asan=$(ldd "$USEMEM" | awk '/libasan/ {print $3}')
PRE=(env)
[ -z "$asan" ] || PRE=(env LD_PRELOAD="$asan")

cluster_start --donor-size 512M --client capped=20000

client_used() { # NAME -> pages used, or "none"
	json_get "next((str(c['used']) for c in s['clients'] if c['name'] == '$1'), 'none')"
}

# 1. pages on the donors, verified
note "rtmem-run --local-mem 64M -- usemem 512M"
RTMEM_CLIENT_NAME=e2e RTMEM_STATS=1 "${PRE[@]}" "$RUN" --local-mem 64M -- \
	"$USEMEM" -p w,r,randr,rw -n 20000 512M >"$DIR/run1.out" 2>&1 &
pid=$!
max=0
while kill -0 $pid 2>/dev/null; do
	u=$(client_used e2e)
	[ "$u" != none ] && [ "$u" -gt "$max" ] && max=$u
	sleep 0.5
done
wait $pid || { cat "$DIR/run1.out"; fail "usemem under rtmem-run failed"; }
cat "$DIR/run1.out"
grep -q "0 mismatched words" "$DIR/run1.out" || fail "verification"
[ "$max" -gt 65536 ] || fail "client e2e held at most $max pages in the borrower"
note "client e2e held up to $max pages on the donors"

# 2. capped target: spill to the local file
note "capped client (target 20000 pages): spill"
RTMEM_STATS=1 "${PRE[@]}" "$RUN" --name capped --local-mem 64M -- \
	"$USEMEM" -p w,r,randrw,r -n 20000 512M >"$DIR/run2.out" 2>&1 ||
	{ cat "$DIR/run2.out"; fail "capped run failed"; }
cat "$DIR/run2.out"
grep -q "0 mismatched words" "$DIR/run2.out" || fail "capped verification"
spilled=$(sed -n 's/.* spilled=\([0-9]*\).*/\1/p' "$DIR/run2.out")
[ "${spilled:-0}" -gt 0 ] || fail "nothing spilled with a capped target"
note "capped: $spilled pages spilled, all verified"

# 3. killed mid-run: the borrower reclaims the pool, nothing is left behind
note "kill -9 mid-run"
"${PRE[@]}" "$RUN" --name victim --local-mem 32M -- "$USEMEM" -p w,r -r 50 256M >"$DIR/run3.out" 2>&1 &
pid=$!
for _ in $(seq 100); do
	u=$(client_used victim)
	[ "$u" != none ] && [ "$u" -gt 1000 ] && break
	sleep 0.2
done
[ "$u" != none ] && [ "$u" -gt 1000 ] || fail "victim never stored pages"
kill -9 $pid
wait $pid 2>/dev/null || true
gone=0
for _ in $(seq 50); do
	u=$(client_used victim)
	if [ "$u" = none ] || [ "$u" = 0 ]; then gone=1; break; fi
	sleep 0.2
done
[ $gone -eq 1 ] || fail "killed client still holds $u pages"
# no socket of the dead process: only the borrower's listening sockets in DIR (its tmem
# client socket, and the NBD socket and its control socket, which every borrower has)
socks=$(find "$DIR" /var/tmp -maxdepth 1 -type s 2>/dev/null | grep -v -e "$DIR/borrower.sock" -e "$DIR/nbd-10.sock" || true)
[ -z "$socks" ] || fail "stale sockets: $socks"
ls /var/tmp/rtmem-spill.* 2>/dev/null && fail "spill file left behind"
echo "PASS uffd e2e"
