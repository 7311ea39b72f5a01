#!/usr/bin/env bash
# clients.sh - real NBD clients against a running cluster: nbdinfo lists the
# exports with sizes and block sizes; nbdcopy moves a 256 MiB random file into an
# export and back out (unix socket and TCP) with identical checksums; qemu-img
# convert/compare; qemu-io random sub-page writes with patterns, verified in a new
# connection; the borrower's statistics show the export's pages on the donors.
. "$(dirname "$0")/lib-nbd.sh" "$1"
need_tools nbdinfo nbdcopy qemu-img qemu-io
nbd_start --donor-size 512M --export disk=256M --export vm2=128M --export big=1G
W=$DIR/work
mkdir -p "$W"

note "nbdinfo --list"
nbdinfo --list --json "$(uri_unix disk)" >"$W/list.json" || fail "nbdinfo --list"
$PY - "$W/list.json" <<'PY' || fail "nbdinfo --list: wrong exports"
import json, sys
j = json.load(open(sys.argv[1]))
ex = {e["export-name"]: e for e in j["exports"]}
assert set(ex) == {"disk", "vm2", "big"}, ex.keys()
assert ex["disk"]["export-size"] == 256 << 20 and ex["vm2"]["export-size"] == 128 << 20
assert ex["big"]["export-size"] == 1 << 30
for e in ex.values():
    assert e["block_size_minimum"] == 512 and e["block_size_preferred"] == 4096
    assert e["block_size_maximum"] == 32 << 20
    assert e["can_flush"] and e["can_trim"] and e["can_zero"] and e["can_fua"]
print("exports:", {k: v["export-size"] for k, v in ex.items()})
PY
nbdinfo "$(uri_tcp vm2)" | grep -q "export-size: 134217728" || fail "nbdinfo over TCP"

note "nbdcopy 256 MiB in and out (unix socket)"
head -c 256M /dev/urandom >"$W/in.bin"
want=$(sha_of "$W/in.bin")
nbdcopy --flush "$W/in.bin" "$(uri_unix disk)" || fail "nbdcopy in"
[ "$(sha_of_uri "$(uri_unix disk)")" = "$want" ] || fail "nbdcopy out (unix): checksum differs"
note "nbdcopy out over TCP, new connections"
[ "$(sha_of_uri "$(uri_tcp disk)")" = "$want" ] || fail "nbdcopy out (tcp): checksum differs"
note "an export never written reads as zeros"
got=$(nbdcopy "$(uri_tcp big)" - | sha256sum | cut -d' ' -f1)
[ "$got" = "$(head -c 1G /dev/zero | sha256sum | cut -d' ' -f1)" ] || fail "big is not zeros"
rm -f "$W/in.bin"

note "qemu-img convert and compare"
head -c 100M /dev/urandom >"$W/img.raw"
qemu-img convert -n -f raw -O raw "$W/img.raw" "$(uri_unix vm2)" || fail "qemu-img convert"
qemu-img compare -f raw -F raw "$W/img.raw" "$(uri_tcp vm2)" || fail "qemu-img compare"
rm -f "$W/img.raw"

note "qemu-io random writes with patterns (512-byte granularity)"
wr=() rd=()
for i in $(seq 0 399); do # slot i: 64 KiB at 64 KiB * i, a random extent inside
	off=$((i * 65536 + (RANDOM % 64) * 512))
	len=$(((RANDOM % (128 - (off % 65536) / 512) + 1) * 512))
	[ $((off % 65536 + len)) -le 65536 ] || len=$((65536 - off % 65536))
	pat=$((RANDOM % 255 + 1))
	wr+=(-c "aio_write -P $pat $off $len")
	rd+=(-c "read -P $pat $off $len")
	[ $((i % 16)) -ne 15 ] || wr+=(-c "aio_flush")
done
qemu-io -f raw "${wr[@]}" -c "aio_flush" "$(uri_unix vm2)" >"$W/qio-w.log" 2>&1 ||
	fail "qemu-io writes: $(tail -3 "$W/qio-w.log")"
qemu-io -f raw "${rd[@]}" "$(uri_tcp vm2)" >"$W/qio-r.log" 2>&1 ||
	fail "qemu-io reads: $(tail -3 "$W/qio-r.log")"
grep -qi "verification failed\|error" "$W/qio-w.log" "$W/qio-r.log" &&
	fail "qemu-io: $(grep -i "verification failed\|error" "$W"/qio-*.log | head -3)"
n=$(grep -c "^read " "$W/qio-r.log")
[ "$n" -eq 400 ] || fail "qemu-io verified $n of 400 extents"
note "qemu-io random 4K reads/writes, verified"
qemu-io -f raw -c "write -P 0x5a 0 4M" -c "read -P 0x5a 0 4M" -c "write -P 0x33 1M 4096" \
	-c "read -P 0x5a 0 1M" -c "read -P 0x33 1M 4096" -c "read -P 0x5a 1052672 3141632" \
	"$(uri_unix vm2)" >"$W/qio2.log" 2>&1 || fail "qemu-io 4K: $(tail -3 "$W/qio2.log")"
grep -qi "verification failed" "$W/qio2.log" && fail "qemu-io 4K pattern mismatch"

note "statistics: the exports' pages are on the donors"
sleep 2.5 # statistics are sent every second
used=$(client_used disk)
lent=$(json_get "sum(n['total_pages']-n['free_pages'] for n in s['nodes'] if n['role']=='donor')")
echo "client disk holds $used pages; donors lend $lent pages"
[ "$used" -ge 65536 ] || fail "client disk should hold >= 65536 pages (has $used)"
[ "$(client_used vm2)" -gt 0 ] || fail "client vm2 holds no pages"
[ "$lent" -ge "$used" ] || fail "donors lend fewer pages than the export holds"
borrower_alive || fail "borrower died"
grep -q "nbd.*closing" "$DIR/borrower.log" &&
	fail "a connection was dropped: $(grep 'nbd.*closing' "$DIR/borrower.log" | head -3)"
echo "PASS nbd clients"
