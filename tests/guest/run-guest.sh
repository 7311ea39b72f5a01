#!/usr/bin/env bash
# run-guest.sh - boot Debian's stock kernel under QEMU (TCG, no KVM needed) with a
# throw-away initramfs holding the project's binaries, run one bash script inside the
# guest as root, power off, and exit with that script's status.
#
# Usage:
#   tests/guest/run-guest.sh --bin BUILD/bin --script GUEST_SCRIPT [options] [-- ARGS...]
# Options:
#   --mem SIZE          guest RAM (QEMU -m syntax), default 2G
#   --smp N             guest CPUs, default 2
#   --timeout S         wall-clock limit for the whole boot + script, default 600
#   --qemu-arg ARG      one extra QEMU argument (repeatable, order kept). A -nic or
#                       -netdev among them replaces the default -nic none, e.g.
#                       --qemu-arg -nic --qemu-arg user,model=virtio-net-pci
#   --file HOST[:GUEST] copy a host file into the guest (default GUEST: /rtmem/files/NAME)
#   --log FILE          also write the console (without timestamps) to FILE
#   --append ARGS       extra kernel command line
#   -- ARGS...          arguments passed to GUEST_SCRIPT
#
# Inside the guest: bash runs GUEST_SCRIPT from / with PATH=/rtmem/bin:/usr/bin. /proc,
# /sys, /dev (devtmpfs), /tmp, /run, /dev/shm are mounted, lo is up, these modules are
# loaded: crc32_generic rdma_rxe rdma_ucm ib_uverbs dummy(numdummies=0) veth bridge
# virtio_pci virtio_net virtio_blk nbd. Available: busybox applets, bash, iproute2 as
# /usr/bin/ip (call it by that path from busybox sh), rdma, ibv_devices, ibv_devinfo,
# the rxe verbs provider, nbd-client, mkswap/swapon/swapoff, timeout, /usr/bin/python3
# (json + sys only), every file of BUILD/bin in /rtmem/bin, the project's shared
# libraries (also in the default library path), and the source trees scripts/ and
# tests/ at /rtmem/scripts and /rtmem/tests. The guest kernel is Debian 12's (6.1).
#
# Exit status: the guest script's, or 124 when the guest printed no result (timeout,
# kernel panic, hang), or 125 on a host-side setup error. QEMU is always killed on exit.
#
# Cache: ${RTMEM_GUEST_CACHE:-/var/cache/rtmem-guest} keeps the extracted kernel
# package (the one linux-image-amd64 currently depends on, or $RTMEM_GUEST_KPKG) and the
# system part of the initramfs; the project part is rebuilt every run (about 1 s).
# Needs the Debian packages listed in scripts/install-deps.sh (qemu-system-x86,
# busybox-static, cpio, kmod, rdma-core, ibverbs-utils, ibverbs-providers, iproute2,
# nbd-client). RTMEM_GUEST_KEEP=1 keeps the per-run work directory.
set -euo pipefail

SELF=$(readlink -f "$0")
SRC=$(cd "$(dirname "$SELF")/../.." && pwd)
CACHE=${RTMEM_GUEST_CACHE:-/var/cache/rtmem-guest}
MODULES="crc32_generic rdma_rxe rdma_ucm ib_uverbs dummy veth bridge virtio_pci virtio_net virtio_blk nbd"
MARK=@@RTMEM-GUEST-RESULT

die() { echo "run-guest: $*" >&2; exit 125; }
say() { echo "run-guest: $*"; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
secs_since() { local d=$(($(now_ms) - $1)); printf '%d.%01d' $((d / 1000)) $((d % 1000 / 100)); }

bin="" script="" mem=2G smp=2 timeout_s=600 log="" append=""
qemu_extra=() files=() gargs=() own_nic=0
while [ $# -gt 0 ]; do
	case $1 in
	--bin) bin=$2; shift 2 ;;
	--script) script=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--smp) smp=$2; shift 2 ;;
	--timeout) timeout_s=$2; shift 2 ;;
	--qemu-arg)
		qemu_extra+=("$2")
		case $2 in -nic | -netdev) own_nic=1 ;; esac
		shift 2 ;;
	--file) files+=("$2"); shift 2 ;;
	--log) log=$2; shift 2 ;;
	--append) append=$2; shift 2 ;;
	--) shift; gargs=("$@"); break ;;
	*) die "unknown argument '$1' (see the usage comment in $SELF)" ;;
	esac
done
[ -n "$bin" ] && [ -d "$bin" ] || die "--bin BUILD/bin: directory required"
[ -n "$script" ] && [ -f "$script" ] || die "--script GUEST_SCRIPT: file required"
[[ $timeout_s =~ ^[0-9]+$ ]] || die "--timeout wants seconds"
bin=$(cd "$bin" && pwd)
build=$(dirname "$bin")
for t in qemu-system-x86_64 cpio depmod modprobe busybox rdma ibv_devinfo nbd-client apt-get dpkg-deb; do
	command -v "$t" >/dev/null || die "$t not found: run scripts/install-deps.sh"
done
[ -x /usr/bin/ip ] || die "/usr/bin/ip (iproute2) not found"
T0=$(now_ms)

# ---- kernel: the package behind linux-image-amd64, extracted, never installed --------
mkdir -p "$CACHE" || die "cannot create cache $CACHE"
exec 9>"$CACHE/.lock"
flock 9
kpkg=${RTMEM_GUEST_KPKG:-$(apt-cache depends linux-image-amd64 2>/dev/null |
	awk '/Depends: linux-image-[0-9]/{print $2; exit}')}
if [ -z "$kpkg" ]; then # no apt lists: use whatever kernel the cache holds
	kpkg=$(ls -d "$CACHE"/kernel/linux-image-* 2>/dev/null | tail -n1 | xargs -r basename)
	[ -n "$kpkg" ] || die "cannot find the linux-image-amd64 dependency (apt-get update?)"
fi
KDIR=$CACHE/kernel/$kpkg
if [ ! -f "$KDIR/.done" ]; then
	say "downloading $kpkg into $CACHE (once)"
	rm -rf "$KDIR" "$KDIR.tmp"
	mkdir -p "$KDIR.tmp/deb"
	(cd "$KDIR.tmp/deb" && apt-get download -q "$kpkg" >/dev/null 2>&1) ||
		(apt-get update -qq && cd "$KDIR.tmp/deb" && apt-get download -q "$kpkg" >/dev/null) ||
		die "apt-get download $kpkg failed"
	dpkg-deb -x "$KDIR.tmp"/deb/*.deb "$KDIR.tmp/root" || die "dpkg-deb -x failed"
	rm -rf "$KDIR.tmp/deb"
	depmod -b "$KDIR.tmp/root" "$(ls "$KDIR.tmp/root/lib/modules" | head -n1)" || die "depmod failed"
	touch "$KDIR.tmp/.done"
	mv "$KDIR.tmp" "$KDIR"
fi
KVER=$(ls "$KDIR/root/lib/modules" | head -n1)
VMLINUZ=$KDIR/root/boot/vmlinuz-$KVER
[ -f "$VMLINUZ" ] || die "no kernel image in $KDIR"

# copy_libs ROOT FILE...: the ldd closure of FILEs into ROOT (same paths, /usr-merged)
copy_libs() {
	local root=$1 l dst
	shift
	for f in "$@"; do ldd "$f" 2>/dev/null || true; done | grep -o '/[^ ]*\.so[^ ]*' | sort -u |
		while read -r l; do
			dst=$root/usr${l#/usr}
			[ -e "$dst" ] && continue
			[ -e "$root/base-files/usr${l#/usr}" ] && continue
			mkdir -p "$(dirname "$dst")"
			cp -L "$l" "$dst"
		done
}

# ---- system part of the initramfs: cached, keyed by kernel, this script, tool versions
key=$( {
	echo "$kpkg $KVER"
	cat "$SELF"
	dpkg-query -W busybox-static bash iproute2 rdma-core ibverbs-utils ibverbs-providers \
		nbd-client kmod util-linux coreutils python3.11-minimal libc6 2>/dev/null
} | sha256sum | cut -c1-16)
BASE=$CACHE/base-$key.cpio.gz
if [ ! -f "$BASE" ]; then
	say "building the system initramfs ($KVER)"
	R=$(mktemp -d "$CACHE/base.XXXXXX")
	trap 'rm -rf "$R"' EXIT
	mkdir -p "$R"/usr/{bin,lib/x86_64-linux-gnu/libibverbs,lib64} "$R"/{proc,sys,dev,tmp,run,etc/libibverbs.d,root}
	for d in bin sbin; do ln -s usr/bin "$R/$d"; done
	for d in lib lib64; do ln -s usr/$d "$R/$d"; done
	ln -s bin "$R/usr/sbin"
	cp /usr/bin/busybox "$R/usr/bin/"
	for t in bash /usr/bin/ip rdma ibv_devices ibv_devinfo nbd-client mkswap swapon swapoff \
		timeout kmod /usr/bin/python3; do
		cp -L "$(command -v "$t")" "$R/usr/bin/"
	done
	for t in modprobe insmod rmmod lsmod modinfo depmod; do ln -sf kmod "$R/usr/bin/$t"; done
	for a in $(busybox --list); do [ -e "$R/usr/bin/$a" ] || ln -s busybox "$R/usr/bin/$a"; done
	cp -L /lib/x86_64-linux-gnu/libgcc_s.so.1 "$R/usr/lib/x86_64-linux-gnu/"
	cp /usr/lib/x86_64-linux-gnu/libibverbs/librxe-rdmav*.so "$R/usr/lib/x86_64-linux-gnu/libibverbs/"
	cp /etc/libibverbs.d/rxe.driver "$R/etc/libibverbs.d/"
	# python3: the stdlib modules `import json, sys` pulls in, nothing else
	/usr/bin/python3 -c 'import json, sys, encodings.ascii, encodings.latin_1
for m in list(sys.modules.values()):
    f = getattr(m, "__file__", None)
    if f and "/dist-packages/" not in f and "sitecustomize" not in f: print(f)' |
		sort -u | while read -r f; do
			mkdir -p "$(dirname "$R/usr${f#/usr}")"
			cp -L "$f" "$R/usr${f#/usr}"
		done
	copy_libs "$R" "$R"/usr/bin/* "$R"/usr/lib/x86_64-linux-gnu/libibverbs/* \
		"$R"/usr/lib/python3*/lib-dynload/*.so
	# kernel modules: the closure of $MODULES, depmod'ed for the guest tree
	for m in $MODULES; do
		modprobe -d "$KDIR/root" -S "$KVER" --show-depends "$m" || die "no module $m in $KVER"
	done | awk '/^insmod/{print $2}' | sort -u | while read -r ko; do
		rel=${ko#"$KDIR/root/"}
		mkdir -p "$R/usr/$(dirname "${rel#/}")"
		cp "$ko" "$R/usr/${rel#/}"
	done
	mkdir -p "$R/usr/lib/modules/$KVER"
	cp "$KDIR/root/lib/modules/$KVER"/modules.{order,builtin,builtin.modinfo} "$R/usr/lib/modules/$KVER/"
	depmod -b "$R" "$KVER"
	echo "root:x:0:0:root:/root:/bin/bash" >"$R/etc/passwd"
	echo "root:x:0:" >"$R/etc/group"
	(cd "$R" && find . -path ./base-files -prune -o -print | LC_ALL=C sort |
		cpio -o -H newc --quiet | gzip -1) >"$R.cpio.gz"
	(cd "$R" && find . -type f -o -type l) >"$BASE.list"
	mv "$R.cpio.gz" "$BASE"
	rm -rf "$R"
	trap - EXIT
fi
touch "$BASE" "$BASE.list"
# system parts of other script versions (other branches may still use them): kept a day
find "$CACHE" -maxdepth 1 -name 'base-*.cpio.gz*' -mtime +1 -delete 2>/dev/null || true
flock -u 9

# ---- project part: rebuilt every run -------------------------------------------------
W=$(mktemp -d "${TMPDIR:-/tmp}/rtmem-guest.XXXXXX")
qpid=""
cleanup() {
	local rc=$?
	if [ -s "$W/qemu.pid" ]; then
		qpid=$(cat "$W/qemu.pid")
		if kill -0 "$qpid" 2>/dev/null; then
			kill "$qpid" 2>/dev/null || true
			for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$qpid" 2>/dev/null || break; sleep 0.2; done
			kill -9 "$qpid" 2>/dev/null || true
		fi
	fi
	[ "${RTMEM_GUEST_KEEP:-0}" = 1 ] && echo "run-guest: kept $W" >&2 || rm -rf "$W"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP
P=$W/root
mkdir -p "$P"/rtmem/{bin,lib,files} "$P/usr/lib/x86_64-linux-gnu" "$P/base-files/usr"
# the base's file list, so copy_libs skips what the system part already has
while read -r f; do
	f=${f#./}
	case $f in usr/lib*) mkdir -p "$P/base-files/$(dirname "$f")" && : >"$P/base-files/$f" ;; esac
done <"$BASE.list"
cp -a "$bin"/. "$P/rtmem/bin/"
find "$build" -name 'lib*.so*' -not -path '*/CMakeFiles/*' -not -path "$bin/*" \
	\( -type f -o -type l \) -exec cp -a {} "$P/rtmem/lib/" \; 2>/dev/null || true
cp -a "$P"/rtmem/lib/. "$P/usr/lib/x86_64-linux-gnu/" 2>/dev/null || true
cp -a "$SRC/scripts" "$SRC/tests" "$P/rtmem/"
copy_libs "$P" $(find "$P/rtmem/bin" "$P/rtmem/lib" -type f)
rm -rf "$P/base-files"
cp "$script" "$P/rtmem/guest-script"
for spec in ${files[@]+"${files[@]}"}; do
	h=${spec%%:*}
	g=${spec#*:}
	[ "$g" = "$spec" ] && g=/rtmem/files/$(basename "$h")
	[ -e "$h" ] || die "--file $h: no such file"
	mkdir -p "$P/$(dirname "$g")"
	cp -a "$h" "$P/$g"
done
: >"$P/rtmem/guest-args"
for a in ${gargs[@]+"${gargs[@]}"}; do printf '%q ' "$a" >>"$P/rtmem/guest-args"; done
cat >"$P/init" <<EOF
#!/bin/busybox sh
export PATH=/rtmem/bin:/usr/bin HOME=/root TERM=dumb LANG=C.UTF-8
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/shm /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t devpts devpts /dev/pts
/usr/bin/ip link set lo up
for m in $MODULES; do
	case \$m in dummy) /usr/bin/modprobe dummy numdummies=0 ;; *) /usr/bin/modprobe \$m ;; esac ||
		echo "run-guest: modprobe \$m failed"
done
echo "@@RTMEM-GUEST-BOOTED uptime=\$(cut -d' ' -f1 /proc/uptime)"
cd /
eval "set -- \$(cat /rtmem/guest-args)"
/usr/bin/bash /rtmem/guest-script "\$@" </dev/null
rc=\$?
sync
echo "$MARK rc=\$rc uptime=\$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
EOF
chmod +x "$P/init"
(cd "$P" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) >"$W/project.cpio.gz"
cat "$BASE" "$W/project.cpio.gz" >"$W/initrd.cpio.gz"
rm -rf "$P"
say "initramfs ready in $(secs_since "$T0")s ($(du -h "$W/initrd.cpio.gz" | cut -f1), kernel $KVER)"

# ---- boot -----------------------------------------------------------------------------
qemu=(qemu-system-x86_64 -machine q35 -accel tcg -cpu max -smp "$smp" -m "$mem"
	-display none -monitor none -serial stdio -no-reboot -pidfile "$W/qemu.pid"
	-kernel "$VMLINUZ" -initrd "$W/initrd.cpio.gz"
	-append "console=ttyS0 panic=-1 quiet rdinit=/init $append")
[ $own_nic = 1 ] || qemu+=(-nic none)
qemu+=(${qemu_extra[@]+"${qemu_extra[@]}"})
[ -n "$log" ] && : >"$log"
TB=$(now_ms)
# in the background + wait, so that a TERM from ctest runs the cleanup trap at once
(
	timeout -k 10 "$timeout_s" "${qemu[@]}" </dev/null 2>&1 || echo "run-guest: qemu exited with $?"
) | while IFS= read -r line; do
	line=${line%$'\r'}
	[ -n "$log" ] && printf '%s\n' "$line" >>"$log"
	printf '%s\n' "$line" >>"$W/console.log"
	printf '[%6s] %s\n' "$(secs_since "$TB")" "$line"
done &
wait $! || true
res=$(sed -n "s/^.*$MARK rc=\([0-9]*\).*/\1/p" "$W/console.log" | tail -n1)
if [ -z "$res" ]; then
	say "FAIL: no result from the guest within ${timeout_s}s (timeout, hang or panic); wall $(secs_since "$TB")s"
	exit 124
fi
say "guest script exited $res; guest wall $(secs_since "$TB")s, total $(secs_since "$T0")s"
exit "$res"
