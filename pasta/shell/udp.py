"""UDP flows between the tap and host sockets, both ways (pasta-reference.md sections 9 and 15).

Purpose: datagrams the namespace sends leave from ordinary host sockets and replies come back
with the original addresses; datagrams arriving on `-u` forwarded ports reach the namespace from
the real peer address, and the namespace's replies leave from the forwarded port.

Theory of operation:
- A flow is a pseudo-connection named, on the tap side, by the namespace's 5-tuple
  `(v6, ns_addr, ns_port, peer_addr, peer_port)`: frames to the namespace are sent from
  `peer_addr:peer_port` to `ns_addr:ns_port`, and frames from the namespace with that tuple belong
  to it. Flows live in the flow table (`pasta.core.flow`, type UDP: the conntrack idle timeouts, least
  recently used evicted when full).
- Outbound (first datagram from the tap): the destination is translated (`fwd.from_tap`: DNS
  forwarding, gateway to host loopback, guest-address mapping), and a host socket of the same
  family is bound to the namespace's source port (SO_REUSEADDR, so several flows from one port
  can coexist; `-o`/`--outbound-ifN` apply) and connected to the target. If that port cannot be
  bound the datagram is dropped, counted (as pasta). The socket is registered with the engine;
  replies are received with `recv_into()` straight into a buffer after the room for the
  virtio-net, Ethernet, IP and UDP headers, which are then packed in front of the payload
  (`wire.pack_udp_hdrs_into`) and the frame is written with one `writev`: payload bytes are never
  copied in Python, and with the virtio-net header the checksum is left to the kernel.
- Inbound (`-u` listeners, bound at start-up in the host namespace): a datagram from a new
  `(listener, peer address, peer port)` makes a flow whose namespace side is (`addr_seen`,
  listening port + delta) and whose peer side is `fwd.to_tap_src(peer)`: the real peer address,
  or the gateway/link-local address for loopback and own-address peers. The namespace's replies
  match the flow's tap tuple and leave through the listening socket with `sendto(peer)`.
- Batches: while the tap reader hands over several frames at once (`batching`), datagrams are
  queued per flow and `flush()` sends each run of equal-sized datagrams as one `sendmsg` with
  UDP_SEGMENT (UDP GSO): the kernel's send path runs once per run instead of once per
  datagram, and the datagrams are cut apart again, boundaries and order intact, before any
  receiver sees them. Where the route refuses GSO the run goes datagram by datagram.
- Zero-length datagrams are ordinary datagrams. ICMP errors surface as socket errors
  (ECONNREFUSED...) and are logged (trace level) only, as pasta does; the flow stays (pasta
  closes a flow on EPOLLERR without a queued error; here such a flow simply idles out).
- IPv6 link-local targets are scoped to the template interface (`fwd.sockaddr`).

States and events: flow created by the first datagram in either direction, refreshed by every
datagram, removed when idle (a sweep each second while flows exist) or evicted.

Invariants: an outbound flow owns exactly one socket registered with the engine; an inbound flow
owns none (the listener stays); within one flow datagrams keep their order in both directions
(one socket, one tap, no reordering queue).

Limits and not handled: loopback clients of `-u` ports go socket to socket through
`pasta.shell.udp_splice` (unless `--no-splice`); `auto` forwarding comes with issue 5; ICMP
errors are not translated into ICMP messages on the tap (as pasta).

Kernel assumptions: Linux prefers a connected UDP socket over unconnected ones bound to the same
port (socket lookup scoring), so replies reach the flow's own socket.

Differences from passt: passt refuses new flows when its table is full, where we evict the least
recently used flow, inbound and outbound alike (so a peer spraying a `-u` port from thousands of
source ports can push out the namespace's idle outbound flows); we read up to `BATCH` datagrams
per wake-up, one `recv_into` each. Flow sockets get 4 MiB buffers (`SOCK_BUF`).
"""

from __future__ import annotations

import errno
import socket
import struct

from pasta.core import fwd
from pasta.util import log
from pasta.shell.engine import EPOLLIN, FdKind
from pasta.core.flow import Flow, FlowSide, FlowTab, FlowType, Pif
from pasta.shell.listeners import Listener, Listeners
from pasta.util.sock import Proto, sock_l4
from pasta.core.wire import pack_udp_hdrs_into, udp_hdrs_len

UDP_TIMEOUT_S = 30.0            # nf_conntrack_udp_timeout's default (pasta 2026 reads it)
UDP_TIMEOUT_STREAM_S = 120.0    # nf_conntrack_udp_timeout_stream's default
CONNTRACK_UDP = "/proc/sys/net/netfilter/nf_conntrack_udp_timeout"
MAX_FLOWS = 8192
BATCH = 32
DGRAM_MAX = 65535
IPPROTO_UDP = 17
# Reassembled datagrams cost about twice their size in buffer accounting (one skb per
# fragment): the default 208 KiB overflows under a burst of a few large datagrams while we are
# busy with the tap. Every UDP socket gets SOCK_BUF (capped at net.core.[rw]mem_max).
SOCK_BUF = 4 << 20
SOL_UDP = 17
UDP_SEGMENT = 103              # linux/udp.h: the cmsg carrying the GSO segment size
GSO_MAX_SEGS = 64              # UDP_MAX_SEGMENTS of older kernels (6.x allow 128)
GSO_MAX_BYTES = 65000          # one GSO send stays one IP packet's worth (64 KiB - headers)
GSO_ANY = 1 << 16              # UdpFlow.gso_limit: every datagram size may be segmented
_GSO_SIZE = struct.Struct("=H")
_NO_SOCKET = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))


def conntrack_udp_timeouts() -> tuple:
    """(timeout, stream timeout) in seconds from the conntrack sysctls, read once at start as
    pasta 2026 does; the kernel's defaults (30, 120) where conntrack is not loaded."""
    out = []
    for path, default in ((CONNTRACK_UDP, UDP_TIMEOUT_S),
                          (CONNTRACK_UDP + "_stream", UDP_TIMEOUT_STREAM_S)):
        try:
            with open(path) as f:
                value = float(int(f.read().strip()))
        except (OSError, ValueError):
            value = default
        out.append(value if value > 0 else default)
    return tuple(out)


class UdpFlow(Flow):
    __slots__ = ("key", "v6", "ns_addr", "ns_port", "peer_addr", "peer_port", "sock", "fd",
                 "listener", "host_peer", "in_key", "gso_limit")

    def __init__(self, key, sock, listener=None, host_peer=None, in_key=None):
        super().__init__()
        self.key = key
        self.v6, self.ns_addr, self.ns_port, self.peer_addr, self.peer_port = key
        self.sock = sock                  # outbound: own connected socket; inbound: None
        self.fd = sock.fileno() if sock is not None else -1
        self.listener = listener          # inbound: the -u listening socket
        self.host_peer = host_peer        # inbound: sockaddr of the real peer
        self.in_key = in_key              # inbound: (listener fd, peer address, peer port)
        self.gso_limit = GSO_ANY          # only datagrams shorter than this go out with GSO


class UdpFlows:
    def __init__(self, engine, link, rules: fwd.Rules, freebind: bool = False,
                 timeout: float = UDP_TIMEOUT_S, capacity: int = MAX_FLOWS,
                 flowtab: FlowTab | None = None, splice=None,
                 timeout_stream: float = UDP_TIMEOUT_STREAM_S):
        self.engine = engine
        self.link = link
        self.rules = rules
        self.freebind = freebind
        self.flowtab = flowtab if flowtab is not None else FlowTab.for_engine(engine)
        self.flowtab.limit(FlowType.UDP, capacity, timeout, timeout_stream=timeout_stream)
        self.table = self.flowtab.bucket(FlowType.UDP, Pif.TAP)     # looked up by tap tuple
        self.inbound: dict = {}
        self.listeners = Listeners(engine)
        self.stats = engine.stats
        self.splice = splice            # loopback clients of -u: to pasta.shell.udp_splice
        self.hdr4 = udp_hdrs_len(False, link.vnet)
        self.hdr6 = udp_hdrs_len(True, link.vnet)
        self.buf = bytearray(self.hdr6 + DGRAM_MAX)
        self.view = memoryview(self.buf)
        self.batching = False           # set by the tap reader around a batch of frames
        self.pending: dict = {}         # flow -> payload views waiting for flush()

    # ----------------------------------------------------------------- namespace -> host
    def from_tap(self, v6: bool, src: bytes, dst: bytes, sport: int, dport: int, payload) -> None:
        key = (v6, src, sport, dst, dport)
        flow = self.table.flows.get(key)
        if flow is None:
            flow = self._open_outbound(key)
            if flow is None:
                return
        else:
            self.flowtab.touch(flow, self.engine.now)
        flow.seen(flow.sock is None)        # inbound flows: the namespace is the target
        if self.batching:
            q = self.pending.get(flow)
            if q is None:
                self.pending[flow] = [payload]
            else:
                q.append(payload)
            return
        self._send(flow, payload)

    def _send(self, flow: UdpFlow, payload) -> None:
        try:
            if flow.sock is not None:
                flow.sock.send(payload)
            else:
                flow.listener.sendto(payload, flow.host_peer)
        except (BlockingIOError, InterruptedError):
            self.link.drop("udp: host socket full")
            return
        except OSError as e:
            log.trace(f"UDP: send to {fwd.text(flow.peer_addr)}:{flow.peer_port}: {e.strerror}")
            self.link.drop("udp: send failed")
            return
        self.stats.udp_to_host += 1

    def flush(self) -> None:
        """Send the datagrams queued while `batching`: per flow, in order, and each run of
        equal-sized datagrams (a shorter one may end it) as one UDP GSO send.

        UDP_SEGMENT makes the kernel walk its send path once for up to 64 datagrams and cut
        them apart late (on the wire, or at the receiving socket): the receiver sees the same
        datagrams, with the same boundaries and order. A route that cannot take GSO (EINVAL,
        EMSGSIZE: a segment above the path MTU; EIO: no checksum offload) gets this run sent
        datagram by datagram, and the flow does not try GSO again for that size or above.
        """
        self.batching = False
        pending, self.pending = self.pending, {}
        for flow, q in pending.items():
            if len(q) == 1:
                self._send(flow, q[0])
                continue
            i, n = 0, len(q)
            while i < n:
                size = len(q[i])
                j = i + 1
                if 0 < size < flow.gso_limit:
                    end = min(n, i + GSO_MAX_SEGS, i + GSO_MAX_BYTES // size)
                    while j < end:
                        got = len(q[j])
                        if got != size:
                            if 0 < got < size:
                                j += 1          # a shorter datagram may close the run
                            break
                        j += 1
                if j - i == 1:
                    self._send(flow, q[i])
                else:
                    self._send_gso(flow, q[i:j], size)
                i = j

    def _send_gso(self, flow: UdpFlow, run: list, size: int) -> None:
        cmsg = [(SOL_UDP, UDP_SEGMENT, _GSO_SIZE.pack(size))]
        try:
            if flow.sock is not None:
                flow.sock.sendmsg(run, cmsg)
            else:
                flow.listener.sendmsg(run, cmsg, 0, flow.host_peer)
        except (BlockingIOError, InterruptedError):
            self.link.drop("udp: host socket full", len(run))
            return
        except OSError as e:
            if e.errno in (errno.EINVAL, errno.EMSGSIZE, errno.EIO, errno.ENOPROTOOPT,
                           errno.EOPNOTSUPP):
                flow.gso_limit = size if e.errno in (errno.EINVAL, errno.EMSGSIZE) else 0
                log.trace(f"UDP: no GSO to {fwd.text(flow.peer_addr)}:{flow.peer_port} for "
                          f"{size}-byte datagrams: {e.strerror}")
                self.stats.udp_gso_fallbacks += 1
                for payload in run:
                    self._send(flow, payload)
                return
            log.trace(f"UDP: send to {fwd.text(flow.peer_addr)}:{flow.peer_port}: {e.strerror}")
            self.link.drop("udp: send failed", len(run))
            return
        self.stats.udp_to_host += len(run)
        self.stats.udp_gso_sends += 1

    def _open_outbound(self, key):
        v6, src, sport, dst, dport = key
        if not sport or not dport or not fwd.is_unicast(dst) or not fwd.is_unicast(src):
            self.link.drop("udp: not unicast or port 0")
            return None
        target = fwd.from_tap(self.rules, v6, IPPROTO_UDP, dst, dport)
        bind_addr, ifname = fwd.host_bind(self.rules, v6, target)
        try:
            sock = sock_l4(v6, Proto.UDP, reuse=True, freebind=self.freebind, ifname=ifname,
                           bufsize=SOCK_BUF,
                           bind=(fwd.text(bind_addr) if bind_addr else ("::" if v6 else
                                                                         "0.0.0.0"), sport),
                           connect=fwd.sockaddr(self.rules, v6, target, dport))
        except OSError as e:
            if e.errno in _NO_SOCKET:
                log.debug(f"UDP: socket: {e.strerror}")
                self.link.drop("udp: no socket")
            else:
                log.trace(f"UDP: flow {fwd.text(src)}:{sport} -> {fwd.text(dst)}:{dport}: "
                          f"{e.strerror}")
                self.link.drop("udp: cannot bind or connect")
            return None
        flow = UdpFlow(key, sock)
        try:
            self.engine.add(flow.fd, EPOLLIN, lambda ev, f=flow: self._readable(f, ev),
                            FdKind.UDP)
        except OSError as e:                # this flow only (issue 13 item 6)
            sock.close()
            log.debug(f"UDP: epoll: {e.strerror}")
            self.link.drop("udp: no socket")
            return None
        if not self._insert(flow, (Pif.TAP, Pif.HOST),
                            (FlowSide(src, sport, dst, dport), FlowSide(target, dport))):
            return None
        log.trace(f"{flow.prefix()}UDP: new flow {fwd.text(src)}:{sport} -> "
                  f"{fwd.text(dst)}:{dport} (host {fwd.text(target)}:{dport})")
        return flow

    def _insert(self, flow: UdpFlow, pifs: tuple, sides: tuple) -> bool:
        """Into the flow table, hashed by its tap tuple; False (and closed) if full."""
        if not self.flowtab.new(flow, FlowType.UDP, Pif.TAP, flow.key, self, self.engine.now,
                                pifs, sides):
            self._close(flow)
            self.link.drop("udp: flow table full")
            return False
        self.stats.udp_flows = len(self.table)
        return True

    # ----------------------------------------------------------------- host -> namespace
    def _readable(self, flow: UdpFlow, events: int) -> None:
        sock = flow.sock
        off = self.hdr6 if flow.v6 else self.hdr4
        rx = self.view[off:]
        got = 0
        for _ in range(BATCH):
            try:
                n = sock.recv_into(rx)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:                 # ICMP error reported on the socket
                log.trace(f"UDP: flow to {fwd.text(flow.peer_addr)}:{flow.peer_port}: "
                          f"{e.strerror}")
                if e.errno not in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH,
                                   errno.EMSGSIZE):
                    break
                continue
            self._to_tap(flow, n)
            got += 1
        if got:
            flow.seen(True)
            if got > 1:
                flow.seen(True)
            self.flowtab.touch(flow, self.engine.now)

    def _to_tap(self, flow: UdpFlow, n: int) -> None:
        link = self.link
        length = pack_udp_hdrs_into(self.buf, flow.v6, link.vnet, link.csum_offload,
                                    link.guest_mac, link.src_mac(flow.peer_addr), flow.peer_addr,
                                    flow.ns_addr,
                                    flow.peer_port, flow.ns_port, n)
        if link.send((self.view[:length],), length):
            self.stats.udp_to_ns += 1

    # ----------------------------------------------------------------- -u listeners
    def bind_listener(self, v6: bool, addr, ifname, port: int, delta: int,
                      reuse: bool = True, taddr: bytes | None = None) -> None:
        """One -u listening socket (`pasta.shell.fwd_listen` opens these for the rule table);
        `taddr` (packed): deliver to that address instead of the namespace's own."""
        host = str(addr) if addr is not None else ("::" if v6 else "0.0.0.0")
        sock = sock_l4(v6, Proto.UDP, reuse=reuse, freebind=self.freebind, ifname=ifname,
                       bufsize=SOCK_BUF, bind=(host, port))
        return self.listeners.add(sock, v6, port, port + delta, self._listener_readable, taddr)

    def remove_listener(self, lst: Listener) -> None:
        """Stop listening (`auto`: the port went away). Its flows end with it: replies leave
        through the listener, and the namespace service they belonged to is gone. (Loopback
        clients' flows live in `UdpSplice`: the translator ends those.)"""
        for in_key, flow in list(self.inbound.items()):
            if in_key[0] == lst.fd:
                self.flowtab.free(flow)
                self._close(flow)
        self.listeners.remove(lst)
        self.stats.udp_flows = len(self.table)


    def _listener_readable(self, lst: Listener) -> None:
        off = self.hdr6 if lst.v6 else self.hdr4
        rx = self.view[off:]
        for _ in range(BATCH):
            try:
                n, peer = lst.sock.recvfrom_into(rx)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log.debug(f"UDP: listener: {e.strerror}")
                continue
            if (self.splice is not None and lst.taddr is None
                    and fwd.is_loopback_host(peer[0])):
                self.splice(lst.sock, lst.v6, peer, rx[:n], lst.port + lst.delta)
                continue
            flow = self._inbound_flow(lst, peer)
            if flow is None:
                continue
            flow.seen(False)
            self.flowtab.touch(flow, self.engine.now)
            self._to_tap(flow, n)

    def _inbound_flow(self, lst: Listener, peer):
        family = socket.AF_INET6 if lst.v6 else socket.AF_INET
        paddr = socket.inet_pton(family, peer[0].split("%", 1)[0])
        pport = peer[1]
        in_key = (lst.fd, paddr, pport, peer[3] if lst.v6 else 0)
        flow = self.inbound.get(in_key)
        if flow is not None:
            return flow
        link = self.link
        v6 = lst.v6
        seen_src = fwd.to_tap_src(self.rules, v6, paddr, link.addr_seen6 if v6 else
                                  link.addr_seen4)
        if seen_src is None:
            link.drop("udp: inbound refused")
            return None
        if lst.taddr is not None:
            ns_addr = lst.taddr
        elif v6:
            ns_addr = link.addr_ll_seen6 if fwd.is_link_local6(seen_src) else link.addr_seen6
        else:
            ns_addr = link.addr_seen4
        if ns_addr is None:
            link.drop("udp: no namespace address")
            return None
        port = lst.sock.getsockname()[1]
        key = (v6, ns_addr, port + lst.delta, seen_src, pport)
        old = self.table.get(key)
        if old is not None:
            self.flowtab.free(old)
            self._close(old)
        flow = UdpFlow(key, None, listener=lst.sock, host_peer=peer, in_key=in_key)
        self.inbound[in_key] = flow
        if not self._insert(flow, (Pif.HOST, Pif.TAP),
                            (FlowSide(paddr, pport, None, port),
                             FlowSide(ns_addr, port + lst.delta, seen_src, pport))):
            return None
        log.trace(f"{flow.prefix()}UDP: inbound flow {peer[0]}:{pport} -> port {port}, "
                  f"namespace sees "
                  f"{fwd.text(seen_src)}:{pport} -> {fwd.text(ns_addr)}:{port + lst.delta}")
        return flow

    # ----------------------------------------------------------------- expiry and teardown
    def flow_close(self, flow: UdpFlow, evicted: bool) -> None:
        """The flow table expired `flow` (idle) or `evicted` it to make room."""
        self._close(flow)
        if evicted:
            self.stats.udp_flows_evicted += 1
        self.stats.udp_flows = len(self.table)

    def _close(self, flow: UdpFlow) -> None:
        if flow.sock is not None:
            self.engine.remove(flow.fd)
            flow.sock.close()
        if flow.in_key is not None:
            self.inbound.pop(flow.in_key, None)

    def close(self) -> None:
        for flow in list(self.table.values()):
            self.flowtab.free(flow)
            self._close(flow)
        self.listeners.close()
