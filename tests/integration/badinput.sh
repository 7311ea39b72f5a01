#!/usr/bin/env bash
# badinput.sh - garbage on the client socket and the control port closes that
# connection with a logged reason while the daemons keep serving; bad config files
# give a one-line error and a non-zero exit.
. "$(dirname "$0")/lib.sh" "$1"
cluster_start
note "garbage on the client socket"
"$CHECK" garbage || fail "garbage client scenario"
note "garbage on the control port"
host=$(sed -n 's/^master = \([0-9.]*\):[0-9]*$/\1/p' "$CFG") # loopback or --netns
port=$(sed -n 's/^master = [0-9.]*:\([0-9]*\)$/\1/p' "$CFG")
head -c 4096 /dev/urandom >/dev/tcp/"$host"/"$port" || true
printf '\x00\x00\x00\x10\x00\x63\x00\x00garbagegarbage' >/dev/tcp/"$host"/"$port" || true
printf '\x00\x00\x00\x08\x00\x01\x00\x00' >/dev/tcp/"$host"/"$port" || true
sleep 0.5
ctl status >/dev/null || fail "master stopped serving after garbage"
"$CHECK" ephemeral 2000 || fail "cluster broken after garbage"
grep -Eqi "closing|close|malformed|bad|invalid|unknown" "$DIR/master.log" || fail "master logged no reason"
note "bad config files"
bad=$DIR/bad
mkdir -p "$bad"
good() { sed -n '1,200p' "$CFG"; }
good | sed '/^pool_size/d' >"$bad/missing.conf"
good | sed 's/^master = .*/master = 300.1.2.3:99999/' >"$bad/address.conf"
{ good; printf '\n[node.1]\nrole = donor\naddress = 127.0.0.1:1\npool_size = 64M\n'; } >"$bad/dup.conf"
good | sed 's/^slab_size = .*/slab_size = 3M/' >"$bad/slab.conf"
printf '[cluster\nmaster=1\n' >"$bad/syntax.conf"
for f in missing address dup slab syntax; do
	for d in "rtmem-master -c $bad/$f.conf" "rtmem-donor -c $bad/$f.conf -n 1" \
		 "rtmem-borrower -c $bad/$f.conf -n 10"; do
		set +e
		msg=$(timeout 10 $BIN/$d 2>&1 >/dev/null)
		rc=$?
		set -e
		lines=$(printf '%s\n' "$msg" | grep -c . || true)
		echo "$f: $d -> exit $rc: $msg"
		[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "$d accepted a bad config"
		[ "$lines" -eq 1 ] || fail "$d: want a one-line error, got $lines lines"
	done
done
echo "PASS badinput"
