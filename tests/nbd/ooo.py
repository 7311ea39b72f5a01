#!/usr/bin/python3
# ooo.py - several commands in flight per connection, answered out of order where
# the protocol allows, run by ooo.sh against an export whose target is already
# full, so every new block goes to the backing file (io_uring, answered when the
# write completes) while blocks written first stay in remote memory.
#   ooo.py UNIX_SOCKET EXPORT REMOTE_BYTES [REMOTE_EXPORT]
# Raw socket: a WRITE to the file sent together with READs of remote blocks gets
# its reply after theirs (retried a few times: the READs must arrive in the same
# receive), a READ of the block just written returns the new data, a FLUSH is
# answered after every write before it; clients that vanish with file writes in
# flight leave the server healthy and each block new or untouched. libnbd:
# hundreds of mixed aio commands in flight, every reply checked against its
# request's data. REMOTE_EXPORT (no target, every block remote): a 32 MiB READ
# and small READs behind it (small replies may come first: the count is printed,
# not asserted), overlapping and FLUSH ordering, vanishing clients.
import os
import random
import socket
import struct
import sys

import nbd
from nbdcheck import check, failures, recvall

sock_path, export, remote = sys.argv[1], sys.argv[2], int(sys.argv[3])
REQ, SIMPLE = 0x25609513, 0x67446698
READ, WRITE, FLUSH = 0, 1, 3




def stamp(off):  # the expected content of a block written by this test
    return struct.pack(">Q", off) * 512


def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(sock_path)
    recvall(s, 18)
    s.sendall(struct.pack(">I", 3))  # fixed newstyle, no zeroes
    name = export.encode()
    s.sendall(struct.pack(">QII", 0x49484156454F5054, 1, len(name)) + name)
    recvall(s, 10)  # EXPORT_NAME: simple replies
    return s


def req(typ, cookie, off, ln, payload=b""):
    return struct.pack(">IHHQQI", REQ, 0, typ, cookie, off, ln) + payload


def replies(s, want):
    """read len(want) simple replies; want: cookie -> expected data (or None)"""
    order = []
    for _ in range(len(want)):
        magic, err, cookie = struct.unpack(">IIQ", recvall(s, 16))
        assert magic == SIMPLE and err == 0, (magic, err, cookie)
        exp = want[cookie]
        if exp is not None:
            got = recvall(s, len(exp))
            check(got == exp, "cookie %d: data matches its request" % cookie)
        order.append(cookie)
    return order


def with_reads(msg, want, n, span):
    """@msg and @want (cookie -> data) with @n 4 KiB READs of stamped blocks below
    @span, cookies 10 + i"""
    for i in range(n):
        off = random.randrange(span // 4096) * 4096
        msg += req(READ, 10 + i, off, 4096)
        want[10 + i] = stamp(off)
    return msg


s = connect()
# remote blocks: the first REMOTE bytes were written by ooo.sh (stamped)
nfile = remote // 4096 + 64  # a block beyond the target: goes to the file
seen_ooo = False
for attempt in range(8):
    blk = (nfile + attempt * 8) * 4096
    want = {1: None}
    s.sendall(with_reads(req(WRITE, 1, blk, 4096, stamp(blk)), want, 8, remote))
    order = replies(s, want)
    print("     attempt %d: reply order %s" % (attempt, order))
    if order[0] != 1:
        seen_ooo = True
        break
check(seen_ooo, "a file WRITE is answered after the remote READs sent behind it")

def overlap(s, blk, what):
    """read-after-write and write-after-write of blocks at @blk, in one send"""
    msg = req(WRITE, 1, blk, 4096, b"\x11" * 4096) + req(READ, 2, blk, 4096)
    msg += req(WRITE, 3, blk, 4096, b"\x22" * 4096) + req(READ, 4, blk, 4096)
    msg += req(WRITE, 5, blk + 4096, 8192, b"\x33" * 8192) + req(READ, 6, blk, 12288)
    s.sendall(msg)
    replies(s, {1: None, 2: b"\x11" * 4096, 3: None, 4: b"\x22" * 4096, 5: None,
                6: b"\x22" * 4096 + b"\x33" * 8192})
    check(True, what + "overlapping commands in one send see each other in order")


overlap(s, (nfile + 100) * 4096, "")

# FLUSH after file writes: answered after all of them
msg = b""
for i in range(16):
    off = (nfile + 200 + i) * 4096
    msg += req(WRITE, 100 + i, off, 4096, stamp(off))
msg += req(FLUSH, 999, 0, 0)
s.sendall(msg)
want = {100 + i: None for i in range(16)}
want[999] = None
order = replies(s, want)
check(order[-1] == 999, "FLUSH answered after the 16 writes before it")
s.sendall(req(2, 0, 0, 0))  # DISC
s.close()

# a client that vanishes with file writes in flight: their completions find no
# connection; each block then holds the new data or (never applied) zeros
vb = nfile + 300
for _ in range(3):
    s = connect()
    s.sendall(b"".join(req(WRITE, i, (vb + i) * 4096, 4096, stamp((vb + i) * 4096))
                       for i in range(64)) + req(READ, 99, 0, 4096))
    s.close()
s = connect()
s.sendall(b"".join(req(READ, i, (vb + i) * 4096, 4096) for i in range(64)))
got = {}
for _ in range(64):
    magic, err, cookie = struct.unpack(">IIQ", recvall(s, 16))
    got[cookie] = recvall(s, 4096)
check(all(got[i] in (stamp((vb + i) * 4096), bytes(4096)) for i in range(64)),
      "writes of vanished clients: new data or zeros, server still answers")
s.close()

# libnbd: many commands in flight, mixed, each reply checked
h = nbd.NBD()
h.connect_uri("nbd+unix:///%s?socket=%s" % (export, sock_path))
rnd = random.Random(7)
model = {}  # block -> bytes written by this phase
base = nfile + 1000
for rnd_i in range(4):
    bufs, expect = [], []
    for i in range(256):
        b = base + rnd.randrange(512)
        if rnd.random() < 0.5 and b not in model:  # new blocks: to the file
            data = os.urandom(4096)
            h.aio_pwrite(data, b * 4096)
            model[b] = data
        elif rnd.random() < 0.5 and model:
            b = rnd.choice(sorted(model))
            buf = nbd.Buffer(4096)
            h.aio_pread(buf, b * 4096)
            bufs.append(buf)
            expect.append(model[b])
        else:
            off = rnd.randrange(remote // 4096) * 4096
            buf = nbd.Buffer(4096)
            h.aio_pread(buf, off)
            bufs.append(buf)
            expect.append(stamp(off))
    while h.aio_in_flight() > 0:
        h.poll(-1)
    ok = all(bufs[i].to_bytearray() == expect[i] for i in range(len(bufs)))
    check(ok, "round %d: %d reads in flight with writes, each returns its data"
          % (rnd_i, len(bufs)))
h.flush()
for b, data in model.items():
    if h.pread(4096, b * 4096) != data:
        check(False, "block %d after the rounds" % b)
        break
else:
    check(True, "%d blocks written in flight read back" % len(model))
h.shutdown()


def remote_case(rexport):
    """An export with no target: every block in remote memory. A 32 MiB READ sent
    before 64 small READs: the small ones may be answered first (the store keeps at
    most a window of a batch's bytes in flight); every reply must match its
    cookie's data. Then read-after-write and FLUSH after remote writes."""
    global export
    export = rexport
    big = 32 << 20
    s = connect()
    msg = b"".join(req(WRITE, i, i << 20, 1 << 20,
                       b"".join(stamp(o) for o in range(i << 20, (i + 1) << 20, 4096)))
                   for i in range(32))
    s.sendall(msg + req(FLUSH, 99, 0, 0))
    order = replies(s, {**{i: None for i in range(32)}, 99: None})
    check(order[-1] == 99, "remote: FLUSH answered after the 32 MiB of writes before it")
    whole = b"".join(stamp(o) for o in range(0, big, 4096))
    before = []
    for attempt in range(4):
        want = {1: whole}
        s.sendall(with_reads(req(READ, 1, 0, big), want, 64, big))
        order = replies(s, want)
        before.append(order.index(1))
    check(True, "remote: 4 x (32 MiB READ + 64 small READs), every reply matches its "
          "cookie; small replies before the big one: %s" % before)
    overlap(s, 40 << 20, "remote: ")
    # many 64 KiB writes then a FLUSH and reads of them, one send
    msg, want = b"", {}
    for i in range(64):
        off = (48 << 20) + i * 65536
        msg += req(WRITE, 200 + i, off, 65536, os.urandom(16) * 4096)
        want[200 + i] = None
    msg += req(FLUSH, 999, 0, 0)
    want[999] = None
    s.sendall(msg)
    order = replies(s, want)
    check(order[-1] == 999, "remote: FLUSH answered after the 64 writes before it")
    s.sendall(req(2, 0, 0, 0))  # DISC
    s.close()
    # a client that vanishes with a 32 MiB remote read and writes in flight
    for _ in range(3):
        s = connect()
        s.sendall(req(READ, 1, 0, big) +
                  b"".join(req(WRITE, 10 + i, (56 << 20) + i * 4096, 4096,
                               stamp((56 << 20) + i * 4096)) for i in range(64)))
        s.close()
    s = connect()
    s.sendall(req(READ, 1, 0, big) +
              b"".join(req(READ, 10 + i, (56 << 20) + i * 4096, 4096) for i in range(64)))
    got = {}
    for _ in range(65):
        magic, err, cookie = struct.unpack(">IIQ", recvall(s, 16))
        got[cookie] = (err, recvall(s, big if cookie == 1 else 4096))
    check(got[1] == (0, whole) and
          all(got[10 + i][1] in (stamp((56 << 20) + i * 4096), bytes(4096))
              for i in range(64)),
          "remote: after vanished clients the data is intact, the server answers")
    s.close()


if len(sys.argv) > 4:
    remote_case(sys.argv[4])
print("%d failure(s)" % len(failures))
sys.exit(1 if failures else 0)
