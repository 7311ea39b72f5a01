#!/usr/bin/env bash
# softroce-bench.sh - a benchmark, not a test: page-run RDMA READ/WRITE throughput of
# the data-plane transport at batch 1, 16 and 64 requests per post, over verbs
# (SoftRoCE, rdma_rxe) and over TCP, in the same QEMU guest (tests/guest/run-guest.sh)
# on the same dummy netdev, measured by rtmem-rdmabench self (every READ verified).
# Prints a table and, last, one JSON document (also written to JSON_OUT if given).
# Emulated numbers (TCG, no KVM, a shared 2-core host) mean little; see docs/softroce.md.
#   bench/softroce-bench.sh BUILD_DIR [SECS_PER_POINT=2] [RUN_PAGES=1] [JSON_OUT]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: softroce-bench.sh BUILD_DIR [SECS] [RUN_PAGES] [JSON_OUT]}" && pwd)
secs=${2:-2} run=${3:-1} out=${4:-}
gs=$(mktemp "${TMPDIR:-/tmp}/rtmem-softroce-bench.XXXXXX")
log=$(mktemp "${TMPDIR:-/tmp}/rtmem-softroce-bench-log.XXXXXX")
trap 'rm -f "$gs" "$log"' EXIT
cat >"$gs" <<'GUEST'
set -euo pipefail
secs=$1 run=$2
/usr/bin/ip link add rtmbench type dummy
/usr/bin/ip addr add 198.51.100.254/24 dev rtmbench
/usr/bin/ip link set rtmbench up
rdma link add rxe-rtmbench type rxe netdev rtmbench
for t in verbs tcp; do
	timeout 600 /rtmem/bin/rtmem-rdmabench self 198.51.100.254:7200 -t $t -s "$secs" \
		-r "$run" -j /tmp/$t.json >/dev/null
done
/usr/bin/python3 - "$(uname -r)" /tmp/verbs.json /tmp/tcp.json <<'PY'
import json, sys
kernel, files = sys.argv[1], sys.argv[2:]
runs = [json.load(open(f)) for f in files]
res = {}
for r in runs:
    for x in r["results"]:
        res.setdefault((x["op"], x["batch"]), {})[r["transport"]] = x
print("op     batch  verbs MB/s  tcp MB/s   verbs req/s  tcp req/s   (run of %d page(s))"
      % runs[0]["run_pages"])
for (op, batch), v in sorted(res.items()):
    g = lambda t, k: v.get(t, {}).get(k, float("nan"))
    print("%-6s %5d  %10.1f %9.1f   %11.0f %10.0f" % (op, batch, g("verbs", "mb_s"),
          g("tcp", "mb_s"), g("verbs", "req_s"), g("tcp", "req_s")))
print("SOFTROCE-BENCH-JSON " + json.dumps({"bench": "softroce", "guest_kernel": kernel,
      "emulation": "qemu tcg", "runs": runs}))
PY
GUEST
"$here/../tests/guest/run-guest.sh" --bin "$build/bin" --script "$gs" --mem 1G \
	--timeout 1200 -- "$secs" "$run" >"$log" 2>&1 || { cat "$log"; exit 1; }
body=$(sed -n 's/^\[ *[0-9.]*\] //p' "$log" | sed -n '/^op     batch/,/^SOFTROCE-BENCH-JSON/p')
[ -n "$body" ] || { cat "$log"; echo "softroce-bench: no results" >&2; exit 1; }
sed 's/^SOFTROCE-BENCH-JSON //' <<<"$body"
[ -z "$out" ] || sed -n 's/^SOFTROCE-BENCH-JSON //p' <<<"$body" >"$out"
