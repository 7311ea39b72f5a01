#!/usr/bin/env bash
# softroce.sh - the SoftRoCE testbed (docs/softroce.md): boots Debian's kernel in QEMU
# (tests/guest/run-guest.sh) and runs, with [cluster] transport = verbs over rxe, the
# same test scripts that run over TCP on the host: the spine (100,000 stamped pages
# through libtmemshim, every byte verified, flush), capped (targets refused), the
# stale-key test and the donor-kill test.
#   softroce.sh BUILD_DIR [CLUSTER ARGS]   default "--rxe --transport verbs"
# SOFTROCE_TESTS overrides the test list (paths under tests/). Exit: the guest's.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: softroce.sh BUILD_DIR [CLUSTER ARGS]}" && pwd)
args=${2:---rxe --transport verbs}
tests=${SOFTROCE_TESTS:-integration/spine.sh integration/capped.sh softroce/stalekey.sh softroce/donorkill.sh}
# shellcheck disable=SC2086 # the test list is words
exec "$here/../guest/run-guest.sh" --bin "$build/bin" --script "$here/in-guest.sh" \
	--mem 2G --timeout "${SOFTROCE_TIMEOUT:-3300}" -- "$args" $tests
