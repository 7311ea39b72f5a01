#!/usr/bin/env bash
# export-add.sh - exports added at run time with `rtmemctl export add` (through the
# borrower's control socket): nbdinfo --list shows them at once, nbdcopy moves
# data in and out with identical checksums, a sparse copy reads holes, `export
# list` counts the blocks, `export del` refuses while a connection uses the export
# and works after; bad inputs get clear errors and change nothing.
. "$(dirname "$0")/lib-nbd.sh" "$1"
need_tools nbdinfo nbdcopy
nbd_start --donor-size 256M --export disk=16M
W=$DIR/work
mkdir -p "$W"
expect_fail() { # WHAT MESSAGE-PATTERN ARGS...: rtmemctl fails with that message
	local what=$1 pat=$2 out
	shift 2
	if out=$(ctl "$@" 2>&1); then fail "$what: accepted"; fi
	echo "$out" | grep -q -- "$pat" || fail "$what: unexpected message: $out"
	echo "ok   $what: $out"
}
list_names() { nbdinfo --list --json "$(uri_unix disk)" |
	$PY -c "import json,sys; print(' '.join(sorted(e['export-name'] for e in json.load(sys.stdin)['exports'])))"; }

note "export add"
ctl export add vol1 64M | grep -q "export vol1 added" || fail "export add vol1"
ctl --target 8M export add vol2 32M >/dev/null || fail "export add vol2 with a target"
[ "$(list_names)" = "disk vol1 vol2" ] || fail "nbdinfo --list shows: $(list_names)"
nbdinfo "$(uri_tcp vol1)" | grep -q "export-size: 67108864" || fail "vol1 size over TCP"

note "nbdcopy into the new export and back"
head -c 64M /dev/urandom >"$W/in.bin"
nbdcopy --flush "$W/in.bin" "$(uri_unix vol1)" || fail "nbdcopy in"
[ "$(sha_of_uri "$(uri_tcp vol1)")" = "$(sha_of "$W/in.bin")" ] || fail "nbdcopy out: checksum differs"
note "sparse: a file with holes into vol2 (target 8M: spills), back out identical"
rm -f "$W/sparse.bin"
truncate -s 32M "$W/sparse.bin"
for o in 0 2 4 6 8 10 12 14 17 20 25 30; do head -c 1M /dev/urandom | dd of="$W/sparse.bin" bs=1M seek=$o conv=notrunc status=none; done
nbdcopy --flush "$W/sparse.bin" "$(uri_unix vol2)" || fail "nbdcopy sparse in"
nbdcopy "$(uri_unix vol2)" "$W/out.bin" || fail "nbdcopy sparse out"
cmp "$W/sparse.bin" "$W/out.bin" || fail "sparse copy differs"
nbdinfo --map "$(uri_unix vol2)" >"$W/map.txt" || fail "nbdinfo --map"
grep -q "hole,zero" "$W/map.txt" && grep -q "data" "$W/map.txt" ||
	fail "block status map of vol2: $(head -5 "$W/map.txt")"
echo "vol2 map: $(wc -l <"$W/map.txt") extents, e.g. $(head -2 "$W/map.txt" | tr '\n\t' '; ')"
ctl --json export list >"$W/list.json" || fail "export list"
$PY - "$W/list.json" <<'PY' || fail "export list: wrong contents"
import json, sys
ex = {e["name"]: e for e in json.load(open(sys.argv[1]))["exports"]}
assert set(ex) == {"disk", "vol1", "vol2"}, ex.keys()
assert ex["disk"]["origin"] == "config" and ex["vol1"]["origin"] == "runtime"
v1, v2 = ex["vol1"], ex["vol2"]
assert v1["size"] == 64 << 20 and v1["remote_blocks"] + v1["file_blocks"] == 16384, v1
assert v2["target"] == 2048, v2
# 12 MiB of data (the file's holes are not written) over a target of 8 MiB
assert v2["remote_blocks"] + v2["file_blocks"] == 3072, v2
assert v2["remote_blocks"] <= 2048 and v2["file_blocks"] >= 1024, v2
print("export list:", {k: (v["remote_blocks"], v["file_blocks"]) for k, v in ex.items()})
PY

note "bad inputs"
expect_fail "duplicate name" "export vol1 exists" export add vol1 4M
expect_fail "config export name" "export disk exists" export add disk 4M
expect_fail "bad name" "bad export name" export add 'a/b' 4M
expect_fail "long name" "longer than" export add "$(printf 'n%.0s' $(seq 40))" 4M
expect_fail "unaligned size" "not a positive multiple of 4096" export add v3 5000
expect_fail "zero size" "must not be 0" export add v3 0
expect_fail "unparsable size" "bad export size" export add v3 12Q
expect_fail "huge size" "over the limit" export add v3 2T
expect_fail "not a borrower" "not a borrower" --node 1 export add v3 4M
expect_fail "del unknown" "no export named" export del nothere
expect_fail "missing size" "usage" export add v3
[ "$(list_names)" = "disk vol1 vol2" ] || fail "bad inputs changed the exports: $(list_names)"

note "export del: refused while connected, then done"
$PY - "$NSOCK" "$BIN/rtmemctl" "$CFG" <<'PY' || fail "del while connected"
import subprocess, sys
import nbd
h = nbd.NBD()
h.connect_uri("nbd+unix:///vol1?socket=" + sys.argv[1])
r = subprocess.run([sys.argv[2], "-c", sys.argv[3], "export", "del", "vol1"],
                   capture_output=True, text=True)
assert r.returncode != 0 and "in use by 1 connection" in r.stderr, r
print("ok   del while connected:", r.stderr.strip())
h.shutdown()
PY
ctl export del vol1 | grep -q "export vol1 deleted" || fail "export del vol1"
[ "$(list_names)" = "disk vol2" ] || fail "after del: $(list_names)"
nbdinfo "$(uri_unix vol1)" >/dev/null 2>&1 && fail "deleted export still served"
ctl export add vol1 4M >/dev/null || fail "re-adding a deleted name"
head -c 4M /dev/zero >"$W/zero.bin"
[ "$(sha_of_uri "$(uri_unix vol1)")" = "$(sha_of "$W/zero.bin")" ] || fail "re-added export is not zeros"
borrower_alive || fail "borrower died"
echo "PASS nbd export-add"
