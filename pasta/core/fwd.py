"""Address translation: where a flow goes on the other side, written once for every protocol.

Purpose: pasta's fwd.c rules (pasta-reference.md section 9) as pure functions over packed
addresses (`bytes` of 4 or 16), used by ICMP echo, UDP (and TCP, issue 4).

Theory of operation:
- `Rules.from_config(cfg, plan, resolv_conf)` resolves the options once at start-up: the DNS
  match/host pairs (`--dns-forward`/`--dns-host`, or derived from resolv.conf as in section 10),
  the host-loopback mapping addresses (`--map-host-loopback`, by default the gateway unless
  `--no-map-gw`), `--map-guest-addr`, the assigned addresses and our own tap addresses, and the
  outbound bind address and interface (`-o`, `--outbound-if4/6`).
- `from_tap(rules, v6, proto, dst, dport)` (9.1): the host-side target of a flow the namespace
  opens through the tap. First match wins: DNS forward (UDP/TCP, ports 53 and 853), host-loopback
  mapping, guest-address mapping, else the destination unchanged.
- `to_tap_src(rules, v6, peer, addr_seen)` (9.2, the tap path): the source address the namespace
  sees for a flow that arrives on a host listener from `peer`; None when the flow must be refused.
- `host_bind(rules, v6, target)`: the (address, interface) a host socket for `target` is bound
  to: `-o` and `--outbound-ifN`, except that loopback targets are never bound to an interface.
- `sockaddr(rules, v6, addr, port)`: the socket address of a host-side target; an IPv6
  link-local target gets the template interface as its scope (pasta's pif_sockaddr()).
- `tap_side_ok(v6, src, dst)`: pasta's drop rule for tap packets with loopback addresses.

States and events: none (a frozen value and pure functions).

Invariants: every address in `Rules` is None or packed bytes of its family's length; functions
return packed bytes or None, never an address object.

Limits and not handled: the spliced path of 9.2 and the `-T/-U` path of 9.3 belong to the
loopback bypass (issue 5); until then loopback peers of a `-u` forward take the tap path, exactly
as pasta does with `--no-splice`.

Kernel assumptions: none.

Differences from passt: none intended; passt keeps these fields in `struct ctx` and `struct
fwd_ports` and translates `struct flowside` values in place.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Optional

from pasta.plan import config as C
from pasta.plan import linkctx
from pasta.plan import netplan as NP

DNS_PORTS = (53, 853)
IPPROTO_TCP = 6
IPPROTO_UDP = 17

LOOPBACK4 = bytes((127, 0, 0, 1))
LOOPBACK6 = bytes(15) + b"\x01"
ANY4 = bytes(4)
ANY6 = bytes(16)
V4MAPPED_PREFIX = bytes(10) + b"\xff\xff"


def _packed(addr) -> Optional[bytes]:
    return None if addr is None else addr.packed


def is_loopback(addr: bytes) -> bool:
    return addr[0] == 127 if len(addr) == 4 else addr == LOOPBACK6


def is_unicast(addr: bytes) -> bool:
    """Not unspecified, multicast or (IPv4) broadcast/class E, not loopback."""
    if len(addr) == 4:
        return addr != ANY4 and addr[0] < 224 and addr[0] != 127
    return (addr != ANY6 and addr[0] != 0xFF and addr != LOOPBACK6
            and addr[:12] != V4MAPPED_PREFIX)      # ::ffff:a.b.c.d would bypass the v4 rules


def is_loopback_host(host: str) -> bool:
    """A textual peer address (as accept()/recvfrom() give it) on a loopback network."""
    return host.startswith("127.") or host == "::1" or host.startswith("::ffff:127.")


def is_link_local6(addr: bytes) -> bool:
    return addr[0] == 0xFE and (addr[1] & 0xC0) == 0x80


def tap_side_ok(v6: bool, src: bytes, dst: bytes) -> bool:
    """pasta drops tap packets with a loopback source or destination (section 9.4)."""
    if v6:
        return src != LOOPBACK6 and dst != LOOPBACK6
    return src[0] != 127 and dst[0] != 127


FILTER_UNREACHABLE = 1                      # answer with ICMP(v6) "network unreachable"
FILTER_DROP = 2                             # drop silently: the namespace times out


@dataclass(frozen=True)
class Rules:
    """Everything the translation rules read (module docstring)."""

    dns_match4: Optional[bytes] = None
    dns_host4: Optional[bytes] = None
    dns_match6: Optional[bytes] = None
    dns_host6: Optional[bytes] = None
    map_host_lo4: Optional[bytes] = None
    map_host_lo6: Optional[bytes] = None
    map_guest4: Optional[bytes] = None
    map_guest6: Optional[bytes] = None
    guest4: Optional[bytes] = None          # the namespace's assigned addresses
    guest6: Optional[bytes] = None
    our_tap4: Optional[bytes] = None        # pasta's own tap addresses (gateway / link-local)
    our_tap_ll6: Optional[bytes] = None
    outbound4: Optional[bytes] = None       # -o
    outbound6: Optional[bytes] = None
    outbound_if4: Optional[str] = None
    outbound_if6: Optional[str] = None
    ifindex6: int = 0                       # template interface: scope of link-local targets
    # packed destination -> FILTER_UNREACHABLE or FILTER_DROP (Config.unreachable/blackhole)
    filtered: dict = field(default_factory=dict)
    # libslirp aliases: (network, mask) as integers; other addresses there are host loopback
    alias_net4: Optional[tuple] = None
    unreachable_net4: Optional[tuple] = None    # the same network, unreachable instead

    @classmethod
    def from_config(cls, cfg: C.Config, plan: NP.NetPlan, resolv_conf: str = "") -> "Rules":
        offer, match = linkctx.dns_resolve(cfg, plan, resolv_conf)
        m4, m6 = linkctx.map_host_loopback(cfg, plan)
        v4, v6 = plan.v4, plan.v6
        return cls(
            dns_match4=_packed(match.match4) if v4.enabled else None,
            dns_host4=_packed(offer.dns_host4) if v4.enabled else None,
            dns_match6=_packed(match.match6) if v6.enabled else None,
            dns_host6=_packed(offer.dns_host6) if v6.enabled else None,
            map_host_lo4=_packed(m4) if v4.enabled else None,
            map_host_lo6=_packed(m6) if v6.enabled else None,
            map_guest4=_packed(cfg.map_guest_addr4) if v4.enabled else None,
            map_guest6=_packed(cfg.map_guest_addr6) if v6.enabled else None,
            guest4=_packed(v4.addr) if v4.enabled else None,
            guest6=_packed(v6.addr) if v6.enabled else None,
            our_tap4=_packed(v4.gw) if v4.enabled else None,
            our_tap_ll6=_packed(v6.our_ll) if v6.enabled else None,
            outbound4=_packed(cfg.outbound4), outbound6=_packed(cfg.outbound6),
            outbound_if4=cfg.outbound_if4, outbound_if6=cfg.outbound_if6,
            ifindex6=(v6.template_index or 0) if v6.enabled else 0,
            filtered={**{_packed(a): FILTER_DROP for a in cfg.blackhole},
                      **{_packed(a): FILTER_UNREACHABLE for a in cfg.unreachable}},
            alias_net4=_net(cfg.alias_net4) if cfg.alias_net4 and not cfg.unreachable_net4
            else None,
            unreachable_net4=_net(cfg.alias_net4) if cfg.alias_net4 and cfg.unreachable_net4
            else None)


def from_tap(r: Rules, v6: bool, proto: int, dst: bytes, dport: int) -> bytes:
    """Host-side target address of a flow the namespace sends to `dst` (section 9.1)."""
    dst = bytes(dst)
    if v6:
        dns_match, dns_host, map_lo, lo = r.dns_match6, r.dns_host6, r.map_host_lo6, LOOPBACK6
        map_guest, guest = r.map_guest6, r.guest6
    else:
        dns_match, dns_host, map_lo, lo = r.dns_match4, r.dns_host4, r.map_host_lo4, LOOPBACK4
        map_guest, guest = r.map_guest4, r.guest4
    if (dns_match is not None and dst == dns_match and dport in DNS_PORTS
            and proto in (IPPROTO_TCP, IPPROTO_UDP) and dns_host is not None):
        return dns_host
    if map_lo is not None and dst == map_lo:
        return lo
    if map_guest is not None and dst == map_guest and guest is not None:
        return guest
    if not v6 and r.alias_net4 is not None and in_net4(dst, r.alias_net4):
        # libslirp: the DNS address is the host's resolver on any port, any other address
        # of the virtual network the host's loopback
        if dst == r.dns_match4 and r.dns_host4 is not None:
            return r.dns_host4
        return LOOPBACK4
    return dst


def in_net4(addr: bytes, net: tuple) -> bool:
    """`addr` (4 packed bytes) in (network, mask) given as integers."""
    return int.from_bytes(addr, "big") & net[1] == net[0]


def _net(n) -> tuple:
    return int(n.network_address), int(n.netmask)


def to_tap_src(r: Rules, v6: bool, peer: bytes, addr_seen: Optional[bytes]) -> Optional[bytes]:
    """Source address the namespace sees for a flow from host-side `peer` (9.2, tap path)."""
    peer = bytes(peer)
    if v6:
        if peer == LOOPBACK6 and r.map_host_lo6 is not None:
            return r.map_host_lo6
        if r.guest6 is not None and peer == r.guest6 and r.map_guest6 is not None:
            return r.map_guest6
        if peer == LOOPBACK6 or peer == ANY6 or peer == addr_seen or peer == r.guest6:
            return r.our_tap_ll6
        return peer
    if peer == LOOPBACK4 and r.map_host_lo4 is not None:
        return r.map_host_lo4
    if r.guest4 is not None and peer == r.guest4 and r.map_guest4 is not None:
        return r.map_guest4
    if peer[0] == 127 or peer == ANY4 or peer == addr_seen or peer == r.guest4:
        return r.our_tap4
    return peer


def host_bind(r: Rules, v6: bool, target: bytes) -> tuple[Optional[bytes], Optional[str]]:
    """(bind address or None, interface or None) for a host socket talking to `target`."""
    if v6:
        return r.outbound6, None if target == LOOPBACK6 else r.outbound_if6
    return r.outbound4, None if target[0] == 127 else r.outbound_if4


def sockaddr(r: Rules, v6: bool, addr: bytes, port: int) -> tuple:
    """Socket address for a host-side target (link-local IPv6 scoped to the template)."""
    if v6:
        return (text(addr), port, 0, r.ifindex6 if is_link_local6(addr) else 0)
    return (text(addr), port)


def text(addr: bytes) -> str:
    """Printable form of a packed address (for logs)."""
    return str(ipaddress.ip_address(bytes(addr)))
