#!/usr/bin/env bash
# ooo.sh - out-of-order replies (tests/nbd/ooo.py): an export whose 4 MiB target is
# filled first, so later blocks go to the backing file through io_uring and are
# answered when written, while reads of the remote blocks are answered at once;
# and an export all in remote memory (ooor) for remote commands out of order.
. "$(dirname "$0")/lib-nbd.sh" "$1"
need_tools nbdcopy
$PY -c "import nbd" 2>/dev/null || { echo "SKIP: python3-libnbd not installed"; exit 77; }
nbd_start --export ooo=64M:4M --export ooor=64M
W=$DIR/work
mkdir -p "$W"
# the target's 4 MiB, every 8-byte word stamped with its block's offset
$PY -c "
import struct, sys
for b in range(1024):
    sys.stdout.buffer.write(struct.pack('>Q', b * 4096) * 512)" >"$W/stamped.bin"
nbdcopy --flush "$W/stamped.bin" "$(uri_unix ooo)" || fail "nbdcopy stamped blocks"
$PY "$(dirname "$0")/ooo.py" "$NSOCK" ooo $((4 << 20)) ooor || fail "out-of-order checks"
borrower_alive || fail "borrower died"
echo "PASS nbd ooo"
