#!/usr/bin/python3
# vanish.py UNIX_SOCKET EXPORT - clients that vanish: mid-negotiation, after a
# partial request header, in the middle of a write's payload, with replies unread.
import socket
import struct
import sys

path, export = sys.argv[1], sys.argv[2].encode()
OPTS = 0x49484156454F5054


def go():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.recv(18)
    s.sendall(struct.pack(">I", 3))
    s.sendall(struct.pack(">QII", OPTS, 7, 4 + len(export) + 2) +
              struct.pack(">I", len(export)) + export + struct.pack(">H", 0))
    return s


def req(typ, cookie, off, ln):
    return struct.pack(">IHHQQI", 0x25609513, 0, typ, cookie, off, ln)


for i in range(20):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # gone before the flags
    s.connect(path)
    s.close()
    s = go()  # gone after GO
    s.close()
    s = go()  # half a request header
    s.sendall(req(0, 1, 0, 4096)[:13])
    s.close()
    s = go()  # a 1 MiB write cut in the middle of its payload, at 64 MiB + i MiB
    s.sendall(req(1, 2, (64 + i) << 20, 1 << 20) + b"\xee" * (512 << 10))
    s.close()
    s = go()  # 200 reads of 1 MiB queued, replies never read
    s.sendall(b"".join(req(0, k, 0, 1 << 20) for k in range(200)))
    s.close()
print("vanished 100 times")
