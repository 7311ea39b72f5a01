# lib-nbd.sh - shared by the NBD tests: the integration lib plus the tools check.
# Usage: . lib-nbd.sh BUILD_DIR
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh" "$1"
PY=/usr/bin/python3 # Debian's python3: the nbd module is installed for it only
need_tools() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null || { echo "SKIP: $t not installed (scripts/install-deps.sh)"; exit 77; }
	done
}
# nbd_start ARGS...: a cluster with exports; NSOCK, NPORT and the URI helpers
nbd_start() {
	cluster_start "$@"
	NSOCK=$DIR/nbd.sock
	NPORT=$(cat "$DIR/nbd.port")
}
uri_unix() { echo "nbd+unix:///$1?socket=$NSOCK"; }
uri_tcp() { echo "nbd://127.0.0.1:$NPORT/$1"; }
# client_used NAME: pages the borrower's client NAME holds (status is per second)
client_used() {
	json_get "[c['used'] for c in s['clients'] if c['name']=='$1'][0]"
}
borrower_alive() { kill -0 "$(cat "$DIR/borrower.pid")" 2>/dev/null; }
# sha_of FILE / sha_of_uri URI: sha256 of a file / of an export read with nbdcopy
sha_of() { sha256sum <"$1" | cut -d' ' -f1; }
sha_of_uri() { nbdcopy "$1" - | sha256sum | cut -d' ' -f1; }
