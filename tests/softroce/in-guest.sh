#!/usr/bin/env bash
# in-guest.sh - runs inside the QEMU guest (tests/guest/run-guest.sh): the project's
# integration tests, unchanged, with the cluster arguments given, one after another.
#   in-guest.sh "CLUSTER ARGS" TEST...
# TEST is a path under /rtmem/tests (integration/spine.sh, softroce/donorkill.sh, ...).
# Prints one line per test with its wall time; exits non-zero if any test failed.
set -uo pipefail
export RTMEM_CLUSTER_ARGS=$1
shift
export TMPDIR=/tmp
rc=0
now() { cut -d' ' -f1 /proc/uptime; }
echo "softroce: kernel $(uname -r), $(nproc) cpus, cluster args '$RTMEM_CLUSTER_ARGS'"
for t in "$@"; do
	t0=$(now)
	log=/tmp/$(basename "$t" .sh).log
	if bash "/rtmem/tests/$t" /rtmem >"$log" 2>&1; then
		res=PASS
	else
		res=FAIL
		rc=1
	fi
	t1=$(now)
	if [ $res = FAIL ]; then
		sed "s#^#  $(basename "$t" .sh)| #" "$log" | tail -n 80
	else
		grep -v -e '^rtmem-[a-z]*\[' -e '^=====' "$log" |
			sed "s#^#  $(basename "$t" .sh)| #"
	fi
	echo "softroce: $res $t ($(echo "$t1 - $t0" | bc 2>/dev/null || awk "BEGIN{print $t1-$t0}") s)"
done
echo "softroce: done, rc=$rc"
exit $rc
