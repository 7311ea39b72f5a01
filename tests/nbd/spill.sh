#!/usr/bin/env bash
# spill.sh - a write is never refused for lack of remote memory: blocks beyond an
# export's target, or beyond what the donors have, go to the export's backing file
# and read back intact; TRIM frees them; written again they go back to remote memory.
. "$(dirname "$0")/lib-nbd.sh" "$1"
need_tools nbdcopy qemu-io
# 2 donors of 64 MiB: 128 MiB of remote memory in all
nbd_start --donor-size 64M --export capped=128M:32M --export nocap=256M
W=$DIR/work
mkdir -p "$W"
alloc_kib() { du -k "$DIR/nbd-10-$1.data" | cut -f1; }
sum() { sha256sum | cut -d' ' -f1; }

note "capped export: 128 MiB through a 32 MiB target"
head -c 128M /dev/urandom >"$W/a.bin"
nbdcopy --flush "$W/a.bin" "$(uri_unix capped)" || fail "nbdcopy into capped"
[ "$(nbdcopy "$(uri_unix capped)" - | sum)" = "$(sum <"$W/a.bin")" ] ||
	fail "capped: data differs"
sleep 2.5
used=$(client_used capped)
file=$(alloc_kib capped)
echo "capped: $used pages remote, backing file $file KiB"
[ "$used" -gt 0 ] && [ "$used" -le 8192 ] || fail "capped holds $used pages (target 8192)"
[ "$file" -ge $((90 * 1024)) ] || fail "capped: backing file holds only $file KiB"

note "nocap export: 256 MiB with less remote memory left than that"
head -c 256M /dev/urandom >"$W/b.bin"
nbdcopy --flush "$W/b.bin" "$(uri_tcp nocap)" || fail "nbdcopy into nocap"
[ "$(nbdcopy "$(uri_unix nocap)" - | sum)" = "$(sum <"$W/b.bin")" ] ||
	fail "nocap: data differs"
[ "$(nbdcopy "$(uri_unix capped)" - | sum)" = "$(sum <"$W/a.bin")" ] ||
	fail "capped: data differs after nocap filled the donors"
sleep 2.5
used=$(client_used nocap)
file=$(alloc_kib nocap)
echo "nocap: $used pages remote, backing file $file KiB"
[ "$used" -gt 0 ] || fail "nocap holds no remote pages"
[ "$file" -ge $((100 * 1024)) ] || fail "nocap: backing file holds only $file KiB"

note "trim frees remote pages and the backing file"
qemu-io -f raw -c "discard 0 128M" "$(uri_unix capped)" >/dev/null || fail "discard"
qemu-io -f raw -c "read -P 0 0 128M" "$(uri_unix capped)" | grep -q "^read" ||
	fail "capped does not read as zeros after trim"
sleep 2.5
used=$(client_used capped)
file=$(alloc_kib capped)
echo "capped after trim: $used pages, backing file $file KiB"
[ "$used" -eq 0 ] || fail "trim left $used remote pages"
[ "$file" -lt 1024 ] || fail "trim left $file KiB in the backing file"

note "nocap trimmed: its blocks move back to remote memory when rewritten"
qemu-io -f raw -c "discard 0 256M" "$(uri_unix nocap)" >/dev/null || fail "discard nocap"
head -c 96M /dev/urandom >"$W/c.bin"
nbdcopy --flush "$W/c.bin" "$(uri_unix nocap)" || fail "nbdcopy again"
[ "$(nbdcopy "$(uri_unix nocap)" - | head -c 96M | sum)" = "$(sum <"$W/c.bin")" ] ||
	fail "rewritten data differs"
sleep 2.5
used=$(client_used nocap)
file=$(alloc_kib nocap)
echo "nocap rewritten: $used pages remote, backing file $file KiB"
[ "$used" -ge 24000 ] || fail "rewritten blocks did not go back to remote memory ($used)"
[ "$file" -lt 1024 ] || fail "rewritten blocks stayed in the backing file ($file KiB)"
borrower_alive || fail "borrower died"
echo "PASS nbd spill"
