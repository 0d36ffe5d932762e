"""ICMP and ICMPv6 echo through unprivileged "ping" sockets (pasta-reference.md section 16).

Purpose: `ping` and `ping -6` from the namespace reach real hosts without raw sockets.

Theory of operation:
- A flow per (family, namespace source, destination, echo identifier), in the flow table
  (`pasta.core.flow`, type PING) with a 60 s idle timeout. Its host socket is `socket(AF_INETx, SOCK_DGRAM, IPPROTO_ICMPx)`, bound to
  port 0 (the kernel picks the identifier) and to `-o`/`--outbound-ifN` (`fwd.host_bind`).
- A request from the tap is sent with `sendto()` to the translated destination (`fwd.from_tap`,
  e.g. the gateway becomes 127.0.0.1); the kernel rewrites the identifier and the checksum.
- Echo replies read from the socket get the namespace's original identifier back and are
  written to the tap from the original destination address. A reply repeating the previous
  reply's sequence number is discarded (as pasta). Anything else read is ignored.
- If the kernel refuses the socket (`net.ipv4.ping_group_range` excludes our group), pasta's
  three-line warning is logged once and requests are dropped, counted.

States and events: flow created by a request, refreshed by requests, removed when idle (timer
sweep every second while flows exist) or evicted when the table is full.

Invariants: every flow in the table has exactly one open socket registered with the engine;
a removed flow's socket is unregistered and closed at once.

Limits: only echo request/reply; ICMP errors are not relayed (as pasta). Link-local IPv6
destinations are scoped to the template interface (`fwd.sockaddr`).

Kernel assumptions: ping sockets (Linux >= 3.0/3.11 for IPv6) return the ICMP message without
the IP header and fill in identifier and checksum on send.

Differences from passt: when the table is full the least recently used flow is evicted instead
of refusing the new one.
"""

from __future__ import annotations

import errno
import socket
import struct

from pasta.core import fwd
from pasta.util import log
from pasta.shell.engine import EPOLLIN, FdKind
from pasta.core.flow import Flow, FlowSide, FlowTab, FlowType, Pif
from pasta.util.sock import Proto, sock_l4
from pasta.core.wire import build_icmp4_frame, build_icmp6_frame

ECHO_TIMEOUT_S = 60.0
MAX_FLOWS = 1024
ICMP_ECHOREPLY, ICMP_ECHO = 0, 8
ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY = 128, 129
_ID_SEQ = struct.Struct("!HH")
_RECV_MAX = 65536


class EchoFlow(Flow):
    __slots__ = ("key", "sock", "fd", "v6", "src", "dst", "ident", "target", "last_seq")

    def __init__(self, key, sock, v6, src, dst, ident, target):
        super().__init__()
        self.key = key
        self.sock = sock
        self.fd = sock.fileno()
        self.v6 = v6
        self.src, self.dst, self.ident, self.target = src, dst, ident, target
        self.last_seq = None


class EchoFlows:
    def __init__(self, engine, link, rules: fwd.Rules, timeout: float = ECHO_TIMEOUT_S,
                 capacity: int = MAX_FLOWS, flowtab: FlowTab | None = None):
        self.engine = engine
        self.link = link
        self.rules = rules
        self.flowtab = flowtab if flowtab is not None else FlowTab.for_engine(engine)
        self.flowtab.limit(FlowType.PING, capacity, timeout)
        self.table = self.flowtab.bucket(FlowType.PING, Pif.TAP)
        self.stats = engine.stats
        self._warned = False
        self._buf = bytearray(_RECV_MAX)

    # ----------------------------------------------------------------- namespace -> host
    def from_tap(self, v6: bool, src: bytes, dst: bytes, ident: int, seq: int, msg) -> None:
        key = (v6, src, dst, ident)
        flow = self.table.flows.get(key)
        now = self.engine.now
        if flow is None:
            flow = self._open(key, v6, src, dst, ident)
            if flow is None:
                return
            if not self.flowtab.new(flow, FlowType.PING, Pif.TAP, key, self, now,
                                    (Pif.TAP, Pif.HOST),
                                    (FlowSide(src, ident, dst, ident),
                                     FlowSide(flow.target, 0, None, 0))):
                self._close(flow)
                self.link.drop("icmp: flow table full")
                return
            self.stats.icmp_flows = len(self.table)
            log.trace(f"{flow.prefix()}ICMP{'v6' if v6 else ''}: new echo flow "
                      f"{fwd.text(src)} -> {fwd.text(dst)} id {ident} "
                      f"(host {fwd.text(flow.target)})")
        else:
            self.flowtab.touch(flow, now)
        try:
            flow.sock.sendto(msg, fwd.sockaddr(self.rules, flow.v6, flow.target, 0))
        except OSError as e:
            log.trace(f"ICMP: sendto {fwd.text(flow.target)}: {e.strerror}")
            self.link.drop("icmp: send failed")
            return
        self.stats.icmp_requests += 1

    def _open(self, key, v6: bool, src: bytes, dst: bytes, ident: int):
        target = fwd.from_tap(self.rules, v6, 1, dst, 0)
        if not fwd.is_unicast(target) and not fwd.is_loopback(target):
            self.link.drop("icmp: not unicast")
            return None
        try:
            sock = sock_l4(v6, Proto.PING)
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EPERM):
                self._warn_ping()
            else:
                log.debug(f"ICMP: socket: {e.strerror}")
            self.link.drop("icmp: no ping socket")
            return None
        addr, ifname = fwd.host_bind(self.rules, v6, target)
        try:
            if ifname:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
            if addr is not None:
                sock.bind((fwd.text(addr), 0))
        except OSError as e:
            log.debug(f"ICMP: bind to {addr and fwd.text(addr)}%{ifname}: {e.strerror}")
        flow = EchoFlow(key, sock, v6, src, dst, ident, target)
        try:
            self.engine.add(flow.fd, EPOLLIN, lambda ev, f=flow: self._readable(f), FdKind.PING)
        except OSError as e:                # this flow only (issue 13 item 6)
            sock.close()
            log.debug(f"ICMP: epoll: {e.strerror}")
            self.link.drop("icmp: no ping socket")
            return None
        return flow

    def _warn_ping(self) -> None:
        if self._warned:
            return
        self._warned = True
        log.warn("Cannot open \"ping\" socket. You might need to:")
        log.warn("  sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"")
        log.warn("...echo requests/replies will fail.")

    # ----------------------------------------------------------------- host -> namespace
    def _readable(self, flow: EchoFlow) -> None:
        buf = self._buf
        for _ in range(32):
            try:
                n = flow.sock.recv_into(buf)
            except BlockingIOError:
                return
            except OSError as e:
                log.debug(f"ICMP: recv: {e.strerror}")
                return
            if n < 8:
                continue
            want = ICMPV6_ECHO_REPLY if flow.v6 else ICMP_ECHOREPLY
            if buf[0] != want:
                continue
            seq = _ID_SEQ.unpack_from(buf, 4)[1]
            if seq == flow.last_seq:
                continue                                # duplicate, as pasta
            flow.last_seq = seq
            _ID_SEQ.pack_into(buf, 4, flow.ident, seq)
            link = self.link
            build = build_icmp6_frame if flow.v6 else build_icmp4_frame
            frame = build(link.guest_mac, link.src_mac(flow.dst), flow.dst, flow.src, want, buf[1],
                          memoryview(buf)[4:n], vnet=link.vnet)
            link.send_bytes(frame)
            self.stats.icmp_replies += 1

    # ----------------------------------------------------------------- expiry
    def flow_close(self, flow: EchoFlow, evicted: bool) -> None:
        """The flow table expired `flow` (idle) or `evicted` it to make room."""
        self._close(flow)
        if evicted:
            self.stats.icmp_flows_evicted += 1
        self.stats.icmp_flows = len(self.table)

    def _close(self, flow: EchoFlow) -> None:
        self.engine.remove(flow.fd)
        flow.sock.close()

    def close(self) -> None:
        for flow in list(self.table.values()):
            self.flowtab.free(flow)
            self._close(flow)
