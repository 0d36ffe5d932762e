"""Automatic port forwarding: `auto`, the default of -t, -u, -T and -U (pasta-reference.md 12.3).

Purpose: every port a service binds on one side appears on the other without any option, and
stops being forwarded when the service goes away.

Theory of operation:
- Scanning (pure): `bound_ports(text, state)` reads the local ports of one /proc/net/{tcp,udp}[6]
  table in a given state: TCP `0A` (LISTEN), UDP `07` (bound, not connected). `ProcNet` holds
  the four files of one side, opened once and re-read from offset 0 on every scan; the
  namespace's are opened from a thread inside it (`netns.ns_call`), and a /proc/net file stays
  bound to the namespace it was opened in, so the main thread reads them afterwards.
- Planning (pure): `wanted()`. -t auto forwards the namespace's TCP listeners from the host,
  -u auto its bound UDP ports *and* its TCP listeners (pasta's mirroring: iperf3 and friends
  use a TCP control port and UDP data on the same number); -T/-U auto the same from the host
  into the namespace's loopback. Ports that pypasta itself listens on, on the scanned side, are
  never forwarded back (no loops): they are the other direction's listeners, explicit or
  automatic. `auto,~RANGE` exclusions (a pypasta extension) are honoured. No port translation.
- Reconciling (`AutoForward.scan()`, at start-up and every `SCAN_S`): all wants are computed
  from one snapshot, then every direction opens listeners for new ports (both enabled
  families; a failed bind is logged once at debug level and retried on the next scan, as the
  port may be taken on this side) and closes the listeners of ports that went away. Closing a
  TCP listener leaves accepted connections alone; a UDP listener's flows end with it (their
  replies leave through it, and the service they reached is gone).

States: a direction maps each forwarded port to the listener handles its owner returned;
`failed` remembers ports whose bind failed (for logging once).

Invariants: a listener is created and closed only here (for `auto`) or at start-up (explicit
specs), always through its owner (`TcpFlows`, `UdpFlows`, `UdpSplice`, the translator's -T
listeners), which also keeps the epoll registration; the scan runs in the engine's thread.

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

from pasta import log

TCP_LISTEN = 0x0A
UDP_BOUND = 0x07
SCAN_S = 1.0
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


def wanted(scan_tcp: set, scan_udp: set, ours_tcp: set, ours_udp: set, udp: bool,
           spec) -> set:
    """Ports one direction should forward: bound by others on the scanned side, not excluded.

    `ours_*` are the ports pypasta listens on there (never forwarded back); for UDP the TCP
    listeners count too (pasta's mirroring). `spec` is the direction's `PortForward`.
    """
    want = scan_tcp - ours_tcp
    if udp:
        want |= scan_udp - ours_udp
    if spec is not None and spec.excluded:
        want = {p for p in want if not spec.is_excluded(p)}
    return want


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


class Direction:
    """One of -t/-u/-T/-U in auto mode: which side it scans and how to (un)listen a port."""

    def __init__(self, flag: str, scan_ns: bool, udp: bool, spec, add, remove):
        self.flag = flag
        self.scan_ns = scan_ns          # True: ports bound in the namespace (-t, -u)
        self.udp = udp
        self.spec = spec
        self.add = add                  # add(port) -> [handles] (raises OSError if none)
        self.remove = remove            # remove(handle)
        self.current: dict = {}
        self.failed: set = set()

    def reconcile(self, want: set) -> None:
        proto = "UDP" if self.udp else "TCP"
        where = "namespace to host" if self.scan_ns else "host to namespace"
        for port in sorted(self.current.keys() - want):
            for handle in self.current.pop(port):
                self.remove(handle)
            log.debug(f"auto {self.flag}: {proto} port {port} no longer forwarded")
        self.failed &= want
        for port in sorted(want - self.current.keys()):
            try:
                handles = self.add(port)
            except OSError as e:
                handles, why = [], e.strerror
            else:
                why = "no family could bind"
            if handles:
                self.current[port] = handles
                self.failed.discard(port)
                log.debug(f"auto {self.flag}: forwarding {proto} port {port} ({where})")
            elif port not in self.failed:
                self.failed.add(port)
                log.debug(f"auto {self.flag}: can't listen on {proto} port {port}: {why}")


class AutoForward:
    """Scan both sides every `SCAN_S` and keep every auto direction's listeners in step."""

    def __init__(self, engine, directions, host: ProcNet | None, ns: ProcNet | None, ours):
        self.engine = engine
        self.directions = directions
        self.host = host
        self.ns = ns
        self.ours = ours                # ours(in_ns: bool, udp: bool) -> set of ports
        self._timer = None

    def scan(self) -> None:
        scans = {}
        for side, procnet in ((True, self.ns), (False, self.host)):
            if procnet is None:
                continue
            needs_udp = any(d.udp for d in self.directions if d.scan_ns == side)
            scans[side] = (procnet.ports(False), procnet.ports(True) if needs_udp else set(),
                           self.ours(side, False), self.ours(side, True))
        wants = [wanted(*scans[d.scan_ns], d.udp, d.spec) for d in self.directions]
        for d, want in zip(self.directions, wants):
            d.reconcile(want)

    def start(self) -> None:
        self._timer = self.engine.call_later(SCAN_S, self._tick)

    def _tick(self) -> None:
        self.scan()
        self._timer = self.engine.call_later(SCAN_S, self._tick)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for procnet in (self.host, self.ns):
            if procnet is not None:
                procnet.close()
