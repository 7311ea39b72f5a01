#!/usr/bin/env bash
# protocol.sh - protocol hygiene (tests/nbd/protocol.py): bad requests get the
# right NBD errors or a disconnect, the server stays healthy.
. "$(dirname "$0")/lib-nbd.sh" "$1"
need_tools nbdinfo
$PY -c "import nbd" 2>/dev/null || { echo "SKIP: python3-libnbd not installed"; exit 77; }
nbd_start --export disk=64M --export other=16M
$PY "$(dirname "$0")/protocol.py" "$NSOCK" disk $((64 << 20)) || fail "protocol checks"
borrower_alive || fail "borrower died"
nbdinfo --list "$(uri_unix disk)" >/dev/null || fail "server unusable after the checks"
echo "PASS nbd protocol"
