# nbdcheck.py - helpers shared by the NBD test scripts (protocol.py, ooo.py):
# numbered checks that are all run before the verdict, and exact socket reads.
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def recvall(s, n):
    b = b""
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            raise EOFError
        b += d
    return b
