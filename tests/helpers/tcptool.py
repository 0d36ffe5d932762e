"""TCP test peers that real tools cannot play: many concurrent checked streams, half-close,
resets, connect timing and sequential short connections. Standard library only, so it runs
under any interpreter, inside any namespace.

    python3 tcptool.py echo-server ADDR PORT             # echoes every connection (selectors)
    python3 tcptool.py many ADDR PORT --conns N --bytes B [--seed S]
    python3 tcptool.py send-after-eof-server ADDR PORT --bytes B   # waits for EOF, then sends B
    python3 tcptool.py halfclose-client ADDR PORT --bytes B        # shuts down writing, reads B
    python3 tcptool.py reset-server ADDR PORT            # accepts, reads 1 byte, closes with RST
    python3 tcptool.py reset-client ADDR PORT            # sends 1 byte, closes with RST
    python3 tcptool.py expect-reset-server ADDR PORT     # accepts, prints what recv() ends with
    python3 tcptool.py expect-reset-client ADDR PORT     # connects, sends 1 byte, prints ending
    python3 tcptool.py refused ADDR PORT                 # prints "<errno name> <milliseconds>"
    python3 tcptool.py sequential ADDR PORT --count N    # N connections: send, read echo, close

Servers print `ready` once listening. Clients print one result line and exit 0 on success.
Streams are deterministic pseudo-random bytes (`pattern(seed, n)`), checked by SHA-256.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import random
import resource
import selectors
import socket
import struct
import sys
import time

CHUNK = 1 << 16


def _family(addr: str) -> int:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def pattern(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _listen(addr: str, port: int) -> socket.socket:
    s = socket.socket(_family(addr), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(4096)
    print("ready", flush=True)
    return s


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def echo_server(a) -> int:
    _raise_nofile()
    lsock = _listen(a.addr, a.port)
    lsock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ, None)
    conns: dict = {}                     # socket -> [pending bytes, eof seen]

    def drop(c):
        sel.unregister(c)
        c.close()
        del conns[c]

    while True:
        for key, ev in sel.select():
            if key.data is None:
                try:
                    c, _ = lsock.accept()
                except BlockingIOError:
                    continue
                c.setblocking(False)
                conns[c] = [bytearray(), False]
                sel.register(c, selectors.EVENT_READ, "c")
                continue
            c = key.fileobj
            st = conns[c]
            if ev & selectors.EVENT_READ:
                try:
                    data = c.recv(CHUNK)
                    if data:
                        st[0] += data
                    else:
                        st[1] = True
                except BlockingIOError:
                    pass
                except OSError:
                    drop(c)
                    continue
            if st[0]:
                try:
                    del st[0][:c.send(st[0])]
                except BlockingIOError:
                    pass
                except OSError:
                    drop(c)
                    continue
            if st[1] and not st[0]:
                drop(c)
                continue
            want = (0 if st[1] else selectors.EVENT_READ) | (selectors.EVENT_WRITE if st[0] else 0)
            sel.modify(c, want, "c")


def many(a) -> int:
    """N concurrent connections, each sending B bytes and reading the B echoed bytes back."""
    _raise_nofile()
    sel = selectors.DefaultSelector()
    state = {}
    for i in range(a.conns):
        s = socket.socket(_family(a.addr), socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((a.addr, a.port))
        data = pattern(a.seed + i, a.bytes)
        state[s] = {"out": memoryview(data), "sent": 0, "hash": hashlib.sha256(),
                    "want": hashlib.sha256(data).digest(), "got": 0, "i": i}
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    ok = bad = 0
    deadline = time.monotonic() + a.timeout
    while state and time.monotonic() < deadline:
        for key, ev in sel.select(1.0):
            s = key.fileobj
            st = state[s]
            if ev & selectors.EVENT_WRITE and st["sent"] < a.bytes:
                try:
                    st["sent"] += s.send(st["out"][st["sent"]:st["sent"] + CHUNK])
                except BlockingIOError:
                    pass
                except OSError as e:
                    print(f"conn {st['i']}: send: {e}", file=sys.stderr)
                    bad += 1
                    sel.unregister(s)
                    s.close()
                    del state[s]
                    continue
                if st["sent"] >= a.bytes:
                    sel.modify(s, selectors.EVENT_READ)
            if ev & selectors.EVENT_READ:
                try:
                    data = s.recv(CHUNK)
                except BlockingIOError:
                    continue
                except OSError as e:
                    data = b""
                    print(f"conn {st['i']}: recv: {e}", file=sys.stderr)
                st["hash"].update(data)
                st["got"] += len(data)
                if not data or st["got"] >= a.bytes:
                    if st["got"] == a.bytes and st["hash"].digest() == st["want"]:
                        ok += 1
                    else:
                        bad += 1
                        print(f"conn {st['i']}: got {st['got']} bytes", file=sys.stderr)
                    sel.unregister(s)
                    s.close()
                    del state[s]
    print(f"ok {ok} bad {bad} unfinished {len(state)}", flush=True)
    return 0 if ok == a.conns else 1


def send_after_eof_server(a) -> int:
    lsock = _listen(a.addr, a.port)
    while True:
        c, _ = lsock.accept()
        while c.recv(CHUNK):
            pass
        c.sendall(pattern(a.seed, a.bytes))
        c.close()


def halfclose_client(a) -> int:
    s = socket.create_connection((a.addr, a.port), timeout=a.timeout)
    s.sendall(b"request")
    s.shutdown(socket.SHUT_WR)
    h, n = hashlib.sha256(), 0
    while True:
        data = s.recv(CHUNK)
        if not data:
            break
        h.update(data)
        n += len(data)
    good = n == a.bytes and h.digest() == hashlib.sha256(pattern(a.seed, a.bytes)).digest()
    print(f"received {n} {'intact' if good else 'CORRUPT'}", flush=True)
    return 0 if good else 1


def _rst_close(s: socket.socket) -> None:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def _ending(s: socket.socket) -> str:
    try:
        while True:
            if not s.recv(CHUNK):
                return "eof"
    except ConnectionResetError:
        return "reset"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))


def reset_server(a) -> int:
    lsock = _listen(a.addr, a.port)
    c, _ = lsock.accept()
    c.recv(1)
    _rst_close(c)
    time.sleep(1)
    return 0


def reset_client(a) -> int:
    s = socket.create_connection((a.addr, a.port), timeout=a.timeout)
    s.sendall(b"x")
    time.sleep(0.2)
    _rst_close(s)
    print("reset sent", flush=True)
    return 0


def expect_reset_server(a) -> int:
    lsock = _listen(a.addr, a.port)
    c, _ = lsock.accept()
    c.settimeout(a.timeout)
    print(_ending(c), flush=True)
    return 0


def expect_reset_client(a) -> int:
    s = socket.create_connection((a.addr, a.port), timeout=a.timeout)
    s.sendall(b"x")
    print(_ending(s), flush=True)
    return 0


def refused(a) -> int:
    s = socket.socket(_family(a.addr), socket.SOCK_STREAM)
    s.settimeout(a.timeout)
    t0 = time.monotonic()
    try:
        s.connect((a.addr, a.port))
        name = "connected"
    except OSError as e:
        name = errno.errorcode.get(e.errno, "timeout") if e.errno else "timeout"
    print(f"{name} {int((time.monotonic() - t0) * 1000)}", flush=True)
    return 0


def sequential(a) -> int:
    for i in range(a.count):
        with socket.create_connection((a.addr, a.port), timeout=a.timeout) as s:
            s.sendall(b"%d\n" % i)
            want = b"%d\n" % i
            got = b""
            while len(got) < len(want):
                data = s.recv(64)
                if not data:
                    break
                got += data
            if got != want:
                print(f"connection {i}: got {got!r}", flush=True)
                return 1
    print(f"done {a.count}", flush=True)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=["echo-server", "many", "send-after-eof-server",
                                    "halfclose-client", "reset-server", "reset-client",
                                    "expect-reset-server", "expect-reset-client", "refused",
                                    "sequential"])
    p.add_argument("addr")
    p.add_argument("port", type=int)
    p.add_argument("--conns", type=int, default=1000)
    p.add_argument("--bytes", type=int, default=1 << 20)
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=60.0)
    a = p.parse_args(argv)
    return globals()[a.mode.replace("-", "_")](a)


if __name__ == "__main__":
    sys.exit(main())
