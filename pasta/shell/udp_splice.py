"""UDP loopback path: datagrams socket to socket between the two namespaces, no tap
(pasta-reference.md section 13.2).

Purpose: `-U` (a namespace loopback client to a host loopback port) and loopback clients of `-u`
ports (unless `--no-splice`) exchange datagrams directly.

Theory of operation: a flow per (listening socket, client address, client port), in the flow
table (`pasta.core.flow`, type UDP, its initiating side on pif HOST for `-u` or SPLICE for `-U`) with
the UDP idle timeouts (conntrack's, as `pasta.shell.udp`). Its *reply socket* lives on the other side:
- `-U`: created in the host namespace, bound to the client's loopback address and source port,
  connected to the host's 127.0.0.1 / ::1 at the listening port plus the mapping delta; for a
  listener bound to interface `lo` (pasta 2026's `-U`), to the loopback address the datagram
  was sent to (IP_PKTINFO), and replies leave from that address (127.0.0.53 for a resolver);
- `-u` from a loopback client: created inside the namespace (through `netns.ns_call`), bound to
  the wildcard address and the client's source port, connected to the namespace's address (the
  one it uses, `addr_seen`; its loopback address with `--host-lo-to-ns-lo`) at the target port.
Datagrams from the client are sent on the reply socket; datagrams arriving on the reply socket go
back to the client through the listening socket (`sendto`), so the client sees its replies come
from the address and port it sent to. Zero-length datagrams are datagrams like any other.

States and events: flow created by the first datagram, refreshed by every datagram either way,
closed when idle (the flow table's sweep) or evicted when the table is full.

Invariants: each flow owns one reply socket registered with the engine; listening sockets belong
to their creator (`UdpFlows` for `-u`, `UdpSplice` for `-U`).

Limits: if the client's source port is taken on the other side, the flow cannot be made and the
datagram is dropped, counted (as pasta).

Kernel assumptions: sockets created by a thread inside a network namespace stay in it when used
from another thread. Differences from passt: the reply socket is created on demand, not taken
from a pool; up to `BATCH` datagrams are read per wake-up.
"""

from __future__ import annotations

import socket

from pasta.core import fwd
from pasta.util import log, netns
from pasta.shell.engine import EPOLLIN, FdKind
from pasta.core.flow import Flow, FlowSide, FlowTab, FlowType, Pif
from pasta.shell.listeners import Listener, Listeners
from pasta.util.sock import Proto, sock_l4
from pasta.shell.udp import MAX_FLOWS, SOCK_BUF, UDP_TIMEOUT_S

BATCH = 32
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)              # linux/in.h (Python 3.12+ has it)
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)  # linux/in6.h
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)


class SpliceFlow(Flow):
    __slots__ = ("key", "listener", "client", "sock", "fd", "dst")

    def __init__(self, key, listener, client, sock, dst=None):
        super().__init__()
        self.key = key
        self.listener = listener          # socket the client talks to
        self.client = client              # the client's sockaddr
        self.sock = sock                  # reply socket on the other side
        self.fd = sock.fileno()
        self.dst = dst                    # packed address the client sent to (-U on `lo`)


def _reply_socket(v6: bool, bind_addr: str, port: int, target) -> socket.socket:
    return sock_l4(v6, Proto.UDP, reuse=True, bufsize=SOCK_BUF, bind=(bind_addr, port),
                   connect=target)


def _ns_listener(v6: bool, addr, ifname: str, port: int) -> socket.socket:
    """Run inside the namespace: a UDP listener for -U on `addr`, or on every address of
    interface `ifname` (`lo`), then with the destination of each datagram reported
    (IP_PKTINFO / IPV6_RECVPKTINFO)."""
    host = str(addr) if addr is not None else ("::" if v6 else "0.0.0.0")
    sock = sock_l4(v6, Proto.UDP, reuse=True, bufsize=SOCK_BUF, ifname=ifname or None,
                   bind=(host, port))
    if addr is None:
        if v6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    return sock


def _pktinfo_dst(ancdata, v6: bool):
    """The destination address (packed) in a datagram's IP_PKTINFO / IPV6_PKTINFO."""
    for level, kind, data in ancdata:
        if v6 and level == socket.IPPROTO_IPV6 and kind == IPV6_PKTINFO:
            return bytes(data[:16])
        if not v6 and level == socket.IPPROTO_IP and kind == IP_PKTINFO:
            return bytes(data[8:12])            # struct in_pktinfo: ifindex, spec_dst, addr
    return None


def _pktinfo_src(src: bytes, v6: bool) -> list:
    """Ancillary data making a reply leave from `src` (the address the client sent to)."""
    if v6:
        return [(socket.IPPROTO_IPV6, IPV6_PKTINFO, src + bytes(4))]
    return [(socket.IPPROTO_IP, IP_PKTINFO, bytes(4) + src + bytes(4))]


class UdpSplice:
    def __init__(self, engine, netns_fd: int, link, drop, host_lo_to_ns_lo: bool = False,
                 flowtab: FlowTab | None = None):
        self.engine = engine
        self.netns_fd = netns_fd
        self.link = link
        self.drop = drop
        self.host_lo_to_ns_lo = host_lo_to_ns_lo
        # Spliced UDP flows are UDP flows: the UDP limit and timeout (set by `UdpFlows`) apply.
        self.flowtab = flowtab if flowtab is not None else FlowTab.for_engine(engine)
        self.flowtab.limit(FlowType.UDP, MAX_FLOWS, UDP_TIMEOUT_S, replace=False)
        # -u loopback clients (pif HOST), -U clients (pif SPLICE)
        self.tables = (self.flowtab.bucket(FlowType.UDP, Pif.HOST),
                       self.flowtab.bucket(FlowType.UDP, Pif.SPLICE))
        self.listeners = Listeners(engine)
        self.buf = bytearray(65536)
        self.view = memoryview(self.buf)
        self.stats = engine.stats

    # ----------------------------------------------------------------- -U listeners
    def add_ns_listener(self, s, target: int) -> None:
        """One -U listener inside the namespace for `fwd_rule.Sock` `s`, on 127.0.0.1 / ::1 or
        bound to interface `lo` (`pasta.shell.fwd_listen` opens these for the rule table)."""
        sock = netns.ns_call(self.netns_fd, _ns_listener, s.v6, s.addr, s.ifname, s.port)
        on = self._ns_readable if s.addr is not None else self._ns_readable_pktinfo
        return self.listeners.add(sock, s.v6, s.port, target, on)

    def remove_ns_listener(self, lst: Listener) -> None:
        """Stop listening (`auto`: the host port went away); its flows end with it."""
        self.end_flows_of(lst.sock)
        self.listeners.remove(lst)

    def end_flows_of(self, lsock) -> None:
        """Close the flows whose clients talk to listening socket `lsock` (about to close)."""
        fd = lsock.fileno()
        for flow in [f for t in self.tables for f in t.values() if f.key[0] == fd]:
            self.flowtab.free(flow)
            self._close(flow)
        self._count()

    def _count(self) -> None:
        self.stats.udp_splice_flows = len(self.tables[0]) + len(self.tables[1])


    def _ns_readable(self, lst: Listener) -> None:
        lsock, v6, port = lst.sock, lst.v6, lst.target   # datagrams go to the host's target
        for _ in range(BATCH):
            try:
                n, client = lsock.recvfrom_into(self.buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            self.forward(lsock, v6, client, self.view[:n], to_ns=False, port=port)

    def _ns_readable_pktinfo(self, lst: Listener) -> None:
        """-U bound to `lo`: each datagram goes to the host's loopback address it was sent to
        in the namespace (127.0.0.53 stays 127.0.0.53), and replies leave from it."""
        lsock, v6, port = lst.sock, lst.v6, lst.target
        for _ in range(BATCH):
            try:
                n, anc, _flags, client = lsock.recvmsg_into((self.buf,), 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            dst = _pktinfo_dst(anc, v6)
            if dst is None or not fwd.is_loopback(dst):
                dst = fwd.LOOPBACK6 if v6 else fwd.LOOPBACK4
            self.forward(lsock, v6, client, self.view[:n], to_ns=False, port=port, dst=dst)

    # ----------------------------------------------------------------- both directions
    def forward(self, lsock, v6: bool, client, data, to_ns: bool, port: int,
                dst: bytes | None = None) -> None:
        """A datagram from `client` on listening socket `lsock`, for `port` on the other side
        (the namespace if `to_ns`, else the host's loopback: at `dst` if given)."""
        key = (lsock.fileno(), client[0], client[1], dst)
        flow = self.tables[not to_ns].flows.get(key)
        if flow is None:
            flow = self._open(key, lsock, v6, client, to_ns, port, dst)
            if flow is None:
                return
        else:
            self.flowtab.touch(flow, self.engine.now)
        flow.seen(False)
        try:
            flow.sock.send(data)
            self.stats.udp_splice_datagrams += 1
        except OSError as e:
            log.trace(f"{flow.prefix()}UDP splice: send: {e.strerror}")
            self.drop("udp splice: send failed")

    def _open(self, key, lsock, v6, client, to_ns: bool, port: int, dst: bytes | None):
        try:
            if to_ns:
                if self.host_lo_to_ns_lo:
                    addr = bytes(15) + b"\x01" if v6 else bytes((127, 0, 0, 1))
                else:
                    addr = self.link.addr_seen6 if v6 else self.link.addr_seen4
                if addr is None:
                    self.drop("udp splice: no namespace address")
                    return None
                target = (socket.inet_ntop(socket.AF_INET6 if v6 else socket.AF_INET, addr),
                          port)
                sock = netns.ns_call(self.netns_fd, _reply_socket, v6,
                                     "::" if v6 else "0.0.0.0", client[1], target)
            else:
                host = fwd.text(dst) if dst is not None else ("::1" if v6 else "127.0.0.1")
                sock = _reply_socket(v6, client[0], client[1],
                                     (host, port, 0, 0) if v6 else (host, port))
        except Exception as e:  # noqa: BLE001 - no fd, no thread (RuntimeError): this flow only
            log.debug(f"UDP splice: reply socket for {client[0]}:{client[1]}: "
                      f"{getattr(e, 'strerror', None) or e}")
            self.drop("udp splice: cannot bind or connect")
            return None
        flow = SpliceFlow(key, lsock, client, sock, dst)
        pif = Pif.HOST if to_ns else Pif.SPLICE
        if not self.flowtab.new(flow, FlowType.UDP, pif, key, self, self.engine.now,
                                (pif, Pif.SPLICE if to_ns else Pif.HOST),
                                (FlowSide(client[0], client[1], None, port),
                                 FlowSide(None, port, None, client[1]))):
            sock.close()
            self.drop("udp splice: flow table full")
            return None
        self.engine.add(flow.fd, EPOLLIN, lambda ev, f=flow: self._reply(f), FdKind.UDP)
        self._count()
        return flow

    def _reply(self, flow: SpliceFlow) -> None:
        got = False
        for _ in range(BATCH):
            try:
                n = flow.sock.recv_into(self.buf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:                    # ICMP error: only logged, as pasta
                log.trace(f"{flow.prefix()}UDP splice: recv: {e.strerror}")
                continue
            try:
                if flow.dst is None:
                    flow.listener.sendto(self.view[:n], flow.client)
                else:
                    flow.listener.sendmsg((self.view[:n],), _pktinfo_src(flow.dst, len(flow.dst) == 16),
                                          0, flow.client)
                self.stats.udp_splice_datagrams += 1
            except OSError as e:
                log.trace(f"{flow.prefix()}UDP splice: reply: {e.strerror}")
            got = True
        if got:
            flow.seen(True)
            self.flowtab.touch(flow, self.engine.now)

    # ----------------------------------------------------------------- expiry, teardown
    def flow_close(self, flow: SpliceFlow, evicted: bool) -> None:
        """The flow table expired `flow` (idle) or evicted it to make room."""
        self._close(flow)
        self._count()

    def _close(self, flow: SpliceFlow) -> None:
        self.engine.remove(flow.fd)
        flow.sock.close()

    def close(self) -> None:
        for flow in [f for t in self.tables for f in t.values()]:
            self.flowtab.free(flow)
            self._close(flow)
        self.listeners.close()
