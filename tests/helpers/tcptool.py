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
    python3 tcptool.py lost-window-update-client ADDR PORT --bytes B
        # (inside a namespace, as its root) asks a send-after-eof-server for B bytes, lets its
        # receive window close, drains it while tc holds back its bare ACKs (the window update
        # is lost when the qdisc is deleted), then reads the rest: only the sender's
        # zero-window probes can restart the stream; prints how many ACKs were held

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


def _netstat(name: str) -> int:
    """A TcpExt counter of this namespace (/proc/net/netstat)."""
    lines = open("/proc/net/netstat").read().splitlines()
    for keys, values in zip(lines[::2], lines[1::2]):
        if keys.startswith("TcpExt:"):
            return int(dict(zip(keys.split(), values.split()))[name])
    raise KeyError(name)


def _wait(what: str, cond, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.01)


def lost_window_update_client(a) -> int:
    import os
    import subprocess
    ifname = next(n for n in sorted(os.listdir("/sys/class/net")) if n != "lo")
    v6 = _family(a.addr) == socket.AF_INET6
    # A bare ACK: no options (no timestamps were negotiated), so IPv4 total length 40, or
    # IPv6 payload length 20.
    match = (["protocol", "ipv6", "u32", "match", "ip6", "protocol", "6", "0xff",
              "match", "u16", "20", "0xffff", "at", "4"] if v6 else
             ["protocol", "ip", "u32", "match", "ip", "protocol", "6", "0xff",
              "match", "u16", "40", "0xffff", "at", "2"])
    s = socket.socket(_family(a.addr), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
    s.settimeout(a.timeout)
    zero0, reopen0 = _netstat("TCPToZeroWindowAdv"), _netstat("TCPFromZeroWindowAdv")
    s.connect((a.addr, a.port))
    s.sendall(b"go")
    s.shutdown(socket.SHUT_WR)
    _wait("a zero window", lambda: _netstat("TCPToZeroWindowAdv") > zero0, a.timeout)
    # This kernel has no tc drop action: bare ACKs go to an HTB class of 8 bit/s instead,
    # where they wait until the qdisc (and with it they) is deleted.
    tc = ["tc", "-s"]
    for cmd in (["qdisc", "add", "dev", ifname, "root", "handle", "1:", "htb", "default", "2"],
                ["class", "add", "dev", ifname, "parent", "1:", "classid", "1:1", "htb",
                 "rate", "8bit", "ceil", "8bit", "burst", "1b", "cburst", "1b"],
                ["class", "add", "dev", ifname, "parent", "1:", "classid", "1:2", "htb",
                 "rate", "10gbit"],
                ["filter", "add", "dev", ifname, "parent", "1:", *match, "flowid", "1:1"]):
        subprocess.run(tc + cmd, check=True, stderr=subprocess.DEVNULL)
    # An HTB class starts with a burst's worth of credit: spend it (and 40 s more at 8 bit/s)
    # on one bare TCP header of our own, so the window update is the one that waits.
    raw = socket.socket(_family(a.addr), socket.SOCK_RAW, socket.IPPROTO_TCP)
    raw.sendto(struct.pack("!HHIIBBHHH", 9, 9, 0, 0, 5 << 4, 0x10, 0, 0, 0), (a.addr, 0))
    raw.close()
    h, n = hashlib.sha256(), 0
    s.setblocking(False)
    while True:                          # drain: the window reopens, the update is dropped
        try:
            data = s.recv(CHUNK)
        except BlockingIOError:
            break
        h.update(data)
        n += len(data)
    _wait("the window update", lambda: _netstat("TCPFromZeroWindowAdv") > reopen0, a.timeout)
    shown = subprocess.run(tc + ["class", "show", "dev", ifname, "classid", "1:1"], check=True,
                           capture_output=True, text=True).stdout
    lost = int(shown.split(" backlog ", 1)[1].split("p", 1)[0].split()[-1])   # "...b Np"
    subprocess.run(tc + ["qdisc", "del", "dev", ifname, "root"], check=True)
    s.settimeout(a.timeout)
    while True:
        data = s.recv(CHUNK)
        if not data:
            break
        h.update(data)
        n += len(data)
    good = n == a.bytes and h.digest() == hashlib.sha256(pattern(a.seed, a.bytes)).digest()
    print(f"received {n} {'intact' if good else 'CORRUPT'} updates-dropped {lost}", flush=True)
    return 0 if good else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=["echo-server", "many", "send-after-eof-server",
                                    "halfclose-client", "reset-server", "reset-client",
                                    "expect-reset-server", "expect-reset-client", "refused",
                                    "sequential", "lost-window-update-client"])
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
