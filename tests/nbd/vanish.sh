#!/usr/bin/env bash
# vanish.sh - clients that die mid-transfer leave the borrower healthy: no leaked
# connection (its fd count returns to what it was), data written before stays, a
# write cut short is never applied, the export keeps serving new clients.
# Connections are counted on the NBD sockets themselves (ss), not as borrower fds,
# which also change when a donor's data connection opens at its first grant.
. "$(dirname "$0")/lib-nbd.sh" "$1"
need_tools nbdcopy nbdinfo ss
nbd_start --export keep=128M --export scratch=256M
W=$DIR/work
mkdir -p "$W"
fds() { # NBD connections the borrower holds (unix + TCP)
	echo $(($(ss -xn | grep -c " $NSOCK ") +
		$(ss -Htn state established "( sport = :$NPORT )" | wc -l)))
}

head -c 64M /dev/urandom >"$W/a.bin"
head -c 64M /dev/zero >>"$W/a.bin"
nbdcopy --flush "$W/a.bin" "$(uri_unix keep)" || fail "nbdcopy in"
fd0=$(fds)

note "nbdcopy killed mid-transfer, 5 times each way"
head -c 192M /dev/urandom >"$W/b.bin"
for d in 0.05 0.1 0.2 0.3 0.5; do
	nbdcopy "$W/b.bin" "$(uri_unix scratch)" &
	sleep "$d"
	kill -9 $! 2>/dev/null || true
	wait $! 2>/dev/null || true
	nbdcopy "$(uri_tcp keep)" - >/dev/null &
	sleep "$d"
	kill -9 $! 2>/dev/null || true
	wait $! 2>/dev/null || true
done
note "raw clients vanishing at every stage (cut writes aimed at 64-84 MiB of keep)"
$PY "$(dirname "$0")/vanish.py" "$NSOCK" keep || fail "vanish.py"

note "the borrower is healthy"
for _ in $(seq 50); do [ "$(fds)" -le "$fd0" ] && break; sleep 0.1; done
echo "borrower NBD connections: $fd0 before, $(fds) after"
[ "$(fds)" -le "$fd0" ] || fail "connections leaked: $(fds) NBD connections, $fd0 before"
borrower_alive || fail "borrower died"
nbdcopy "$(uri_unix keep)" "$W/out.bin" || fail "nbdcopy out"
cmp "$W/a.bin" "$W/out.bin" || fail "keep changed: data before the kills or a cut write"
nbdcopy "$W/b.bin" "$(uri_tcp scratch)" || fail "nbdcopy into scratch after the kills"
nbdinfo --list "$(uri_tcp keep)" >/dev/null || fail "nbdinfo after the kills"
grep "WARN\|ERROR" "$DIR/borrower.log" | grep -v "mlockall" && fail "warnings in the borrower log"
echo "PASS nbd vanish"
