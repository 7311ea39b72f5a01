#!/usr/bin/env bash
# install-deps.sh - the Debian 12 packages rtmem builds, tests and benchmarks with.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libinih-dev liburing-dev libnuma-dev
      libcmocka-dev libjemalloc-dev python3 iproute2 procps valgrind
      libnbd-bin python3-libnbd qemu-utils nbdkit fio
      qemu-system-x86 busybox-static cpio kmod nbd-client rdma-core ibverbs-utils
      ibverbs-providers libibverbs-dev librdmacm-dev)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "dependencies present: ${pkgs[*]}"
