#!/usr/bin/env bash
# nbd-bench.sh - throughput of an rtmem NBD export (borrower over the TCP data-plane
# transport to two donors, all on loopback) next to `nbdkit memory`, measured in the
# same run with fio's nbd engine over NBD/TCP on loopback: sequential and random
# reads and writes of 4 KiB and 64 KiB at queue depth 16, over a 256 MiB region
# written beforehand (so reads hit data, not holes). With BASE_BUILD, a second cluster
# runs that build's binaries (e.g. the commit before a change) in the same run, so
# before/after numbers are measured under the same load.
#   bench/nbd-bench.sh [BUILD_DIR] [SECONDS] [BASE_BUILD]
#   -> table on stdout, JSON in bench/results/
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
secs=${2:-5}
base=${3:+$(cd "$3" && pwd)}
depth=16
region=256M
command -v fio >/dev/null && fio --enghelp 2>/dev/null | grep -qw nbd ||
	{ echo "fio with the nbd engine is needed (scripts/install-deps.sh)" >&2; exit 1; }
command -v nbdkit >/dev/null || { echo "nbdkit is needed (scripts/install-deps.sh)" >&2; exit 1; }
dir=$(mktemp -d /tmp/rtmem-nbdbench.XXXXXX)
bdir=$dir/base
out=$src/bench/results/nbd.json
mkdir -p "$src/bench/results"
kpid=
cleanup() {
	[ -z "$kpid" ] || kill "$kpid" 2>/dev/null || true
	"$src/scripts/rtmem-cluster" stop "$dir" >/dev/null || true
	[ -z "$base" ] || "$src/scripts/rtmem-cluster" stop "$bdir" >/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
"$src/scripts/rtmem-cluster" start "$dir" --bin "$build/bin" --donor-size 1G \
	--export bench=1G >/dev/null
port=$(cat "$dir/nbd.port")
tests=(rtmem nbdkit-memory)
declare -A uri=([rtmem]="nbd://127.0.0.1:$port/bench")
if [ -n "$base" ]; then
	mkdir -p "$bdir"
	"$src/scripts/rtmem-cluster" start "$bdir" --bin "$base/bin" --donor-size 1G \
		--export bench=1G >/dev/null
	uri[base]="nbd://127.0.0.1:$(cat "$bdir/nbd.port")/bench"
	tests=(rtmem base nbdkit-memory)
fi
kport=$((port + 100))
nbdkit -f -i 127.0.0.1 -p "$kport" memory 1G &
kpid=$!
for _ in $(seq 50); do nbdinfo "nbd://127.0.0.1:$kport/" >/dev/null 2>&1 && break; sleep 0.1; done

uri[nbdkit-memory]="nbd://127.0.0.1:$kport/"
run() { # uri rw bs -> "MB/s iops"
	fio --name=b --ioengine=nbd --uri="$1" --rw="$2" --bs="$3" --iodepth=$depth \
		--size=$region --runtime="$secs" --time_based --output-format=json 2>/dev/null |
		/usr/bin/python3 -c '
import json, sys
t = sys.stdin.read()  # the nbd engine prints a line before the JSON
j = json.loads(t[t.index("{"):])["jobs"][0]
d = j["read"] if j["read"]["io_bytes"] else j["write"]
print("%.1f %.0f" % (d["bw_bytes"] / 1e6, d["iops"]))'
}
rows=()
for t in "${tests[@]}"; do
	fio --name=fill --ioengine=nbd --uri="${uri[$t]}" --rw=write --bs=1M --iodepth=4 \
		--size=$region >/dev/null 2>&1
done
ratio() { /usr/bin/python3 -c "print('%.2f' % ($1 / $2 if $2 else 0))"; }
if [ -n "$base" ]; then
	printf '%-10s %-6s %11s %8s %11s %8s %11s %8s %6s %6s\n' test bs "rtmem MB/s" IOPS \
		"base MB/s" IOPS "nbdkit MB/s" IOPS ratio "base"
else
	printf '%-10s %-6s %14s %10s %14s %10s %7s\n' test bs "rtmem MB/s" "IOPS" "nbdkit MB/s" \
		"IOPS" ratio
fi
for rw in read write randread randwrite; do
	for bs in 4k 64k; do
		read -r rb ri <<<"$(run "${uri[rtmem]}" $rw $bs)"
		[ -z "$base" ] || read -r bb bi <<<"$(run "${uri[base]}" $rw $bs)"
		read -r kb ki <<<"$(run "${uri[nbdkit-memory]}" $rw $bs)"
		r=$(ratio "$rb" "$kb")
		extra=
		if [ -n "$base" ]; then
			br=$(ratio "$bb" "$kb")
			printf '%-10s %-6s %11s %8s %11s %8s %11s %8s %6s %6s\n' $rw $bs "$rb" "$ri" \
				"$bb" "$bi" "$kb" "$ki" "$r" "$br"
			extra=", \"base_MBps\": $bb, \"base_iops\": $bi, \"base_ratio\": $br"
		else
			printf '%-10s %-6s %14s %10s %14s %10s %7s\n' $rw $bs "$rb" "$ri" "$kb" "$ki" "$r"
		fi
		rows+=("{\"rw\": \"$rw\", \"bs\": \"$bs\", \"rtmem_MBps\": $rb, \"rtmem_iops\": $ri, \"nbdkit_memory_MBps\": $kb, \"nbdkit_memory_iops\": $ki, \"ratio\": $r$extra}")
	done
done
{
	echo "{"
	echo "  \"bench\": \"nbd\", \"date\": \"$(date -u +%FT%TZ)\", \"host\": \"$(uname -n)\","
	echo "  \"tool\": \"$(fio --version) ioengine=nbd iodepth=$depth region=$region runtime=${secs}s, NBD over TCP loopback\","
	echo "  \"rtmem\": \"export of 1G, borrower + 2 donors of 1G, TCP data-plane transport\","
	echo "  \"nbdkit\": \"$(nbdkit --version) memory 1G\","
	echo "  \"results\": ["
	for i in "${!rows[@]}"; do
		sep=,
		[ "$i" -lt $((${#rows[@]} - 1)) ] || sep=
		echo "    ${rows[$i]}$sep"
	done
	echo "  ]"
	echo "}"
} >"$out"
echo "JSON in $out"
