"""Request/response latency and connect+close rate, for the benchmark (netperf's TCP_RR and
TCP_CC, which Debian's netperf is not there for). Standard library only: it runs under any
interpreter, in any namespace, and costs the same whichever network tool is being measured.

    python3 rrtool.py server ADDR PORT          # echoes bytes; closes a connection at once
                                                # when its first byte is "c" (connect+close)
    python3 rrtool.py rr ADDR PORT --seconds S  # 1-byte ping-pong on one connection
    python3 rrtool.py cc ADDR PORT --seconds S  # connect, wait for the server's close, close

`rr` prints {"count", "median_us", "p99_us"}; `cc` prints {"count", "rate"} (per second). The
server closes first in `cc`, so TIME_WAIT stays on the server's side and the client's ports do
not run out. The server prints `ready` once listening.
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import sys
import time


def _family(addr: str) -> int:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def server(a) -> int:
    ls = socket.socket(_family(a.addr), socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.addr, a.port))
    ls.listen(4096)
    ls.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ)
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            if s is ls:
                for _ in range(64):
                    try:
                        c, _ = ls.accept()
                    except BlockingIOError:
                        break
                    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    c.setblocking(False)
                    sel.register(c, selectors.EVENT_READ)
                continue
            try:
                data = s.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data or data[:1] == b"c":
                sel.unregister(s)
                s.close()
                continue
            try:
                s.send(data)
            except OSError:
                sel.unregister(s)
                s.close()


def rr(a) -> int:
    s = socket.create_connection((a.addr, a.port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    clock = time.perf_counter_ns
    end = time.monotonic() + a.seconds
    one = b"x"
    while time.monotonic() < end:
        for _ in range(100):
            t0 = clock()
            s.send(one)
            if not s.recv(1):
                raise SystemExit("server closed")
            times.append(clock() - t0)
    s.close()
    times.sort()
    n = len(times)
    print(json.dumps({"count": n, "median_us": times[n // 2] / 1000,
                      "p99_us": times[min(n - 1, n * 99 // 100)] / 1000}), flush=True)
    return 0


def cc(a) -> int:
    fam = _family(a.addr)
    target = (a.addr, a.port)
    count = 0
    start = time.monotonic()
    end = start + a.seconds
    while time.monotonic() < end:
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(target)
        s.send(b"c")
        s.recv(1)                       # the server's close
        s.close()
        count += 1
    print(json.dumps({"count": count, "rate": count / (time.monotonic() - start)}),
          flush=True)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=["server", "rr", "cc"])
    p.add_argument("addr")
    p.add_argument("port", type=int)
    p.add_argument("--seconds", type=float, default=5.0)
    a = p.parse_args(argv)
    return {"server": server, "rr": rr, "cc": cc}[a.mode](a)


if __name__ == "__main__":
    sys.exit(main())
