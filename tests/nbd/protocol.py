#!/usr/bin/python3
# protocol.py - protocol hygiene of rtmem's NBD server, run by protocol.sh.
#   protocol.py UNIX_SOCKET EXPORT SIZE
# With libnbd (client-side checks switched off, so bad requests reach the server):
# out-of-range, misaligned, oversized requests, unknown flags and commands get the
# right errors and the connection stays usable; sub-page writes keep their
# neighbours. With a raw socket: negotiation errors (unknown option, unknown export,
# malformed GO, LIST with data, bad client flags, bad request magic).
# Needs Debian's python3 (the nbd module is in /usr/lib/python3/dist-packages).
import errno
import os
import socket
import struct
import sys

import nbd
from nbdcheck import check, failures, recvall

sock_path, export, size = sys.argv[1], sys.argv[2], int(sys.argv[3])



def expect_err(what, fn, want):
    try:
        fn()
    except nbd.Error as e:  # e.errno is the errno's name
        check(e.errno == errno.errorcode[want],
              "%s -> %s (got %s: %s)" % (what, errno.errorcode[want], e.errno, e.string))
        return
    check(False, "%s -> %s (it succeeded)" % (what, errno.errorcode[want]))


# ------------------------------------------------------------------ libnbd
h = nbd.NBD()
h.set_strict_mode(0)  # let bad requests through to the server
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.connect_uri("nbd+unix:///%s?socket=%s" % (export, sock_path))
check(h.get_size() == size, "size %d" % h.get_size())
check(h.get_structured_replies_negotiated(), "structured replies negotiated")
check(h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION), "base:allocation negotiated")
check(h.get_block_size(nbd.SIZE_MINIMUM) == 512, "minimum block size 512")
check(h.get_block_size(nbd.SIZE_PREFERRED) == 4096, "preferred block size 4096")
check(h.get_block_size(nbd.SIZE_MAXIMUM) == 32 << 20, "maximum block size 32M")

expect_err("read beyond the end", lambda: h.pread(4096, size), errno.EINVAL)
expect_err("read straddling the end", lambda: h.pread(8192, size - 4096), errno.EINVAL)
expect_err("write beyond the end", lambda: h.pwrite(b"x" * 4096, size), errno.ENOSPC)
expect_err("write straddling the end", lambda: h.pwrite(b"x" * 8192, size - 4096),
           errno.ENOSPC)
expect_err("trim beyond the end", lambda: h.trim(4096, size), errno.EINVAL)
expect_err("zero beyond the end", lambda: h.zero(4096, size), errno.ENOSPC)
expect_err("offset near 2^64", lambda: h.pread(4096, (1 << 64) - 4096), errno.EINVAL)
expect_err("misaligned read offset", lambda: h.pread(512, 100), errno.EINVAL)
expect_err("misaligned read length", lambda: h.pread(100, 0), errno.EINVAL)
expect_err("misaligned write", lambda: h.pwrite(b"y" * 512, 3), errno.EINVAL)
expect_err("misaligned trim", lambda: h.trim(1000, 0), errno.EINVAL)
expect_err("oversized read (40M)", lambda: h.pread(40 << 20, 0), errno.EINVAL)
expect_err("oversized write (40M, payload skipped)",
           lambda: h.pwrite(b"z" * (40 << 20), 0), errno.EINVAL)
expect_err("unknown read flag (error chunk)",
           lambda: h.pread(4096, 0, 1 << 5), errno.EINVAL)
expect_err("NO_HOLE on a write", lambda: h.pwrite(b"w" * 4096, 0, nbd.CMD_FLAG_NO_HOLE),
           errno.EINVAL)

# the connection is still in step after all that
pat = bytes(range(256)) * 16
h.pwrite(pat, 0)
check(h.pread(4096, 0) == pat, "write/read after the errors")
# the oversized write must not have been applied
check(h.pread(4096, 8192) != b"z" * 4096, "refused write left no data")

# sub-page writes (qemu does 512-byte I/O): neighbours are kept
base = os.urandom(3 * 4096)
h.pwrite(base, 1 << 20)
h.pwrite(b"\xaa" * 512, (1 << 20) + 1024)
h.pwrite(b"\xbb" * 1536, (1 << 20) + 4096 - 512)  # straddles two pages
exp = bytearray(base)
exp[1024:1536] = b"\xaa" * 512
exp[4096 - 512:4096 + 1024] = b"\xbb" * 1536
check(h.pread(3 * 4096, 1 << 20) == bytes(exp), "512-byte writes inside and across pages")
check(h.pread(512, (1 << 20) + 4096) == bytes(exp[4096:4608]), "512-byte read")

# zero and trim
h.zero(4096, 1 << 20)
check(h.pread(4096, 1 << 20) == b"\0" * 4096, "write_zeroes reads back zeros")
h.zero(512, (1 << 20) + 4096 + 512)
exp[4096 + 512:4096 + 1024] = b"\0" * 512
check(h.pread(2 * 4096, (1 << 20) + 4096) == bytes(exp[4096:]), "partial write_zeroes")
h.zero(4096, (1 << 20) + 8192, nbd.CMD_FLAG_NO_HOLE)
check(h.pread(4096, (1 << 20) + 8192) == b"\0" * 4096, "write_zeroes NO_HOLE")
h.trim(8192, 1 << 20)
check(h.pread(4096, 1 << 20) == b"\0" * 4096, "trimmed page reads as zeros")
never = h.pread(65536, size - 65536)
check(never == b"\0" * 65536, "never written blocks read as zeros")
h.pwrite(b"f" * 4096, 4096, nbd.CMD_FLAG_FUA)
h.flush()
check(h.pread(4096, 4096) == b"f" * 4096, "FUA write and flush")

# structured reads: holes for never written / trimmed / zeroed blocks, data chunks
# for the rest, every byte in place; DF gives one data chunk
def chunks_of(count, off, flags=0):
    got = []

    def cb(subbuf, offset, status, err):
        got.append((status, offset, len(subbuf), bytes(subbuf)))
        return 0
    data = h.pread_structured(count, off, cb, flags)
    return data, sorted(got, key=lambda c: c[1])


H = 8 << 20  # an untouched area
d1, d2 = os.urandom(8192), os.urandom(4096 + 512)
h.pwrite(d1, H)
h.pwrite(d2, H + 5 * 4096)
data, got = chunks_of(10 * 4096, H)
exp = d1 + bytes(3 * 4096) + d2 + bytes(10 * 4096 - 5 * 4096 - len(d2))
check(data == exp, "structured read of data and holes returns the right bytes")
check([(c[0], c[1] - H, c[2]) for c in got] ==
      [(nbd.READ_DATA, 0, 8192), (nbd.READ_HOLE, 8192, 3 * 4096),
       (nbd.READ_DATA, 5 * 4096, 2 * 4096), (nbd.READ_HOLE, 7 * 4096, 3 * 4096)],
      "chunks: data, hole, data, hole (%s)" % [(c[0], c[1] - H, c[2]) for c in got])
check(all(c[3] == exp[c[1] - H:c[1] - H + c[2]] for c in got), "each chunk's bytes")
data, got = chunks_of(10 * 4096, H, nbd.CMD_FLAG_DF)
check(data == exp and len(got) == 1 and got[0][0] == nbd.READ_DATA,
      "DF read -> one data chunk")
data, got = chunks_of(1 << 20, size - (1 << 20))
check(data == bytes(1 << 20) and [c[0] for c in got] == [nbd.READ_HOLE],
      "never written 1M -> one hole chunk")
h.trim(4096, H)
h.zero(4096, H + 4096)
data, got = chunks_of(3 * 4096, H)
check(data == bytes(8192) + bytes(4096) and [c[0] for c in got] == [nbd.READ_HOLE],
      "trimmed and zeroed blocks read as a hole")
data, got = chunks_of(1024, H + 5 * 4096 + 512)
check(data == d2[512:1536] and [c[0] for c in got] == [nbd.READ_DATA],
      "unaligned read -> data chunk")

# block status (base:allocation): holes where nothing is stored, data elsewhere
def extents(count, off, flags=0):
    got = []

    def cb(meta, offset, ents, err):
        if meta == nbd.CONTEXT_BASE_ALLOCATION:
            got.extend(zip(ents[0::2], ents[1::2]))
        return 0
    h.block_status(count, off, cb, flags)
    return got


H2 = 16 << 20
h.pwrite(os.urandom(8192), H2 + 4096)
h.pwrite(os.urandom(4096), H2 + 5 * 4096)
got = extents(8 * 4096, H2)
check(got == [(4096, 3), (8192, 0), (8192, 3), (4096, 0), (8192, 3)],
      "block status: hole, data, hole, data, hole (%s)" % got)
got = extents(8 * 4096, H2, nbd.CMD_FLAG_REQ_ONE)
check(got == [(4096, 3)], "block status REQ_ONE -> one extent (%s)" % got)
got = extents(1024, H2 + 4096 + 512)
check(got == [(1024, 0)], "block status inside a data block (%s)" % got)
expect_err("block status beyond the end", lambda: extents(4096, size), errno.EINVAL)
h.trim(8192, H2 + 4096)
got = extents(8 * 4096, H2)
check(got == [(5 * 4096, 3), (4096, 0), (8192, 3)], "block status after trim (%s)" % got)

# pipelined commands: many in flight at once, answered correctly
bufs = {}
for i in range(64):
    data = os.urandom(4096)
    bufs[i] = data
    h.aio_pwrite(data, (2 << 20) + i * 4096)
while h.aio_in_flight() > 0:
    h.poll(-1)
outs = [nbd.Buffer(4096) for _ in range(64)]
for i in range(64):
    h.aio_pread(outs[i], (2 << 20) + i * 4096)
while h.aio_in_flight() > 0:
    h.poll(-1)
check(all(outs[i].to_bytearray() == bufs[i] for i in range(64)),
      "64 pipelined writes then 64 pipelined reads")
h.shutdown()

# data persists across connections; simple replies when not asked for structured
h2 = nbd.NBD()
h2.set_request_structured_replies(False)
h2.connect_uri("nbd+unix:///%s?socket=%s" % (export, sock_path))
check(not h2.get_structured_replies_negotiated(), "simple replies on request")
check(h2.pread(4096, 0) == pat, "data persists across connections")
expect_err("DF flag without structured replies",
           lambda: h2.pread(4096, 0, nbd.CMD_FLAG_DF), errno.EINVAL)
expect_err("simple reply error", lambda: h2.pread(4096, size), errno.EINVAL)
check(not h2.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION), "no meta context without asking")
h2.shutdown()

# ------------------------------------------------------------------ raw socket
OPTS = 0x49484156454F5054
REP = 0x3E889045565A9


def connect(flags=1):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(sock_path)
    g = recvall(s, 18)
    assert g[:8] == b"NBDMAGIC" and struct.unpack(">Q", g[8:16])[0] == OPTS
    s.sendall(struct.pack(">I", flags))
    return s



def option(s, opt, data=b""):
    s.sendall(struct.pack(">QII", OPTS, opt, len(data)) + data)


def reply(s):
    magic, opt, typ, ln = struct.unpack(">QIII", recvall(s, 20))
    assert magic == REP
    return opt, typ, recvall(s, ln)


def closed(s):
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, socket.timeout):
        return isinstance(sys.exc_info()[1], ConnectionResetError)


ERR = 1 << 31
s = connect()
option(s, 99)
check(reply(s)[1] == ERR + 1, "unknown option -> NBD_REP_ERR_UNSUP")
q = struct.pack(">I", len(export)) + export.encode() + struct.pack(">I", 1)
q += struct.pack(">I", 15) + b"base:allocation"
option(s, 10, q)
check(reply(s)[1] == ERR + 3, "SET_META_CONTEXT before structured replies -> INVALID")
option(s, 9, struct.pack(">I", len(export)) + export.encode() + struct.pack(">I", 0))
_, typ, data = reply(s)
check(typ == 4 and data == struct.pack(">I", 1) + b"base:allocation" and reply(s)[1] == 1,
      "LIST_META_CONTEXT -> base:allocation, ACK")
option(s, 9, struct.pack(">I", len(export)) + export.encode() + struct.pack(">I", 1) +
       struct.pack(">I", 9) + b"qemu:junk")
check(reply(s)[1] == 1, "LIST_META_CONTEXT of an unknown context -> ACK only")
option(s, 9, struct.pack(">I", 7) + b"nothere" + struct.pack(">I", 0))
check(reply(s)[1] == ERR + 6, "LIST_META_CONTEXT of an unknown export -> UNKNOWN")
option(s, 9, struct.pack(">I", len(export)) + export.encode() + struct.pack(">I", 2))
check(reply(s)[1] == ERR + 3, "malformed LIST_META_CONTEXT -> INVALID")
option(s, 8, b"x")  # structured replies take no data
check(reply(s)[1] == ERR + 3, "STRUCTURED_REPLY with data -> NBD_REP_ERR_INVALID")
option(s, 3, b"junk")
check(reply(s)[1] == ERR + 3, "LIST with data -> NBD_REP_ERR_INVALID")
option(s, 6, struct.pack(">I", 7) + b"nothere" + struct.pack(">H", 0))
check(reply(s)[1] == ERR + 6, "INFO on an unknown export -> NBD_REP_ERR_UNKNOWN")
option(s, 7, struct.pack(">I", 100) + b"abc")
check(reply(s)[1] == ERR + 3, "malformed GO -> NBD_REP_ERR_INVALID")
option(s, 3)
names = []
while True:
    _, typ, data = reply(s)
    if typ != 2:
        break
    names.append(data[4:4 + struct.unpack(">I", data[:4])[0]].decode())
check(export in names and typ == 1, "LIST names %s" % names)
# GO, then an unknown command and a bad magic
name = export.encode()
option(s, 7, struct.pack(">I", len(name)) + name + struct.pack(">H", 0))
infos = []
while True:
    _, typ, data = reply(s)
    if typ != 3:
        break
    infos.append(struct.unpack(">H", data[:2])[0])
check(typ == 1 and 0 in infos, "GO -> NBD_INFO_EXPORT then ACK")
s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 42, 7, 0, 0))
magic, err, cookie = struct.unpack(">IIQ", recvall(s, 16))
check(magic == 0x67446698 and err == errno.EINVAL and cookie == 7,
      "unknown command -> EINVAL")
# without a block size request alignment is not enforced: 100 bytes at offset 3
s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, 8, 3, 100))
magic, err, cookie = struct.unpack(">IIQ", recvall(s, 16))
check(err == 0 and cookie == 8 and recvall(s, 100) == pat[3:103],
      "unaligned read when block sizes were not requested")
s.sendall(struct.pack(">IHHQQI", 0xDEADBEEF, 0, 0, 9, 0, 0))
check(closed(s), "bad request magic -> disconnect")
s.close()

# structured replies on the wire: error chunk, hole chunk, data chunk
s = connect()
option(s, 8)
check(reply(s)[1] == 1, "STRUCTURED_REPLY -> ACK")
option(s, 7, struct.pack(">I", len(name)) + name + struct.pack(">H", 0))
while reply(s)[1] != 1:
    pass


def chunk(s):
    magic, fl, typ, cookie, ln = struct.unpack(">IHHQI", recvall(s, 20))
    check(magic == 0x668E33EF, "structured reply magic")
    return fl, typ, cookie, recvall(s, ln)


s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, 20, size, 4096))
fl, typ, cookie, pl = chunk(s)
check(fl == 1 and typ == 0x8001 and cookie == 20 and
      pl == struct.pack(">IH", errno.EINVAL, 0), "read beyond the end -> ERROR chunk")
s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, 21, size - 8192, 8192))
fl, typ, cookie, pl = chunk(s)
check(fl == 1 and typ == 2 and cookie == 21 and pl == struct.pack(">QI", size - 8192, 8192),
      "read of never written blocks -> OFFSET_HOLE chunk")
s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, 22, 3, 100))
fl, typ, cookie, pl = chunk(s)
check(fl == 1 and typ == 1 and cookie == 22 and pl == struct.pack(">Q", 3) + pat[3:103],
      "read of data -> OFFSET_DATA chunk")
s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, 23, 0, 0))
fl, typ, cookie, pl = chunk(s)
check(fl == 1 and typ == 0 and cookie == 23 and pl == b"", "empty read -> NONE chunk")
s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 3, 24, 0, 0))  # FLUSH: simple reply
magic, err, cookie = struct.unpack(">IIQ", recvall(s, 16))
check(magic == 0x67446698 and err == 0 and cookie == 24, "flush -> simple reply")
s.close()

s = connect(flags=0x80)
check(closed(s), "unknown client flags -> disconnect")
s.close()

s = connect()
option(s, 1, b"nothere")
check(closed(s), "EXPORT_NAME of an unknown export -> disconnect")
s.close()

s = connect(flags=3)  # fixed newstyle + no zeroes
option(s, 1, name)
sz, fl = struct.unpack(">QH", recvall(s, 10))
check(sz == size and fl & 1, "EXPORT_NAME -> size and flags, no zeroes")
s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 2, 1, 0, 0))  # DISC
check(closed(s), "DISC -> server closes")
s.close()

s = connect()
option(s, 2)
opt, typ, _ = reply(s)
check(typ == 1, "ABORT -> ACK")
s.close()

print("%d failure(s)" % len(failures))
sys.exit(1 if failures else 0)
