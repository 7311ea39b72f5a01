#!/usr/bin/env bash
# guest-swap.sh - a Linux guest swapping on rtmem. A cluster serves the export swap0;
# Debian's kernel boots under QEMU (tests/guest/run-guest.sh) with 256 MiB of RAM and
#  (a) QEMU itself as the NBD client: the export is the guest's virtio disk /dev/vda;
#  (b) the guest's own nbd-client attaching the export over the guest's network
#      (QEMU user networking: the host's 127.0.0.1 is 10.0.2.2) as /dev/nbd0;
# in both the guest runs mkswap + swapon on the device, usemem writes 768 MiB and
# verifies every word (3x the guest's RAM, so most of it goes through swap), then
# swapoff reads every swapped page back. Afterwards the borrower's statistics must
# show the export's pages on the donors. Usage: guest-swap.sh BUILD_DIR
. "$(dirname "$0")/lib-nbd.sh" "$1"
need_tools qemu-system-x86_64 qemu-io
GUEST_MEM=256M   # guest RAM
USE_MIB=768      # what usemem writes and verifies: 3x GUEST_MEM
# per boot; alone on 2 cores a boot takes 35-140 s, up to 300 s when other QEMUs share
# the CPUs: the limit is there to catch a hang, not to measure speed
GUEST_TIMEOUT=${RTMEM_GUEST_SWAP_TIMEOUT:-720}
# swap of 1 GiB, all of it allowed in remote memory: 2 donors x 640 MiB
nbd_start --donor-size 640M --export swap0=1G:1G
W=$DIR/work
mkdir -p "$W"
# the borrower must never wait on swap itself (it serves the swap device): it mlockall()s
locked=$(awk '/^VmLck:/{print $2}' "/proc/$(cat "$DIR/borrower.pid")/status")
echo "borrower: VmLck ${locked:-?} kB"
[ "${locked:-0}" -gt 0 ] || fail "the borrower's memory is not locked (mlockall failed?)"

cat >"$W/guest.sh" <<'GUEST'
# runs inside the guest: guest.sh drive|nbd PORT USE_MIB
set -uo pipefail
mode=$1 port=$2 use=$3
say() { echo "guest[$(cut -d' ' -f1 /proc/uptime)]: $*"; }
case $mode in
drive) dev=/dev/vda ;;
nbd)
	nic=$(ls /sys/class/net | grep -v '^lo$' | head -n1)
	/usr/bin/ip addr add 10.0.2.15/24 dev "$nic" && /usr/bin/ip link set "$nic" up &&
		/usr/bin/ip route add default via 10.0.2.2 || { say "network setup failed"; exit 2; }
	dev=/dev/nbd0
	# swap-in readahead of 32 pages instead of 8: every round trip crosses the guest's
	# TCP stack and QEMU's user network under TCG (verify pass of 512 MiB measured at
	# 5.0 against 2.5-3.1 MB/s under the same load)
	echo 5 >/proc/sys/vm/page-cluster
	# -swap: nbd-client mlocks itself; -b 4096: the export's preferred block size
	timeout 60 nbd-client 10.0.2.2 "$port" "$dev" -N swap0 -b 4096 -swap ||
		{ say "nbd-client failed"; exit 2; }
	;;
*) say "bad mode $mode"; exit 2 ;;
esac
[ -b "$dev" ] || { say "no block device $dev"; exit 2; }
say "swap device $dev: $(($(blockdev --getsize64 "$dev") >> 20)) MiB, RAM $(free -m | awk '/Mem:/{print $2}') MiB"
mkswap "$dev" >/dev/null || { say "mkswap failed"; exit 2; }
swapon "$dev" || { say "swapon failed"; exit 2; }
t0=$(cut -d' ' -f1 /proc/uptime)
usemem -p w,r "${use}M"
rc=$?
say "usemem exit $rc ($(echo "$t0" | awk -v t="$(cut -d' ' -f1 /proc/uptime)" '{printf "%.1f", t - $1}') s)"
free -m
swapoff "$dev" || { say "swapoff failed"; rc=3; }
awk '/^pswpout /{print "GUEST-SWAPOUT-KIB=" $2 * 4} /^pswpin /{print "GUEST-SWAPIN-KIB=" $2 * 4}' /proc/vmstat
[ "$mode" = drive ] || nbd-client -d "$dev" >/dev/null 2>&1 || true
exit "$rc"
GUEST

# run_guest MODE QEMU-ARG...: one boot; checks the result, the swap traffic, and the
# statistics afterwards; prints the wall time
run_guest() {
	local mode=$1 t0 t1 out kib used
	shift
	note "guest ($mode): $USE_MIB MiB in $GUEST_MEM of RAM, swapping on swap0"
	out=$W/console-$mode.log
	t0=${EPOCHREALTIME/./}
	bash "$SRC/tests/guest/run-guest.sh" --bin "$BIN" --script "$W/guest.sh" --mem "$GUEST_MEM" \
		--timeout "$GUEST_TIMEOUT" --log "$out" "$@" -- "$mode" "$NPORT" "$USE_MIB" ||
		fail "guest ($mode) failed with status $? (see above: a mismatch, a hang or a crash)"
	t1=${EPOCHREALTIME/./}
	grep -q "0 mismatched words" "$out" || fail "guest ($mode): usemem did not verify its memory"
	kib=$(sed -n 's/^GUEST-SWAPOUT-KIB=\([0-9]*\).*/\1/p' "$out")
	echo "guest ($mode): swapped out $((${kib:-0} >> 10)) MiB, wall $(((t1 - t0) / 1000000)) s"
	[ "${kib:-0}" -ge $(((USE_MIB - 256) * 1024)) ] ||
		fail "guest ($mode): only ${kib:-0} KiB went to swap"
	borrower_alive || fail "borrower died during the guest run ($mode)"
	sleep 2.5 # statistics are reported once a second
	grep "closed after" "$DIR/borrower.log" | tail -n1 || fail "guest ($mode): no NBD connection seen"
	! grep -q "closed after .* ([1-9][0-9]* errors)" "$DIR/borrower.log" ||
		fail "guest ($mode): an NBD connection saw request errors"
	ctl --json status >"$W/status-$mode.json"
	used=$(client_used swap0)
	echo "swap0 after the guest ($mode): $used pages in remote memory"
	# the guest swapped out at least (768 - 256) MiB; all of it fits the 1 GiB target
	[ "$used" -ge $(((USE_MIB - 256) * 256)) ] ||
		fail "swap0 holds only $used pages remotely after the guest ($mode)"
	$PY - "$W/status-$mode.json" "$used" <<'PY' || fail "donor statistics do not show the pages ($mode)"
import json, sys
s = json.load(open(sys.argv[1]))
used = int(sys.argv[2])
donors = [n for n in s["nodes"] if n.get("role") == "donor"]
lent = sum(n["total_pages"] - n["free_pages"] for n in donors)
print("donors (id, total, free pages):", [(n["id"], n["total_pages"], n["free_pages"]) for n in donors], "lent", lent, "pages")
assert len(donors) == 2 and lent >= used, (lent, used)
PY
}

run_guest drive --qemu-arg -drive \
	--qemu-arg "file=nbd+unix:///swap0?socket=$NSOCK,format=raw,if=virtio,cache=none"
note "trim swap0, so that the second guest's pages are counted on their own"
qemu-io -f raw -c "discard 0 1G" "$(uri_unix swap0)" >/dev/null || fail "discard swap0"
sleep 2.5
used=$(client_used swap0)
[ "$used" -eq 0 ] || fail "trim left $used pages of swap0 in remote memory"
run_guest nbd --qemu-arg -nic --qemu-arg user,model=virtio-net-pci
echo "PASS nbd guest-swap"
