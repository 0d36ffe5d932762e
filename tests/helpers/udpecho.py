"""UDP integrity checker: a client that sends numbered datagrams to an echo server and checks
that every one comes back intact and in order, and a tiny echo server for what socat cannot do.

Run as a script (stdlib only, so any interpreter works, including inside a namespace):

    python3 udpecho.py client HOST PORT [--count N] [--seed S] [--min B] [--max B]
                                        [--burst-bytes B] [--run N] [--timeout S]
    python3 udpecho.py server ADDR PORT

The client sends datagrams whose sizes are drawn from [min, max] and whose bytes are random (both
from `--seed`; with `--run N` each drawn size is used for N datagrams in a row, which is what
UDP GSO batches), in bursts: as many datagrams as fit in `--burst-bytes` (at least one) are sent
back to back, then exactly that many replies are read and compared, in order, with what was
sent. A missing reply (timeout), a changed byte, a wrong size or a reordering is a failure. It
prints one JSON line `{"sent": N, "ok": N, "bytes": B, "max": M, "zero": Z, "errors": [...]}`
and exits 0 only if every datagram came back. Bursts are kept below the default socket buffer
sizes (212992 bytes) so a correct path never drops.

The server echoes every datagram (zero-length ones included: socat 1.7 takes a zero-length
datagram for end-of-file) and prints `ready` once bound. It binds one address so that replies
leave from the address the client sent to (a socket bound to the wildcard address would answer
from whatever address the route picks, and the client's connected socket would refuse that).
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import sys


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def client(a) -> int:
    rng = random.Random(a.seed)
    s = socket.socket(_family(a.host), socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.settimeout(a.timeout)
    s.connect((a.host, a.port))
    buf = bytearray(70000)
    sent = ok = total = biggest = zero = 0
    errors: list[str] = []
    size, left = 0, 0
    while sent < a.count and len(errors) < 5:
        burst = []
        used = 0
        while sent + len(burst) < a.count:
            if left == 0:
                size, left = rng.randint(a.min, a.max), a.run
            n = size
            if burst and used + n > a.burst_bytes:
                if a.run == 1:
                    left = 0            # as before --run existed: the drawn size is dropped
                break
            left -= 1
            burst.append(rng.randbytes(n))
            used += n
        for d in burst:
            s.send(d)
        for i, d in enumerate(burst):
            try:
                got = s.recv_into(buf)
            except socket.timeout:
                errors.append(f"datagram {sent + i} ({len(d)} bytes): no reply")
                break
            if got != len(d) or buf[:got] != d:
                errors.append(f"datagram {sent + i}: sent {len(d)} bytes, got {got} "
                              f"{'different' if got == len(d) else ''} bytes back")
                continue
            ok += 1
            total += got
            biggest = max(biggest, got)
            zero += got == 0
        sent += len(burst)
    print(json.dumps({"sent": sent, "ok": ok, "bytes": total, "max": biggest, "zero": zero,
                      "errors": errors}), flush=True)
    return 0 if ok == a.count and not errors else 1


def server(a) -> int:
    s = socket.socket(_family(a.addr), socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind((a.addr, a.port))
    print("ready", flush=True)
    buf = bytearray(70000)
    while True:
        n, peer = s.recvfrom_into(buf)
        s.sendto(memoryview(buf)[:n], peer)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("client")
    c.add_argument("host")
    c.add_argument("port", type=int)
    c.add_argument("--count", type=int, default=10000)
    c.add_argument("--seed", type=int, default=1)
    c.add_argument("--min", type=int, default=0)
    c.add_argument("--max", type=int, default=65000)
    c.add_argument("--burst-bytes", type=int, default=150000)
    c.add_argument("--run", type=int, default=1, help="datagrams per drawn size")
    c.add_argument("--timeout", type=float, default=5.0)
    sv = sub.add_parser("server")
    sv.add_argument("addr")
    sv.add_argument("port", type=int)
    a = p.parse_args(argv)
    return client(a) if a.mode == "client" else server(a)


if __name__ == "__main__":
    sys.exit(main())
