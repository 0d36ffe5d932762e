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

Limits: the loopback bypass and `auto` forwarding (issue 5) are not here yet; their options are
refused by the supervisor.

Kernel assumptions: see the modules it assembles. Differences from passt: none beyond theirs.
"""

from __future__ import annotations

import ipaddress
import time

from pasta import fwd, linkctx, log
from pasta.dispatch import TapLink
from pasta.engine import EPOLLERR, EPOLLHUP, EPOLLIN
from pasta.icmp import EchoFlows
from pasta.pcap import Pcap
from pasta.portspec import EPHEMERAL_DEFAULT, FwdMode
from pasta.tcpio import TcpFlows
from pasta.udp import UdpFlows

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
                 guest_ll6=None):
        self.engine = engine
        self.tap = tap
        for w in dns_warnings(cfg, plan, resolv_conf):
            log.warn(w)
        ctx = linkctx.LinkCtx.from_config(
            cfg, plan, _mac(guest_mac), resolv_conf=resolv_conf,
            duid_time=linkctx.duid_time_from_unix(time.time()))
        self.rules = fwd.Rules.from_config(cfg, plan, resolv_conf)
        self.pcap = Pcap.open(cfg.pcap) if cfg.pcap else None
        self.link = TapLink(engine, tap, ctx, self.rules, self.pcap)
        if guest_ll6 is not None and plan.v6.enabled:
            self.link.addr_ll_seen6 = _packed6(guest_ll6)
        self.udp = self.icmp = self.tcp = None
        try:
            if not cfg.no_udp:
                self.udp = UdpFlows(engine, self.link, self.rules, freebind=cfg.freebind)
                spec = cfg.udp_ports
                if spec is not None and spec.mode is FwdMode.SPEC:
                    self.udp.listen(spec, plan.v4.enabled, plan.v6.enabled, ephemeral_range())
            if not cfg.no_icmp:
                self.icmp = EchoFlows(engine, self.link, self.rules)
            if not cfg.no_tcp:
                self.tcp = TcpFlows(engine, self.link, self.rules, plan.mtu)
                spec = cfg.tcp_ports
                if spec is not None and spec.mode is FwdMode.SPEC:
                    self.tcp.listen(spec, plan.v4.enabled, plan.v6.enabled, ephemeral_range(),
                                    cfg.freebind)
        except BaseException:
            self.close()
            raise
        self.link.udp, self.link.icmp, self.link.tcp = self.udp, self.icmp, self.tcp

    def start(self) -> None:
        self.engine.add(self.tap.fd, EPOLLIN, self._tap_event)
        self.link.start()

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
        self.engine.remove(self.tap.fd)
        for part in (self.tcp, self.udp, self.icmp, self.link, self.pcap):
            if part is not None:
                part.close()


def _packed6(addr) -> bytes:
    return ipaddress.IPv6Address(str(addr).split("/")[0]).packed


def _mac(mac) -> bytes:
    if isinstance(mac, (bytes, bytearray)):
        return bytes(mac)
    return bytes(int(x, 16) for x in str(mac).split(":"))
