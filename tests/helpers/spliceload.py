"""Many checked bulk TCP transfers at once, for the spliced path under load (issue 13, item 4).
Standard library only, so it runs under any interpreter, inside any namespace.

    python3 spliceload.py server ADDR PORT --bytes B
        # threads, one per connection; prints `ready` once listening. A connection starts with
        # one byte: `U` (the client uploads B bytes and shuts down: the server answers
        # "<count> <sha256>\\n") or `D` (the server sends B bytes, shuts down, then waits for
        # the client's end of file before closing, so no unread byte turns its close into RST)
    python3 spliceload.py client ADDR PORT --bytes B --count N --parallel P --modes UD
        # N transfers, P at a time, modes taken in turn; prints one JSON line
        # {"ok": n, "failed": [["U", "ECONNRESET", "send"], ...], "seconds": s}
        # and exits 0 only if every transfer arrived whole, with the right SHA-256

The payload is one deterministic pseudo-random block of B bytes (seed 13), the same on both
ends, so each end knows the expected digest without a side channel. Every socket operation has a
timeout (default 60 s), so a stalled transfer fails instead of hanging.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import random
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

CHUNK = 1 << 18


def _family(addr: str) -> int:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def payload(n: int) -> bytes:
    return random.Random(13).randbytes(n)


def _read_to_eof(s: socket.socket) -> tuple[int, str]:
    h, n = hashlib.sha256(), 0
    buf = bytearray(CHUNK)
    while True:
        k = s.recv_into(buf)
        if not k:
            return n, h.hexdigest()
        h.update(memoryview(buf)[:k])
        n += k


def _serve(c: socket.socket, data: bytes) -> None:
    with c:
        mode = c.recv(1)
        if mode == b"U":
            n, digest = _read_to_eof(c)
            c.sendall(f"{n} {digest}\n".encode())
            c.shutdown(socket.SHUT_WR)
        elif mode == b"D":
            c.sendall(data)
            c.shutdown(socket.SHUT_WR)
            _read_to_eof(c)


def server(a) -> int:
    data = payload(a.bytes)
    s = socket.socket(_family(a.addr), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if s.family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind((a.addr, a.port))
    s.listen(1024)
    print("ready", flush=True)
    while True:
        c, _ = s.accept()
        c.settimeout(a.timeout)
        threading.Thread(target=_guarded, args=(c, data), daemon=True).start()


def _guarded(c, data) -> None:
    try:
        _serve(c, data)
    except OSError:
        pass                       # the client reports what went wrong


def _transfer(a, mode: str, data: bytes, digest: str):
    """None on success, else [mode, error, phase]."""
    phase = "connect"
    try:
        with socket.create_connection((a.addr, a.port), timeout=a.timeout) as s:
            phase = "send"
            s.sendall(mode.encode())
            if mode == "U":
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                phase = "result"
                line = b""
                while chunk := s.recv(256):
                    line += chunk
                want = f"{len(data)} {digest}\n".encode()
                return None if line == want else [mode, f"bad result {line[:80]!r}", phase]
            s.shutdown(socket.SHUT_WR)
            phase = "recv"
            n, got = _read_to_eof(s)
            return None if (n, got) == (len(data), digest) else \
                [mode, f"got {n} bytes, digest {'ok' if got == digest else 'bad'}", phase]
    except OSError as e:
        name = errno.errorcode.get(e.errno, str(e)) if e.errno else type(e).__name__
        return [mode, name, phase]


def client(a) -> int:
    data = payload(a.bytes)
    digest = hashlib.sha256(data).hexdigest()
    modes = [a.modes[i % len(a.modes)] for i in range(a.count)]
    t0 = time.monotonic()
    with ThreadPoolExecutor(a.parallel) as ex:
        results = list(ex.map(lambda m: _transfer(a, m, data, digest), modes))
    failed = [r for r in results if r is not None]
    print(json.dumps({"ok": len(results) - len(failed), "failed": failed,
                      "seconds": round(time.monotonic() - t0, 2)}), flush=True)
    return 1 if failed else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["server", "client"])
    p.add_argument("addr")
    p.add_argument("port", type=int)
    p.add_argument("--bytes", type=int, default=10 << 20)
    p.add_argument("--count", type=int, default=50)
    p.add_argument("--parallel", type=int, default=4)
    p.add_argument("--modes", default="UD")
    p.add_argument("--timeout", type=float, default=60.0)
    a = p.parse_args(argv)
    return server(a) if a.cmd == "server" else client(a)


if __name__ == "__main__":
    sys.exit(main())
