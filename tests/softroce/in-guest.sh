#!/usr/bin/env bash
# in-guest.sh - runs inside the QEMU guest (tests/guest/run-guest.sh): the project's
# integration tests, unchanged, with the cluster arguments given, one after another.
#   in-guest.sh "CLUSTER ARGS" TEST...
# TEST is a path under /rtmem/tests (integration/spine.sh, softroce/donorkill.sh, ...).
# Streams each test's output, then one line per test with its wall time; exits
# non-zero if any test failed.
set -uo pipefail
export RTMEM_CLUSTER_ARGS=$1
shift
export TMPDIR=/tmp
rc=0
now() { cut -d' ' -f1 /proc/uptime; }
echo "softroce: kernel $(uname -r), $(nproc) cpus, cluster args '$RTMEM_CLUSTER_ARGS'"
for t in "$@"; do
	t0=$(now)
	name=$(basename "$t" .sh)
	# output streamed as it comes (TCG runs are long), prefixed with the test's name
	bash "/rtmem/tests/$t" /rtmem 2>&1 | while IFS= read -r l; do printf '  %s| %s\n' "$name" "$l"; done
	if [ "${PIPESTATUS[0]}" -eq 0 ]; then res=PASS; else res=FAIL rc=1; fi
	t1=$(now)
	echo "softroce: $res $t ($(awk "BEGIN{print $t1 - $t0}") s)"
done
echo "softroce: done, rc=$rc"
exit $rc
