#!/usr/bin/env python3
"""Sanity check for an echo server (not the benchmark load generator).

Opens --conns connections to 127.0.0.1:PORT, keeps one --size-byte message
in flight per connection for --seconds, checks that every echo matches what
was sent, and prints the request rate.  Exit status: 0 ok, 1 mismatch or
connection loss.

    echo_check.py PORT [--conns 50] [--size 64] [--seconds 1]
"""
import argparse
import selectors
import socket
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("port", type=int)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=1.0)
    args = ap.parse_args()

    sel = selectors.DefaultSelector()
    state = {}  # sock -> [conn index, sequence number, expected bytes, received bytearray]

    def message(idx: int, seq: int) -> bytes:
        head = b"%d:%d:" % (idx, seq)
        return (head + b"x" * args.size)[: args.size]

    for i in range(args.conns):
        s = socket.create_connection((args.host, args.port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        msg = message(i, 0)
        s.sendall(msg)
        s.setblocking(False)
        state[s] = [i, 0, msg, bytearray()]
        sel.register(s, selectors.EVENT_READ)

    done = 0
    start = time.monotonic()
    deadline = start + args.seconds
    while time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.1):
            s = key.fileobj
            st = state[s]
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            if not data:
                print("echo_check: connection %d closed by server" % st[0], file=sys.stderr)
                return 1
            st[3] += data
            if len(st[3]) < len(st[2]):
                continue
            if bytes(st[3]) != st[2]:
                print("echo_check: mismatch on connection %d: sent %r got %r"
                      % (st[0], st[2], bytes(st[3])), file=sys.stderr)
                return 1
            done += 1
            st[1] += 1
            st[2] = message(st[0], st[1])
            st[3] = bytearray()
            s.sendall(st[2])  # one small message in flight: never blocks
    elapsed = time.monotonic() - start

    for s in state:
        sel.unregister(s)
        s.close()
    sel.close()
    if done == 0:
        print("echo_check: no echoes received", file=sys.stderr)
        return 1
    print("%d conns x %d B: %d echoes in %.2f s = %.0f req/s"
          % (args.conns, args.size, done, elapsed, done / elapsed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
