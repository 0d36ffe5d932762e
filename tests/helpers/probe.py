"""Wait until a TCP or UDP service answers, or until it is gone, and say how long that took.

Run as a script (stdlib only, so any interpreter works, in any namespace):

    python3 probe.py tcp ADDR PORT up --expect TEXT [--timeout S]   # connect, read TEXT
    python3 probe.py tcp ADDR PORT down [--timeout S]               # connect is refused
    python3 probe.py udp ADDR PORT up [--timeout S]     # a datagram comes back unchanged
    python3 probe.py udp ADDR PORT down [--timeout S]   # ICMP port unreachable (refused)

Attempts repeat every 50 ms. On success it prints the seconds elapsed since it started
(`ok 0.734`) and exits 0; on timeout it prints what the last attempt saw and exits 1. "up" means
the service itself answered (its text, or the echo), not merely that something accepted;
"down" means nothing listens any more (refused), not a slow or silent service.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time


def _family(addr: str) -> int:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def tcp_attempt(a) -> str:
    """"up", "down" or what else happened."""
    try:
        with socket.create_connection((a.addr, a.port), timeout=1.0) as s:
            got = b""
            while len(got) < len(a.expect):
                data = s.recv(4096)
                if not data:
                    break
                got += data
    except ConnectionRefusedError:
        return "down"
    except OSError as e:
        return f"error {e}"
    return "up" if got.decode(errors="replace").strip() == a.expect else f"got {got!r}"


def udp_attempt(a) -> str:
    s = socket.socket(_family(a.addr), socket.SOCK_DGRAM)
    try:
        s.settimeout(0.2)
        s.connect((a.addr, a.port))
        s.send(b"probe")
        data = s.recv(4096)
        return "up" if data == b"probe" else f"got {data!r}"
    except ConnectionRefusedError:
        return "down"
    except socket.timeout:
        return "no answer"
    except OSError as e:
        return f"error {e}"
    finally:
        s.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("proto", choices=["tcp", "udp"])
    p.add_argument("addr")
    p.add_argument("port", type=int)
    p.add_argument("want", choices=["up", "down"])
    p.add_argument("--expect", default="")
    p.add_argument("--timeout", type=float, default=10.0)
    a = p.parse_args(argv)
    attempt = tcp_attempt if a.proto == "tcp" else udp_attempt
    start = time.monotonic()
    while True:
        seen = attempt(a)
        elapsed = time.monotonic() - start
        if seen == a.want:
            print(f"ok {elapsed:.3f}", flush=True)
            return 0
        if elapsed > a.timeout:
            print(f"timeout after {elapsed:.3f} s: last attempt: {seen}", flush=True)
            return 1
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
