# lib.sh - shared by the integration test scripts: start a one-machine cluster in a
# fresh directory, tear it down cleanly on exit (failing the test if teardown is
# unclean), and small assertion helpers. Usage: . lib.sh BUILD_DIR
set -euo pipefail
BIN=$(cd "$1" && pwd)/bin
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLUSTER=$SRC/scripts/rtmem-cluster
CHECK=$BIN/tmem_check
DIR=$(mktemp -d "${TMPDIR:-/tmp}/rtmem-test.XXXXXX")
started=0

fail() { echo "FAIL: $*" >&2; dump_logs; exit 1; }
note() { echo "--- $*"; }
dump_logs() {
	for f in "$DIR"/*.log; do
		[ -f "$f" ] || continue
		echo "===== $f (last 30 lines)" >&2
		tail -n 30 "$f" >&2
	done
}

# RTMEM_CLUSTER_ARGS (e.g. "--netns --transport verbs") is appended to every start,
# so the same test scripts run over TCP on loopback, in namespaces, or over verbs.
cluster_start() {
	# shellcheck disable=SC2086 # word splitting of the extra args is intended
	"$CLUSTER" start "$DIR" --bin "$BIN" "$@" ${RTMEM_CLUSTER_ARGS:-} ||
		fail "cluster did not start"
	started=1
	CFG=$DIR/rtmem.conf
	SOCK=$DIR/borrower.sock
	export RTMEM_SOCKET=$SOCK
}

ctl() { "$BIN/rtmemctl" -c "$CFG" "$@"; }

# json_get EXPR: evaluate a python expression over the --json status (as `s`)
json_get() {
	ctl --json status | /usr/bin/python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"
}

cleanup() {
	local rc=$?
	if [ $started -eq 1 ]; then
		if ! "$CLUSTER" stop "$DIR"; then
			echo "FAIL: unclean cluster teardown" >&2
			dump_logs
			rc=1
		fi
	fi
	if [ $rc -eq 0 ] && [ $started -eq 1 ] && grep -q "^transport = verbs" "$CFG" &&
		! grep -q "connected over verbs" "$DIR"/borrower*.log; then
		echo "FAIL: transport = verbs but no borrower connected over verbs" >&2
		dump_logs
		rc=1
	fi
	if [ $rc -eq 0 ]; then
		# a daemon that logged a sanitizer report fails the test even if it exited 0
		if grep -l "ERROR: AddressSanitizer\|runtime error:\|LeakSanitizer" "$DIR"/*.log 2>/dev/null; then
			echo "FAIL: sanitizer report in daemon logs" >&2
			dump_logs
			rc=1
		else
			rm -rf "$DIR"
		fi
	fi
	exit $rc
}
trap cleanup EXIT
