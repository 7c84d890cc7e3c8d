#!/usr/bin/env python3
"""hold_conns.py HOST PORT N — open N keep-alive HTTP/1.1 connections to HOST:PORT and hold them.

Each connection sends one GET and reads the full response before the next one is opened, so when the
script prints "ready N" every connection is established end to end (through a proxy pair: client proxy,
tunnel, server proxy and backend all hold their side). It then waits until stdin is closed (or a line is
read) and closes everything. Prints "failed K: reason" instead of "ready" if some connection failed.
"""
import socket
import sys


def main():
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    req = ("GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % host).encode()
    socks, failed, reason = [], 0, ""
    for _ in range(n):
        try:
            s = socket.create_connection((host, port), timeout=10)
            s.sendall(req)
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = s.recv(4096)
                if not d:
                    raise ConnectionError("closed before a response")
                buf += d
            head, body = buf.split(b"\r\n\r\n", 1)
            length = 0
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v)
            while len(body) < length:
                d = s.recv(4096)
                if not d:
                    raise ConnectionError("closed mid-body")
                body += d
            if not head.startswith(b"HTTP/1.1 200"):
                raise ConnectionError(head.split(b"\r\n")[0].decode(errors="replace"))
            socks.append(s)
        except (OSError, ConnectionError, ValueError) as e:
            failed += 1
            reason = str(e)
    print("ready %d" % len(socks) if failed == 0 else "failed %d: %s" % (failed, reason), flush=True)
    sys.stdin.readline()
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
