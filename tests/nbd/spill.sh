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
# settle NAME LABEL: after a statistics interval, the export's remote pages ($used)
# and its backing file's allocated KiB ($file)
settle() {
	sleep 2.5
	used=$(client_used "$1")
	file=$(du -k "$DIR/nbd-10-$1.data" | cut -f1)
	echo "$2: $used pages remote, backing file $file KiB"
}

note "capped export: 128 MiB through a 32 MiB target"
head -c 128M /dev/urandom >"$W/a.bin"
nbdcopy --flush "$W/a.bin" "$(uri_unix capped)" || fail "nbdcopy into capped"
[ "$(sha_of_uri "$(uri_unix capped)")" = "$(sha_of "$W/a.bin")" ] ||
	fail "capped: data differs"
settle capped "capped"
[ "$used" -gt 0 ] && [ "$used" -le 8192 ] || fail "capped holds $used pages (target 8192)"
[ "$file" -ge $((90 * 1024)) ] || fail "capped: backing file holds only $file KiB"

note "nocap export: 256 MiB with less remote memory left than that"
head -c 256M /dev/urandom >"$W/b.bin"
nbdcopy --flush "$W/b.bin" "$(uri_tcp nocap)" || fail "nbdcopy into nocap"
[ "$(sha_of_uri "$(uri_unix nocap)")" = "$(sha_of "$W/b.bin")" ] ||
	fail "nocap: data differs"
[ "$(sha_of_uri "$(uri_unix capped)")" = "$(sha_of "$W/a.bin")" ] ||
	fail "capped: data differs after nocap filled the donors"
settle nocap "nocap"
[ "$used" -gt 0 ] || fail "nocap holds no remote pages"
[ "$file" -ge $((100 * 1024)) ] || fail "nocap: backing file holds only $file KiB"

note "trim frees remote pages and the backing file"
qemu-io -f raw -c "discard 0 128M" "$(uri_unix capped)" >/dev/null || fail "discard"
qemu-io -f raw -c "read -P 0 0 128M" "$(uri_unix capped)" | grep -q "^read" ||
	fail "capped does not read as zeros after trim"
settle capped "capped after trim"
[ "$used" -eq 0 ] || fail "trim left $used remote pages"
[ "$file" -lt 1024 ] || fail "trim left $file KiB in the backing file"

note "nocap trimmed: its blocks move back to remote memory when rewritten"
qemu-io -f raw -c "discard 0 256M" "$(uri_unix nocap)" >/dev/null || fail "discard nocap"
head -c 96M /dev/urandom >"$W/c.bin"
nbdcopy --flush "$W/c.bin" "$(uri_unix nocap)" || fail "nbdcopy again"
[ "$(nbdcopy "$(uri_unix nocap)" - | head -c 96M | sha256sum | cut -d" " -f1)" = \
	"$(sha_of "$W/c.bin")" ] ||
	fail "rewritten data differs"
settle nocap "nocap rewritten"
[ "$used" -ge 24000 ] || fail "rewritten blocks did not go back to remote memory ($used)"
[ "$file" -lt 1024 ] || fail "rewritten blocks stayed in the backing file ($file KiB)"
borrower_alive || fail "borrower died"
echo "PASS nbd spill"
