#!/usr/bin/env bash
# usemem-bench.sh - the same usemem workload (sequential write, sequential read with
# verification, random read with verification: passes w,r,randr over SIZE), in one
# run, as:
#   local        all in local memory
#   rtmem-25/50  rtmem-run --local-mem 25 % / 50 % of SIZE, pages on a loopback
#                cluster (scripts/rtmem-cluster, 2 donors of SIZE each, TCP transport)
#   zram-25/50   kernel swap to zram (lz4) under a cgroup v1 memory limit
#                (memory.limit_in_bytes) of the same budget, memory.swappiness=100
#   uffd_floor   the raw userfaultfd loop (one faulting thread, one handler copying
#                from memory): the cost floor of any userfaultfd pager
# plus rtmem-25 once more with passes w,r only, so that the faults of the random pass
# (and the engine's cost per random fault) can be told apart, and both again with the
# engine's in-process store (--store mem: no borrower, no network) as a diagnostic,
# once more with RTMEM_FLAGS=nomove (evictions through the madvise thread, the path
# before UFFDIO_MOVE eviction) for a before/after in the same run.
#   bench/usemem-bench.sh [BUILD_DIR] [SIZE=1G]  -> table on stdout, JSON in
#   bench/results/usemem.json. Needs root for zram/cgroup (skipped with a reason
#   otherwise). Everything it sets up (cluster, zram swap, cgroup, a cgroup mount)
#   is torn down on exit.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
size=${2:-1G}
bin=$build/bin
py=/usr/bin/python3
for b in usemem uffd_floor rtmem-run rtmem-master rtmem-donor rtmem-borrower; do
	[ -x "$bin/$b" ] || { echo "usemem-bench: $bin/$b not built" >&2; exit 1; }
done
case $size in
*[kK]) bytes=$((${size%?} << 10)) ;;
*[mM]) bytes=$((${size%?} << 20)) ;;
*[gG]) bytes=$((${size%?} << 30)) ;;
*[0-9]) bytes=$size ;;
*) echo "usemem-bench: bad SIZE '$size'" >&2; exit 2 ;;
esac
mib=$((bytes >> 20))
[ $mib -ge 16 ] || { echo "usemem-bench: SIZE must be at least 16M" >&2; exit 2; }
passes=w,r,randr
floor_pages=$((bytes / 4096 < 65536 ? bytes / 4096 : 65536))

dir=$(mktemp -d /tmp/rtmem-usemembench.XXXXXX)
out=$src/bench/results/usemem.json
mkdir -p "$src/bench/results"
cluster= zdev= zbefore= swapped= cg= cgmnt= failed=0
cleanup() {
	set +e
	[ -z "$cluster" ] || "$src/scripts/rtmem-cluster" stop "$dir/cluster" >/dev/null
	[ -z "$swapped" ] || swapoff "$zdev"
	if [ -n "$zdev" ]; then
		zramctl --reset "$zdev"
		# util-linux removes the device on reset: give back one that was there before
		if [ ! -e "/sys/block/${zdev#/dev/}" ] && grep -qx "${zdev#/dev/}" <<<"$zbefore"; then
			cat /sys/class/zram-control/hot_add >/dev/null
		fi
	fi
	[ -z "$cg" ] || [ ! -d "$cg" ] || rmdir "$cg"
	[ -z "$cgmnt" ] || { umount "$cgmnt" && rmdir "$cgmnt"; }
	if [ $failed -eq 0 ]; then rm -rf "$dir"; else echo "usemem-bench: logs in $dir" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

note() { echo "== $*" >&2; }
declare -A skip=()

# run_usemem NAME [PREFIX...]: usemem $passes SIZE (JSON in $dir/NAME.json, output in
# $dir/NAME.out); a failed or mismatching run is reported and remembered.
run_usemem() {
	local name=$1
	shift
	note "$name: $* usemem -p $passes $size"
	local rc=0
	"$@" "$bin/usemem" -p "$passes" --json "$dir/$name.json" "$size" \
		>"$dir/$name.out" 2>&1 || rc=$?
	sed 's/^/   /' "$dir/$name.out" >&2
	if [ $rc -ne 0 ] || ! grep -q " 0 mismatched words" "$dir/$name.out"; then
		echo "usemem-bench: $name failed (exit $rc)" >&2
		failed=1
		rm -f "$dir/$name.json"
	fi
}

# (a) all local
run_usemem local

# (d) the raw userfaultfd floor: threads unpinned (as the engine's), and both on one
# CPU (no cross-CPU wake-up); the region mlocked like the engine's.
note "uffd_floor: $floor_pages pages"
"$bin/uffd_floor" -n $floor_pages -r 3 --mlock --json "$dir/floor.json" >&2
"$bin/uffd_floor" -n $floor_pages -r 3 --mlock --same-cpu 0 --json "$dir/floor1.json" >&2

# (b) rtmem-run against a loopback cluster
b25=$((mib * 25 / 100))M b50=$((mib * 50 / 100))M
note "cluster: 2 donors x $size"
cluster=1
"$src/scripts/rtmem-cluster" start "$dir/cluster" --bin "$bin" --donor-size "$size" \
	>/dev/null || { failed=1; exit 1; }
sock=$dir/cluster/borrower.sock
run_usemem rtmem-25 "$bin/rtmem-run" --socket "$sock" --name ub25 --local-mem $b25 --stats --
run_usemem rtmem-50 "$bin/rtmem-run" --socket "$sock" --name ub50 --local-mem $b50 --stats --
passes=w,r run_usemem rtmem-25-wr "$bin/rtmem-run" --socket "$sock" --name ub25wr \
	--local-mem $b25 --stats --
"$src/scripts/rtmem-cluster" stop "$dir/cluster" >/dev/null
cluster=
# diagnostic: the engine with its in-process store (no borrower, no network), so the
# engine's own share of a fault can be told from the store's
run_usemem rtmem-25-mem "$bin/rtmem-run" --store mem --local-mem $b25 --stats --
passes=w,r run_usemem rtmem-25-mem-wr "$bin/rtmem-run" --store mem --local-mem $b25 --stats --
# before/after in the same run: the same with evictions through the madvise thread
# (RTMEM_FLAGS=nomove: no UFFDIO_MOVE, each madvise waits for the handler to read
# its REMOVE event)
run_usemem rtmem-25-mem-nomove env RTMEM_FLAGS=nomove "$bin/rtmem-run" --store mem \
	--local-mem $b25 --stats --
passes=w,r run_usemem rtmem-25-mem-nomove-wr env RTMEM_FLAGS=nomove "$bin/rtmem-run" \
	--store mem --local-mem $b25 --stats --

# (c) kernel swap to zram (lz4) under a cgroup v1 memory limit. The set-up functions
# run in this shell (their state is needed by the trap) and leave a reason in $why.
why=
zram_setup() {
	[ "$(id -u)" = 0 ] || { why="not root"; return 1; }
	if [ ! -e /sys/class/zram-control ] && ! modprobe zram 2>/dev/null; then
		why="no zram in this kernel (no /sys/class/zram-control, modprobe zram failed)"
		return 1
	fi
	zbefore=$(ls /sys/block)
	local o
	if ! o=$(zramctl --find --size $((bytes * 2)) --algorithm lz4 2>&1); then
		why="zramctl --find --algorithm lz4: $o"
		return 1
	fi
	zdev=$o
	mkswap "$zdev" >/dev/null 2>&1 || { why="mkswap $zdev failed"; return 1; }
	swapon -p 100 "$zdev" 2>/dev/null || { why="swapon $zdev failed"; return 1; }
	swapped=1
}
memcg_setup() {
	local m
	m=$(awk '$3 == "cgroup" && $4 ~ /(^|,)memory(,|$)/ { print $2; exit }' /proc/mounts)
	if [ -z "$m" ]; then
		m=/run/rtmem-bench-memcg
		mkdir -p $m
		if ! mount -t cgroup -o memory none $m 2>/dev/null; then
			rmdir $m
			why="the cgroup v1 memory controller is not mounted and cannot be (it is"
			why+=" bound to the cgroup v2 hierarchy)"
			return 1
		fi
		cgmnt=$m
	fi
	[ -w "$m/memory.limit_in_bytes" ] || [ -e "$m/memory.usage_in_bytes" ] ||
		{ why="$m has no v1 memory files"; return 1; }
	cg=$m/rtmem-usemem-bench.$$
	mkdir "$cg" || { why="cannot create $cg"; cg=; return 1; }
	echo 100 >"$cg/memory.swappiness" || { why="cannot set memory.swappiness"; return 1; }
}
in_memcg() { # BUDGET_BYTES CMD...: run CMD in the bench cgroup with that limit
	[ -n "$cg" ] && [ -d "$cg" ] || return 1
	echo "$1" >"$cg/memory.limit_in_bytes"
	shift
	sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cg" "$@"
}
if zram_setup && memcg_setup; then
	note "zram: $zdev ($((bytes * 2 >> 20)) MiB, lz4), cgroup $cg (swappiness 100)"
	run_usemem zram-25 in_memcg $((mib * 25 / 100 << 20))
	grep -E "^(total_)?(swap|pgmajfault) " "$cg/memory.stat" | sed 's/^/   /' >&2 || true
	run_usemem zram-50 in_memcg $((mib * 50 / 100 << 20))
	zramctl "$zdev" | sed 's/^/   /' >&2 || true
else
	skip[zram]=$why
fi
for k in "${!skip[@]}"; do echo "usemem-bench: skipping $k rows: ${skip[$k]}" >&2; done

# table and JSON
"$py" - "$dir" "$out" "$size" "$bytes" "${skip[zram]:-}" "$(uname -r)" "$(nproc)" \
	"$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)" <<'EOF'
import json, os, re, sys, time
d, out, size, nbytes, zskip, kernel, ncpu, rev = sys.argv[1:9]
nbytes = int(nbytes)

def load(name):
    p = os.path.join(d, name + ".json")
    if not os.path.exists(p):
        return None
    j = json.load(open(p))
    stats = None
    o = os.path.join(d, name + ".out")
    if os.path.exists(o):
        for line in open(o):
            if re.match(r"rtmem\[\d+\] exit:", line):
                stats = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
    j["stats"] = stats
    return j

cfgs = ["local", "rtmem-25", "rtmem-50", "rtmem-25-mem", "rtmem-25-mem-nomove", "zram-25",
        "zram-50"]
runs = {c: load(c) for c in cfgs}
wr = load("rtmem-25-wr")
wrm = load("rtmem-25-mem-wr")
wrmn = load("rtmem-25-mem-nomove-wr")
def secs(c, p):
    r = runs.get(c)
    if not r:
        return None
    return sum(x["seconds"] for x in r["passes"] if x["pass"] == p)

def zref(c):
    return {"rtmem-25": "zram-25", "rtmem-50": "zram-50", "rtmem-25-mem": "zram-25",
            "rtmem-25-mem-nomove": "zram-25"}.get(
        c, c if c.startswith("zram") else None)

rows = []
print()
print("usemem %s, passes w (seq write), r (seq read+verify), randr (random read+verify), "
      "1 thread; kernel %s, %s CPUs, rev %s" % (size, kernel, ncpu, rev))
print("%-20s %-6s %9s %9s %14s" % ("config", "pass", "seconds", "MB/s", "ratio vs zram"))
for c in cfgs:
    r = runs[c]
    if r is None:
        why = "skipped: " + zskip if c.startswith("zram") and zskip else "failed (see log)"
        print("%-20s %-6s %s" % (c, "-", why))
        continue
    allp = [x["pass"] for x in r["passes"]] + ["seq"]
    for p in allp:
        if p == "seq":
            s = secs(c, "w") + secs(c, "r")
            mbs = 2 * nbytes / 1048576 / s
        else:
            x = next(x for x in r["passes"] if x["pass"] == p)
            s, mbs = x["seconds"], x["mbs"]
        z = zref(c)
        zs = None
        if z and runs.get(z):
            zs = secs(z, "w") + secs(z, "r") if p == "seq" else secs(z, p)
        ratio = s / zs if zs else None
        rows.append({"config": c, "pass": "w+r" if p == "seq" else p, "seconds": round(s, 4),
                     "mbs": round(mbs, 1), "ratio_vs_zram": round(ratio, 3) if ratio else None})
        print("%-20s %-6s %9.3f %9.1f %14s" % (c, "w+r" if p == "seq" else p, s, mbs,
              "%.2f" % ratio if ratio else "-"))

floors = {}
for name, f in (("unpinned", "floor.json"), ("same_cpu", "floor1.json")):
    p = os.path.join(d, f)
    if os.path.exists(p):
        j = json.load(open(p))
        agg = {}
        for pname in ("seq", "random"):
            ps = [x for x in j["passes"] if x["pass"] == pname]
            ps_p50 = sorted(x["p50_us"] for x in ps)
            agg[pname] = {"mean_us": round(sum(x["mean_us"] for x in ps) / len(ps), 3),
                          "p50_us": ps_p50[len(ps_p50) // 2]}
        j["summary"] = agg
        floors[name] = j
print()
print("raw userfaultfd floor (uffd_floor, %s pages, mlocked, 3 repeats):" %
      (floors["unpinned"]["pages"] if floors else "?"))
print("%-22s %-7s %9s %9s" % ("threads", "pass", "mean us", "p50 us"))
for name, j in floors.items():
    for pname, a in j["summary"].items():
        print("%-22s %-7s %9.2f %9.2f" % (name.replace("_", " "), pname, a["mean_us"], a["p50_us"]))

# the engine's cost per random fault: extra time of the random pass over the local
# run, divided by the faults of that pass (rtmem-25 minus the same run without it)
def engine_cost(full, wronly):
    if not (full and wronly and runs["local"] and full["stats"] and wronly["stats"]):
        return None
    f = full["stats"]["faults"] - wronly["stats"]["faults"]
    pf = full["stats"]["prefetched"] - wronly["stats"]["prefetched"]
    extra = (sum(x["seconds"] for x in full["passes"] if x["pass"] == "randr")
             - secs("local", "randr"))
    if f <= 0:
        return None
    return {"randr_faults": f, "randr_prefetched": pf, "randr_extra_seconds": round(extra, 4),
            "us_per_fault": round(extra / f * 1e6, 3)}
eng = engine_cost(runs["rtmem-25"], wr)
engm = engine_cost(runs["rtmem-25-mem"], wrm)
engmn = engine_cost(runs["rtmem-25-mem-nomove"], wrmn)
print()
goals = {}
def goal(key, text, val, limit):
    ok = val is not None and val <= limit
    goals[key] = {"value": round(val, 3) if val is not None else None, "limit": limit,
                  "met": ok if val is not None else None}
    print("goal %-52s %8s  (limit %.2f) %s" % (text, "%.2f" % val if val is not None else "n/a",
          limit, "" if val is None else ("met" if ok else "MISSED by %.0f%%" % ((val / limit - 1) * 100))))
def ratio(c, z, p):
    a, b = (secs(c, "w") + secs(c, "r"), secs(z, "w") + secs(z, "r")) if p == "seq" else (secs(c, p), secs(z, p))
    return a / b if a is not None and b else None
goal("seq_25", "rtmem-25 / zram-25, sequential (w+r) time", ratio("rtmem-25", "zram-25", "seq"), 0.5)
goal("seq_read_25", "rtmem-25 / zram-25, sequential read r", ratio("rtmem-25", "zram-25", "r"), 0.5)
goal("random_25", "rtmem-25 / zram-25, random read randr", ratio("rtmem-25", "zram-25", "randr"), 1.5)
# the floor is the lower of the two raw loops (unpinned threads wake across vCPUs,
# which in a VM costs 30-40 us when the other vCPU idles; on one CPU it is 2 switches)
fls = {n: j["summary"]["random"]["mean_us"] for n, j in floors.items()}
fl = min(fls.values()) if fls else None
for n, e in (("tmem store", eng), ("mem store (diagnostic)", engm),
             ("mem store, nomove (before)", engmn)):
    if e:
        print("engine, %s: %d faults in randr (+%d prefetched), %.3f s over local -> "
              "%.2f us per fault" % (n, e["randr_faults"], e["randr_prefetched"],
                                    e["randr_extra_seconds"], e["us_per_fault"]))
goal("fault_vs_floor", "engine random fault / raw uffd floor (random, mean)",
     eng["us_per_fault"] / fl if eng and fl else None, 1.25)
for n, v in fls.items():
    print("     vs the %s floor (%.2f us): tmem store %s, mem store %s" % (
        n.replace("_", " "), v, "%.2fx" % (eng["us_per_fault"] / v) if eng else "n/a",
        "%.2fx" % (engm["us_per_fault"] / v) if engm else "n/a"))
res = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "kernel": kernel, "cpus": int(ncpu),
       "rev": rev, "size": size, "size_bytes": nbytes, "passes": "w,r,randr", "threads": 1,
       "rows": rows, "runs": runs, "rtmem_25_wr": wr, "uffd_floor": floors,
       "rtmem_25_mem_wr": wrm,
       "floor_random_mean_us": fl, "engine_random_fault": eng, "engine_random_fault_mem_store": engm,
       "engine_random_fault_mem_store_nomove": engmn, "rtmem_25_mem_nomove_wr": wrmn, "goals": goals, "skipped": {"zram": zskip} if zskip else {}}
json.dump(res, open(out, "w"), indent=1)
print("\nJSON in %s" % out)
EOF
[ $failed -eq 0 ] || { echo "usemem-bench: some runs failed (see above)" >&2; exit 1; }
