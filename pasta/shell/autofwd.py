"""Automatic port forwarding, the scanning half: which ports are bound on each side.

Purpose: `auto` (the default of -t, -u, -T and -U, pasta-reference.md 12.3) forwards every port a
service binds on one side to the other, and stops when the service goes away. This module reads
the kernel's tables of bound ports; the forwarding table (`pasta.core.fwd_rule`, SCAN rules) decides
what to forward and `pasta.shell.fwd_listen` opens and closes the listeners.

Theory of operation:
- Parsing (pure): `bound_ports(text, state)` reads the local ports of one /proc/net/{tcp,udp}[6]
  table in a given state: TCP `0A` (LISTEN), UDP `07` (bound, not connected).
- `ProcNet` holds the four files of one side, opened once and re-read from offset 0 on every
  scan; the namespace's are opened from a thread inside it (`netns.ns_call`), and a /proc/net
  file stays bound to the namespace it was opened in, so the main thread reads them afterwards.
- Who scans what: -t/-u auto (HOST rules) scan the namespace, -T/-U auto (SPLICE rules) the
  host; -u also forwards the TCP listeners' numbers; pypasta's own listeners are never
  forwarded back (`fwd_rule.fwd_scan_wanted`). The scan runs at start-up and every second
  (`fwd_listen.FwdListen.scan`).

States and events: a `ProcNet` is open until `close()`.

Invariants: the files are read only from the engine's thread.

Limits: a port is noticed within one scan interval (1 s) plus the scan itself; ports bound on
the scanned side only for an instant in between scans are missed, as in pasta.

Kernel assumptions: /proc/net files opened by a thread in a namespace keep reporting that
namespace (seq_file bound at open); their line format is stable since Linux 2.6.

Differences from passt: pasta creates the host-side listeners of -t/-u auto at the first timer
tick; here the first scan runs before the namespace command starts, on both sides. Exclusions
with `auto` are an extension.
"""

from __future__ import annotations

import os
import re

TCP_LISTEN = 0x0A
UDP_BOUND = 0x07
NAMES = ("tcp", "tcp6", "udp", "udp6")

_PATTERNS: dict = {}


def bound_ports(text: bytes, state: int) -> set:
    """Local ports of the entries of a /proc/net/{tcp,udp}[6] table that are in `state`."""
    pattern = _PATTERNS.get(state)
    if pattern is None:
        pattern = _PATTERNS[state] = re.compile(
            rb"^ *\d+: [0-9A-Fa-f]+:([0-9A-Fa-f]{4}) [0-9A-Fa-f]+:[0-9A-Fa-f]{4} %02X " % state,
            re.M)
    return {port for port in map(lambda h: int(h, 16), pattern.findall(text)) if port}


class ProcNet:
    """The /proc/net/{tcp,tcp6,udp,udp6} files of one network namespace, opened once."""

    def __init__(self, fds: dict):
        self.fds = fds

    @classmethod
    def open_here(cls) -> "ProcNet":
        """Open the files of the calling thread's namespace (an absent family is skipped)."""
        fds = {}
        for name in NAMES:
            try:
                fds[name] = os.open(f"/proc/thread-self/net/{name}", os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                pass
        return cls(fds)

    def read(self, name: str) -> bytes:
        fd = self.fds.get(name)
        if fd is None:
            return b""
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    def ports(self, udp: bool) -> set:
        if udp:
            return bound_ports(self.read("udp"), UDP_BOUND) | \
                bound_ports(self.read("udp6"), UDP_BOUND)
        return bound_ports(self.read("tcp"), TCP_LISTEN) | \
            bound_ports(self.read("tcp6"), TCP_LISTEN)

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds = {}
