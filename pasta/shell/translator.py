"""The translator: everything between the tap and the host's sockets, put together.

Purpose: build the link context, the translation rules, the tap dispatcher, the protocol
handlers and the forwarding table from the configuration, open its listeners, and register
everything with the engine. The supervisor creates one `Translator` after the tap exists and
before it signals readiness (so bind failures are start-up errors), then runs the engine.

Theory of operation: `Translator(cfg, plan, engine, tap, guest_mac, resolv_conf)` does all the
fallible set-up (sockets, pcap file); `start()` arms the tap reader and the periodic router
advertisements; `close()` releases every socket. SIGUSR2 logs the counters (`dump_state`).

States: built -> started -> closed.

Invariants: the tap is read only by `TapHandler.on_readable()`; a tap hang-up, EOF or read/write
error is first offered to the link (`hangup()`: passt mode's `PasstTap` drops the client and
waits for the next, or exits 0 with --one-off); a tap device refuses it, and the engine stops
with exit status 1 ("EOF on tap device, exiting", "Error on tap device, exiting", "Disconnect
event on /dev/net/tun device, exiting", as pasta). The namespace's link-local address set by
`--config-net` is known from the start (as pasta's `addr_ll_seen`).

Link up (passt's tap_start_connection()): when a passt client connects, or pasta's tap starts
with --config-net, an ARP request and an NS for the guest's addresses go out, so its MAC is
learnt before it speaks (`pasta.core.neigh.init_request_frames`).

passt mode (`cfg.mode == "passt"`, the tap a `pasta.shell.link.PasstTap`, no namespace): no
splicing, no -T/-U, no `auto`; the guest MAC is learnt from its frames (broadcast until then).

Forwarding: -t/-u/-T/-U (`auto` when not given) become one `pasta.core.fwd_rule.FwdTable`, whose
listeners `pasta.shell.fwd_listen.FwdListen` (`self.fwd`) opens through the listener entry points of
the parts assembled here (`_fwd_ops`); the first `auto` scan runs during construction, and
`self.fwd.replace()` changes the table at run time (the slirp4netns API; the control socket).

`--splice-only` (no tap: `tap` None): the link is `_NoTap`, the namespace has no address the
tap path could deliver to, so -t/-u clients that are not on the host's loopback are refused
(their flows find no namespace address), loopback ones are spliced to the namespace's
loopback, and -T/-U work as always.

Limits: see the modules it assembles.

Kernel assumptions: see the modules it assembles. Differences from passt: none beyond theirs.
"""

from __future__ import annotations

import ipaddress
import socket
import time

from pasta.core import fwd
from pasta.plan import linkctx
from pasta.util import log, netns
from pasta.shell.autofwd import ProcNet
from pasta.shell.tap import TapHandler, TapLink
from pasta.shell.engine import EPOLLERR, EPOLLHUP, EPOLLIN
from pasta.core.flow import FlowTab, Pif
from pasta.shell.fwd_listen import FwdListen, fwd_listen_init
from pasta.core.fwd_rule import (IPPROTO_TCP, IPPROTO_UDP, PIF_HOST, PIF_SPLICE, fwd_caps,
                            fwd_rules_for_caps, fwd_table)
from pasta.shell.control import ConfSock
from pasta.core.neigh import NeighTable, init_request_frames
from pasta.shell.icmp import EchoFlows
from pasta.shell.nl_neigh import NlNeigh
from pasta.shell.listeners import Listeners
from pasta.shell.pcap import Pcap
from pasta.util.sock import Proto, sock_l4
from pasta.shell.tcp_splice import TcpSplice
from pasta.shell.tcp_buf import TcpFlows
from pasta.shell.udp import UdpFlows, conntrack_udp_timeouts
from pasta.shell.udp_splice import UdpSplice

RESOLV_CONF = "/etc/resolv.conf"
HOST_TCP, HOST_UDP = (PIF_HOST, IPPROTO_TCP), (PIF_HOST, IPPROTO_UDP)
SPLICE_TCP, SPLICE_UDP = (PIF_SPLICE, IPPROTO_TCP), (PIF_SPLICE, IPPROTO_UDP)


def read_resolv_conf(path: str = RESOLV_CONF) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


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
                 guest_ll6=None, netns_fd: int | None = None, conf_sock=None):
        self.engine = engine
        engine.stats_delay = getattr(cfg, "stats", None) or 0      # --stats DELAY
        self.conf = None
        self.neigh = None
        self.splice_only = tap is None          # --splice-only: no tap at all
        # The first frames of a link (tap_is_ready()): passt mode's clients, pasta's tap once
        # --config-net brought it up.
        self.init_probe = cfg.mode == "passt" or cfg.config_net
        if tap is None:
            tap, guest_mac = _NoTap(), NO_MAC
        self.tap = tap
        for w in dns_warnings(cfg, plan, resolv_conf):
            log.warn(w)
        ctx = linkctx.LinkCtx.from_config(
            cfg, plan, guest_mac, resolv_conf=resolv_conf,
            duid_time=linkctx.duid_time_from_unix(time.time()))
        self.rules = fwd.Rules.from_config(cfg, plan, resolv_conf)
        self.pcap = Pcap.open(cfg.pcap) if cfg.pcap else None
        self.link = TapLink(engine, tap, ctx, self.pcap, addr_ll_seen6=(
            _packed6(guest_ll6) if guest_ll6 is not None and plan.v6.enabled else None))
        self.handler = None
        self.udp = self.icmp = self.tcp = self.splice = self.udpsplice = None
        self.flowtab = FlowTab.for_engine(engine)           # every flow of every protocol
        self.netns_fd = netns_fd
        self.host_lo_to_ns_lo = cfg.host_lo_to_ns_lo
        self.ns_listeners = Listeners(engine)
        self.fwd = None
        try:
            if not cfg.no_udp:
                udp_splice = None
                if netns_fd is not None:
                    self.udpsplice = UdpSplice(engine, netns_fd, self.link, self.link.drop,
                                               host_lo_to_ns_lo=cfg.host_lo_to_ns_lo,
                                               flowtab=self.flowtab)
                    if not cfg.no_splice:
                        fwd_ = self.udpsplice.forward
                        udp_splice = (lambda lsock, v6, peer, data, port:
                                      fwd_(lsock, v6, peer, data, True, port))
                timeout, timeout_stream = conntrack_udp_timeouts()
                self.udp = UdpFlows(engine, self.link, self.rules, freebind=cfg.freebind,
                                    flowtab=self.flowtab, splice=udp_splice,
                                    timeout=timeout, timeout_stream=timeout_stream)
            if not cfg.no_icmp:
                self.icmp = EchoFlows(engine, self.link, self.rules, flowtab=self.flowtab)
            if not cfg.no_tcp:
                if netns_fd is not None:
                    self.splice = TcpSplice(engine, flowtab=self.flowtab)
                self.tcp = TcpFlows(engine, self.link, self.rules, plan.mtu,
                                    flowtab=self.flowtab,
                                    splice=(self._splice_to_ns if self.splice is not None
                                            and not cfg.no_splice else None))
            self.fwd = self._fwd_listen(cfg, plan, netns_fd)
            self.fwd.scan()
            if conf_sock is not None:       # -c: pesto edits the table from now on
                self.conf = ConfSock(engine, conf_sock, self.fwd, (PIF_HOST, PIF_SPLICE)
                                     if netns_fd is not None else (PIF_HOST,))
                self.conf.start()
            if not self.splice_only:
                self.handler = TapHandler(engine, self.link, ctx, self.rules, self.udp,
                                          self.icmp, self.tcp)
                self._neigh_init(cfg, plan)
        except BaseException:
            self.close()
            raise

    def _neigh_init(self, cfg, plan) -> None:
        """Follow the host's neighbour table: real MACs of LAN hosts towards the namespace,
        announced as they appear once the tap is configured (pasta 2026)."""
        table = NeighTable.from_plan(plan, self.rules, self.link.our_mac)
        try:
            self.neigh = NlNeigh(self.engine, self.link, table, self.rules,
                                 lambda: self.handler.ctx, announce=cfg.config_net)
        except OSError as e:
            log.warn(f"Couldn't subscribe to the host's neighbour table: {e.strerror}")
            return
        self.link.neigh = table

    # ------------------------------------------------------------- forwarding rules
    def _fwd_listen(self, cfg, plan, netns_fd) -> FwdListen:
        """The forwarding table of -t/-u/-T/-U (`cfg.fwd_rules`, parsed by the front end with
        `auto` for an option not given) and its listeners.

        The front end parsed for the families the options allow; the plan may have fewer (no
        IPv6 template: pasta would use local mode, pypasta disables the family). Dual-stack
        rules then become rules of the family left, as parsing without the other would have
        made them, and a rule with an address of a disabled family is refused by
        `fwd_rule_add` ("IPv6 forward, but IPv6 not enabled")."""
        ops = self._fwd_ops(cfg)
        caps = fwd_caps(plan.v4.enabled, plan.v6.enabled, tcp=not cfg.no_tcp,
                        udp=not cfg.no_udp, scan=netns_fd is not None)
        rules = [rule for rule in fwd_rules_for_caps(cfg.fwd_rules, caps)
                 if (rule.pif, rule.proto) in ops]
        table = fwd_table(caps, rules)
        return fwd_listen_init(self.engine, table, ops, lambda in_ns: netns.ns_call(
            netns_fd, ProcNet.open_here) if in_ns else ProcNet.open_here())

    def _fwd_ops(self, cfg) -> dict:
        """(open, close) of the listeners of each (pif, protocol) this translator has."""
        ops = {}
        tcp, udp, us = self.tcp, self.udp, self.udpsplice
        if tcp is not None:
            ops[HOST_TCP] = (lambda s, t, ta=None: tcp.bind_listener(
                s.v6, s.addr, s.ifname or None, s.port, t - s.port, cfg.freebind, ta),
                tcp.remove_listener)
        if udp is not None:
            ops[HOST_UDP] = (lambda s, t, ta=None: udp.bind_listener(
                s.v6, s.addr, s.ifname or None, s.port, t - s.port, reuse=cfg.udp_reuseaddr,
                taddr=ta), self.remove_udp_listener)
        if self.splice is not None:
            ops[SPLICE_TCP] = (lambda s, t: self._add_ns_listener(s, t),
                               self._remove_ns_listener)
        if us is not None:
            ops[SPLICE_UDP] = (lambda s, t: us.add_ns_listener(s, t),
                               us.remove_ns_listener)
        return ops

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

    def _add_ns_listener(self, s, target: int) -> None:
        """-T: a listener inside the namespace for `fwd_rule.Sock` `s`: bound by interface
        (`lo`, so every 127.0.0.0/8 and ::1 destination), or to 127.0.0.1 / ::1."""
        sock = netns.ns_call(self.netns_fd, _ns_listener, s.v6, s.addr, s.ifname, s.port)
        return self.ns_listeners.add(sock, s.v6, s.port, target, self._accept_ns)

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
            # Section 9.3: to the host's loopback, from the loopback address the client used,
            # at the loopback address it connected to (127.0.0.53 stays 127.0.0.53: pasta
            # 2026's fdbb4ef, for systemd-resolved).
            dst = _loopback_dst(sock, v6)
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
            self.splice.join(sock, host, (dst, port, 0, 0) if v6 else (dst, port), Pif.SPLICE)
        self.ns_listeners.accept_each(lst, take, "splice")

    def start(self) -> None:
        if not self.splice_only:
            self.tap.register(self.engine, self._tap_event,
                              self._link_up if self.init_probe else None)
            self.handler.start()
        self.fwd.start()

    def _link_up(self) -> None:
        """tap_start_connection(): an ARP request and an NS for the guest's addresses, so its
        MAC is known before it speaks (a passt client connected; pasta's tap configured)."""
        for frame in init_request_frames(self.handler.ctx, self.link.vnet):
            self.link.send_bytes(frame)

    def _tap_event(self, events: int) -> None:
        if events & (EPOLLERR | EPOLLHUP) and not events & EPOLLIN:
            if not self.tap.hangup("disconnect event"):
                log.err("Disconnect event on /dev/net/tun device, exiting")
                self.engine.stop(1)
            return
        try:
            self.handler.on_readable(events)
        except EOFError as e:
            if not self.tap.hangup(str(e)):
                log.err("EOF on tap device, exiting")
                self.engine.stop(1)
        except OSError as e:
            if not self.tap.hangup(e.strerror or str(e)):
                log.err(f"Error on tap device, exiting ({e.strerror})")
                self.engine.stop(1)

    def dump_state(self, _sig: int = 0, prio: int = log.INFO) -> None:
        stats = self.engine.stats
        log.log(prio, "state: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.items())))

    def close(self) -> None:
        self.dump_state(prio=log.DEBUG)
        if self.conf is not None:
            self.conf.close()
        if self.neigh is not None:
            self.neigh.close()
            self.neigh = None
        if self.fwd is not None:
            self.fwd.close()
        self.tap.unregister(self.engine)
        self.ns_listeners.close()
        for part in (self.splice, self.udpsplice, self.tcp, self.udp, self.icmp, self.handler,
                     self.pcap):
            if part is not None:
                part.close()
        self.flowtab.cancel_timer()


NO_MAC = "00:00:00:00:00:00"


class _NoTap:
    """--splice-only: the link has no device. The namespace has no address of ours to send to,
    so nothing is ever written here; a write would be dropped and counted."""

    name = None
    vnet_hdr = False

    def write(self, _pieces) -> bool:
        return False

    def register(self, _engine, _handler, _on_connect=None) -> None:
        pass

    def hangup(self, _reason: str) -> bool:
        return False

    def unregister(self, _engine) -> None:
        pass

    def close(self) -> None:
        pass


def _tcp_socket(v6: bool) -> socket.socket:
    return sock_l4(v6, Proto.TCP)


def _ns_listener(v6: bool, addr, ifname: str, port: int) -> socket.socket:
    """Run inside the namespace (netns.ns_call): a TCP listener for -T, on `addr` (None: every
    address) and bound to interface `ifname` if given."""
    host = str(addr) if addr is not None else ("::" if v6 else "0.0.0.0")
    return sock_l4(v6, Proto.TCP, reuse=True, ifname=ifname or None, bind=(host, port),
                   listen=128)


def _loopback_dst(sock, v6: bool) -> str:
    """The loopback address an accepted -T connection was made to (127.0.0.1 / ::1 if it
    was made to anything else, which a listener bound to `lo` cannot see)."""
    try:
        dst = sock.getsockname()[0]
    except OSError:
        dst = ""
    if fwd.is_loopback_host(dst) and not dst.startswith("::ffff:"):
        return dst
    return "::1" if v6 else "127.0.0.1"


def _packed6(addr) -> bytes:
    return ipaddress.IPv6Address(str(addr).split("/")[0]).packed
