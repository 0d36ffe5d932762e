"""The translator: everything between the tap and the host's sockets, put together.

Purpose: build the link context, the translation rules, the tap dispatcher and the protocol
handlers from the configuration, bind the `-u` forwards, and register everything with the
engine. The supervisor creates one `Translator` after the tap exists and before it signals
readiness (so bind failures are start-up errors), then runs the engine.

Theory of operation: `Translator(cfg, plan, engine, tap, guest_mac, resolv_conf)` does all the
fallible set-up (sockets, pcap file); `start()` arms the tap reader and the periodic router
advertisements; `close()` releases every socket. SIGUSR2 logs the counters (`dump_state`).

States: built -> started -> closed.

Invariants: the tap is read only by `TapLink.on_readable()`; a tap hang-up, EOF or read/write
error stops the engine with exit status 1 ("EOF on tap device, exiting", "Error on tap device,
exiting", "Disconnect event on /dev/net/tun device, exiting", as pasta). The namespace's
link-local address set by `--config-net` is known from the start (as pasta's `addr_ll_seen`).

`auto` forwarding (the default of -t/-u/-T/-U) is `pasta.autofwd`, fed with the listener
operations of the parts assembled here; its first scan runs during construction.

Limits: see the modules it assembles.

Kernel assumptions: see the modules it assembles. Differences from passt: none beyond theirs.
"""

from __future__ import annotations

import ipaddress
import socket
import time

from pasta import fwd, linkctx, log, netns, portspec
from pasta.autofwd import AutoForward, Direction, ProcNet
from pasta.dispatch import TapLink
from pasta.engine import EPOLLERR, EPOLLHUP, EPOLLIN
from pasta.errors import SetupError
from pasta.flow import FlowTab, Pif
from pasta.icmp import EchoFlows
from pasta.listeners import Listeners
from pasta.pcap import Pcap
from pasta.portspec import EPHEMERAL_DEFAULT, FwdMode
from pasta.splice import TcpSplice
from pasta.tcpio import TcpFlows
from pasta.udp import UdpFlows
from pasta.udpsplice import UdpSplice

RESOLV_CONF = "/etc/resolv.conf"


def read_resolv_conf(path: str = RESOLV_CONF) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return EPHEMERAL_DEFAULT


def dns_warnings(cfg, plan, resolv_conf: str) -> list[str]:
    """pasta's DNS warnings (WARN level: shown even with --quiet)."""
    if cfg.dns_none:
        return []
    offer = linkctx.dns_offer(cfg, plan, resolv_conf)
    out = []
    if not offer.dns4 and not offer.dns6 and offer.dns_host4 is None \
            and offer.dns_host6 is None:
        out.append("Couldn't get any nameserver address")
    if cfg.dhcp_dns:
        if plan.v4.enabled and not offer.dns4:
            out.append("No IPv4 nameserver available for DHCP")
        if plan.v6.enabled and not offer.dns6:
            out.append("No IPv6 nameserver available for NDP/DHCPv6")
    return out


class Translator:
    def __init__(self, cfg, plan, engine, tap, guest_mac, resolv_conf: str = "",
                 guest_ll6=None, netns_fd: int | None = None):
        self.engine = engine
        self.tap = tap
        for w in dns_warnings(cfg, plan, resolv_conf):
            log.warn(w)
        ctx = linkctx.LinkCtx.from_config(
            cfg, plan, guest_mac, resolv_conf=resolv_conf,
            duid_time=linkctx.duid_time_from_unix(time.time()))
        self.rules = fwd.Rules.from_config(cfg, plan, resolv_conf)
        self.pcap = Pcap.open(cfg.pcap) if cfg.pcap else None
        self.link = TapLink(engine, tap, ctx, self.rules, self.pcap)
        if guest_ll6 is not None and plan.v6.enabled:
            self.link.addr_ll_seen6 = _packed6(guest_ll6)
        self.udp = self.icmp = self.tcp = self.splice = self.udpsplice = None
        self.flowtab = FlowTab.for_engine(engine)           # every flow of every protocol
        self.netns_fd = netns_fd
        self.host_lo_to_ns_lo = cfg.host_lo_to_ns_lo
        self.ns_listeners = Listeners(engine)
        self.auto = None
        try:
            if not cfg.no_udp:
                self.udp = UdpFlows(engine, self.link, self.rules, freebind=cfg.freebind,
                                    flowtab=self.flowtab)
                udp = self.udp
                _forward(cfg.udp_ports, "-u", plan, lambda v6, r, p, t:
                         udp.bind_listener(v6, r.addr, r.ifname, p, t - p))
                if netns_fd is not None:
                    self.udpsplice = UdpSplice(engine, netns_fd, self.link, self.link.drop,
                                               host_lo_to_ns_lo=cfg.host_lo_to_ns_lo,
                                               flowtab=self.flowtab)
                    if not cfg.no_splice:
                        fwd_ = self.udpsplice.forward
                        self.udp.splice = (lambda lsock, v6, peer, data, port:
                                           fwd_(lsock, v6, peer, data, True, port))
                    us = self.udpsplice
                    _forward(cfg.udp_ns, "-U", plan, lambda v6, r, p, t:
                             us.add_ns_listener(v6, p, t), need_any=False)
            if not cfg.no_icmp:
                self.icmp = EchoFlows(engine, self.link, self.rules, flowtab=self.flowtab)
            if not cfg.no_tcp:
                self.tcp = TcpFlows(engine, self.link, self.rules, plan.mtu)
                tcp = self.tcp
                _forward(cfg.tcp_ports, "-t", plan, lambda v6, r, p, t:
                         tcp.bind_listener(v6, r.addr, r.ifname, p, t - p, cfg.freebind))
                if netns_fd is not None:
                    self.splice = TcpSplice(engine, flowtab=self.flowtab)
                    if not cfg.no_splice:
                        self.tcp.splice = self._splice_to_ns
                    _forward(cfg.tcp_ns, "-T", plan, lambda v6, r, p, t:
                             self._add_ns_listener(v6, p, t), need_any=False)
            self.auto = self._auto_forward(cfg, plan, netns_fd)
            if self.auto is not None:
                self.auto.scan()
        except BaseException:
            self.close()
            raise
        self.link.udp, self.link.icmp, self.link.tcp = self.udp, self.icmp, self.tcp

    # ------------------------------------------------------------- auto forwarding
    def _auto_forward(self, cfg, plan, netns_fd):
        """The `auto` directions (the default of all four options when not given)."""
        if netns_fd is None:
            return None
        fams = [False] * plan.v4.enabled + [True] * plan.v6.enabled
        tcp, udp, us = self.tcp, self.udp, self.udpsplice
        dirs = []
        if tcp is not None and _is_auto(cfg.tcp_ports):
            dirs.append(Direction("-t", True, False, cfg.tcp_ports, lambda p: _each(
                fams, lambda v6: tcp.bind_listener(v6, None, None, p, 0, cfg.freebind)),
                tcp.remove_listener))
        if udp is not None and _is_auto(cfg.udp_ports):
            dirs.append(Direction("-u", True, True, cfg.udp_ports, lambda p: _each(
                fams, lambda v6: udp.bind_listener(v6, None, None, p, 0)),
                self.remove_udp_listener))
        if self.splice is not None and _is_auto(cfg.tcp_ns):
            dirs.append(Direction("-T", False, False, cfg.tcp_ns, lambda p: _each(
                fams, lambda v6: self._add_ns_listener(v6, p, p)), self._remove_ns_listener))
        if us is not None and _is_auto(cfg.udp_ns):
            dirs.append(Direction("-U", False, True, cfg.udp_ns, lambda p: _each(
                fams, lambda v6: us.add_ns_listener(v6, p, p)), us.remove_ns_listener))
        if not dirs:
            return None
        host = ProcNet.open_here() if any(not d.scan_ns for d in dirs) else None
        try:
            ns = (netns.ns_call(netns_fd, ProcNet.open_here) if any(d.scan_ns for d in dirs)
                  else None)
        except BaseException:
            if host is not None:
                host.close()
            raise
        return AutoForward(self.engine, dirs, host, ns, self._our_ports)

    def _our_ports(self, in_ns: bool, udp: bool) -> set:
        """Ports pypasta listens on in the namespace (-T/-U) or on the host (-t/-u)."""
        if in_ns:
            if udp:
                return self.udpsplice.listen_ports() if self.udpsplice is not None else set()
            return self.ns_listeners.ports()
        part = self.udp if udp else self.tcp
        return part.listen_ports() if part is not None else set()

    # ------------------------------------------------------------- loopback bypass (TCP)
    def _splice_to_ns(self, sock, v6: bool, peer, port: int) -> None:
        """A host loopback client of a -t port: join it to a connection made inside the
        namespace to the address it uses (section 9.2, spliced)."""
        link = self.link
        if self.host_lo_to_ns_lo:
            addr = fwd.LOOPBACK6 if v6 else fwd.LOOPBACK4
        else:
            addr = link.addr_seen6 if v6 else link.addr_seen4
        if addr is None:
            self.splice.refuse(sock)
            return
        try:
            target = netns.ns_call(self.netns_fd, _tcp_socket, v6)
        except Exception as e:  # noqa: BLE001 - no thread (RuntimeError), no fd: this client only
            log.debug(f"splice: socket in namespace: {e}")
            self.splice.refuse(sock)
            return
        self.splice.join(sock, target, fwd.sockaddr(self.rules, v6, addr, port))

    def _add_ns_listener(self, v6: bool, port: int, target: int) -> None:
        """-T: a loopback listener inside the namespace (127.0.0.1 or ::1 only, as pasta)."""
        sock = netns.ns_call(self.netns_fd, _ns_listener, v6, port)
        return self.ns_listeners.add(sock, v6, port, target, self._accept_ns)

    def _remove_ns_listener(self, lst) -> None:
        self.ns_listeners.remove(lst)

    def remove_udp_listener(self, lst) -> None:
        """Close a -u listener and every flow that used it (spliced loopback ones included)."""
        if self.udpsplice is not None:
            self.udpsplice.end_flows_of(lst.sock)
        self.udp.remove_listener(lst)

    def _accept_ns(self, lst) -> None:
        v6, port = lst.v6, lst.target                   # connections go to the host's target

        def take(sock, peer):
            # Section 9.3: to the host's loopback, from the loopback address the client used.
            try:
                host = _tcp_socket(v6)
            except OSError as e:
                log.debug(f"splice: host socket: {e.strerror}")
                self.splice.refuse(sock)
                return
            try:
                host.bind((peer[0], 0))
            except OSError as e:
                log.debug(f"splice: host socket: {e.strerror}")
                host.close()
                self.splice.refuse(sock)
                return
            self.splice.join(sock, host, ("::1", port, 0, 0) if v6 else ("127.0.0.1", port),
                             Pif.SPLICE)
        self.ns_listeners.accept_each(lst, take, "splice")

    def start(self) -> None:
        self.tap.register(self.engine, self._tap_event)
        self.link.start()
        if self.auto is not None:
            self.auto.start()

    def _tap_event(self, events: int) -> None:
        if events & (EPOLLERR | EPOLLHUP) and not events & EPOLLIN:
            log.err("Disconnect event on /dev/net/tun device, exiting")
            self.engine.stop(1)
            return
        try:
            self.link.on_readable(events)
        except EOFError:
            log.err("EOF on tap device, exiting")
            self.engine.stop(1)
        except OSError as e:
            log.err(f"Error on tap device, exiting ({e.strerror})")
            self.engine.stop(1)

    def dump_state(self, _sig: int = 0, prio: int = log.INFO) -> None:
        stats = self.engine.stats
        log.log(prio, "state: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.items())))

    def close(self) -> None:
        self.dump_state(prio=log.DEBUG)
        if self.auto is not None:
            self.auto.close()
        self.tap.unregister(self.engine)
        self.ns_listeners.close()
        for part in (self.splice, self.udpsplice, self.tcp, self.udp, self.icmp, self.link,
                     self.pcap):
            if part is not None:
                part.close()
        self.flowtab.cancel_timer()


def _forward(spec, flag: str, plan, bind_one, need_any: bool = True) -> None:
    """Bind the listeners of one port option given with a list of ports."""
    if spec is not None and spec.mode is FwdMode.SPEC:
        portspec.apply(spec, flag, plan.v4.enabled, plan.v6.enabled, bind_one,
                       ephemeral_range(), need_any=need_any)


def _is_auto(spec) -> bool:
    """`auto`, given or by default (pasta's default for all four options)."""
    return spec is None or spec.mode is FwdMode.AUTO


def _each(families, bind_one) -> list:
    """bind_one(v6) for every family; the handles that worked (an OSError if none did)."""
    handles, last = [], None
    for v6 in families:
        try:
            handles.append(bind_one(v6))
        except (OSError, SetupError) as e:
            last = e
    if not handles and last is not None:
        if isinstance(last, OSError):
            raise last
        raise OSError(0, str(last))
    return handles


def _tcp_socket(v6: bool) -> socket.socket:
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET,
                      socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    if v6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    return s


def _ns_listener(v6: bool, port: int) -> socket.socket:
    """Run inside the namespace (netns.ns_call): a loopback TCP listener for -T."""
    s = _tcp_socket(v6)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::1" if v6 else "127.0.0.1", port))
        s.listen(128)
    except OSError:
        s.close()
        raise
    return s


def _packed6(addr) -> bytes:
    return ipaddress.IPv6Address(str(addr).split("/")[0]).packed
