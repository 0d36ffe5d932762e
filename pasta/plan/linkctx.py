"""Link context: what the ARP, DHCP, NDP and DHCPv6 responders need to know, as plain bytes.

Purpose: one frozen value, built once at start-up from `Config` and `NetPlan`, that the four
link-configuration responders (`pasta.core.arp`, `pasta.core.dhcp`, `pasta.core.ndp`, `pasta.core.dhcpv6`) read on
every request; plus `dns_offer()`, pasta's choice of the nameservers and search list offered to the
namespace (pasta-reference.md section 10).

Theory of operation:
- The supervisor reads `/etc/resolv.conf` (once, before sandboxing, as pasta does) and calls
  `LinkCtx.from_config(cfg, plan, guest_mac, resolv_conf=text, duid_time=...)`. Everything in the
  result is immutable; when the guest MAC changes (pasta-reference.md section 7) the engine makes a
  new one with `ctx.with_guest_mac(mac)`.
- Addresses are `bytes` (4 or 16, network order) so the responders pack them without conversion.
- `dns_offer(cfg, plan, resolv_conf_text)` is pure: the caller passes the file's text.

DNS selection (`dns_offer`, pasta's conf.c get_dns/add_dns_resolv):
- `-D none`: nothing is offered and there is no DNS host (also clears `--dns-host`).
- Per family, `-D` servers of that family if any were given: offered unchanged, resolv.conf is not
  consulted for that family, and the DNS host of that family is only `--dns-host`.
- Otherwise, for each `nameserver ` line of resolv.conf (address = text after the last space, a
  `%zone` suffix cut) of an enabled family, in order: the first one becomes the DNS host unless
  `--dns-host` was given. A loopback nameserver (or one equal to the host-loopback mapping address):
  with `--dns-forward` the forward address is offered in its place; else, with a host-loopback
  mapping (`--map-host-loopback`, by default the gateway unless `--no-map-gw`, `--map-host-loopback
  none` or no gateway), the mapping address is offered and becomes the DNS match address (queries
  to it on ports 53/853 go to the DNS host); else it is skipped. Others are offered unchanged.
  At most `MAXNS` (3) per family come from resolv.conf; duplicates are dropped.
- Search list: `-S` entries if given (at most `MAXDNSRCH`, 6), none with `-S none`, else the
  first `search ` line of resolv.conf that names domains (space or tab separated), up to
  `MAXDNSRCH - 1` (5) of them. `-D none` does not affect it.
- The result is offered to the namespace only with `--dhcp-dns` / `--dhcp-search` (the
  responders check `LinkCtx.dhcp_dns` / `dhcp_search`).

Derived switches (pasta-reference.md sections 2 and 5): DHCP is off without an IPv4 gateway (no
`our_tap_addr`); DHCPv6 is off without an IPv6 address; NDP and DHCPv6 are off when IPv6 is
disabled; RA is off with `--config-net`. `mtu` is None for `-m 0` (nothing advertised).

Hostname and FQDN (pasta 2026 `-H/--hostname`, `--fqdn`; conf.c, dhcp.c, dhcpv6.c):
- `LinkCtx.hostname` / `LinkCtx.fqdn` are the option values as given, or None (also for an empty
  string: pasta sends nothing when strlen() is 0). `from_config` reads `cfg.hostname` and
  `cfg.fqdn` if the `Config` has them.
- `name_bytes()` turns them into the bytes pasta copies: the command-line bytes, i.e. UTF-8 with
  surrogate escapes undone (how Python decoded argv), so odd characters go out unchanged.
- `encode_domain_name()` is pasta's util.c encoder, byte for byte: no validation of labels (a
  label longer than 63 bytes, an empty label or a trailing dot are encoded as pasta encodes
  them); the result is always `len(name) + 2` bytes.
- The front end rejects names longer than `HOSTNAME_MAX` (253) bytes, as pasta's conf.c does
  ("Invalid hostname: NAME" / "Invalid FQDN: NAME"); the responders apply their own size checks
  (dhcp, dhcpv6 docstrings) and never fail on a long name.

States and events: none; this module has no enums.

Invariants (the last three enforced by `LinkCtx.__post_init__`, whoever builds it):
- `v4.addr`, `v4.gw`, `v6.addr`, `v6.our_ll`, `v6.gw` are None or exactly 4 / 16 bytes.
- `our_mac` and `guest_mac` are 6 bytes.
- `no_dhcp` is True whenever IPv4 is disabled or `v4.gw` or `v4.addr` is None; `no_ndp` whenever
  IPv6 is disabled or `v6.our_ll` is None; `no_dhcpv6` also whenever `v6.addr` is None.

Limits and not handled: resolv.conf `options`/`domain` lines are ignored (as in pasta).

Kernel assumptions: none.

Differences from passt:
- conf.c add_dns_resolv4/6 can add the same mapped address twice (two loopback resolvers);
  `dns_offer` keeps one copy.
- pasta learns the DUID-LLT time itself (dhcpv6_init); here the caller passes `duid_time`
  (`duid_time_from_unix(time.time())` at start-up) so that everything stays pure.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass
from typing import NamedTuple, Optional

from pasta.plan import config as C
from pasta.plan import netplan as NP

MAXNS = 3                    # passt.h: nameservers per family taken from resolv.conf
MAXDNSRCH = 6                # passt.h: search domains (5 from resolv.conf, 6 via -S)
DOMAIN_NAME_MAX = 255        # RFC 1035 2.3.4, wire form
LABEL_MAX = 63
HOSTNAME_MAX = 253           # util.h PASST_MAXDNAME - 1: longest -H / --fqdn value pasta accepts

Addr4 = ipaddress.IPv4Address
Addr6 = ipaddress.IPv6Address


class DnsOffer(NamedTuple):
    """What the namespace is offered and where forwarded DNS queries go (per family)."""

    dns4: tuple            # tuple[IPv4Address, ...] offered via DHCP option 6
    dns6: tuple            # tuple[IPv6Address, ...] offered via RDNSS / DHCPv6 option 23
    search: tuple          # tuple[str, ...] offered via option 119 / DNSSL / option 24
    dns_host4: Optional[Addr4]
    dns_host6: Optional[Addr6]


class DnsMatch(NamedTuple):
    """Namespace-side addresses whose port 53/853 traffic goes to the DNS host (`dns_match`)."""

    match4: Optional[Addr4]
    match6: Optional[Addr6]


def map_host_loopback(cfg: C.Config, plan: NP.NetPlan) -> tuple[Optional[Addr4], Optional[Addr6]]:
    """The per-family host-loopback mapping address: the option, else the gateway, else None."""
    if cfg.map_host_loopback_none:
        return None, None
    m4 = cfg.map_host_loopback4
    m6 = cfg.map_host_loopback6
    if not cfg.no_map_gw:
        if m4 is None and plan.v4.enabled and plan.v4.gw is not None:
            m4 = plan.v4.gw
        if m6 is None and plan.v6.enabled and plan.v6.gw is not None:
            m6 = plan.v6.gw
    return m4, m6


def parse_resolv_conf(text: str) -> tuple[list, list]:
    """(nameserver addresses in file order, first non-empty search list), as pasta reads them."""
    servers: list = []
    search: list[str] = []
    for line in text.splitlines():
        if line.startswith("nameserver "):
            word = line[line.rfind(" ") + 1:].split("%", 1)[0]
            try:
                servers.append(ipaddress.ip_address(word))
            except ValueError:
                continue                      # inet_pton failure: pasta skips the line
        elif line.startswith("search ") and not search:
            search = [w for w in line.replace("\t", " ").split(" ")[1:] if w][:MAXDNSRCH - 1]
    return servers, search


def _resolve(cfg: C.Config, plan: NP.NetPlan, resolv_conf_text: str):
    """Shared body of dns_offer() and dns_match(): (DnsOffer, DnsMatch)."""
    servers, file_search = parse_resolv_conf(resolv_conf_text)
    if cfg.search_none:
        search = ()
    elif cfg.search:
        search = tuple(cfg.search)[:MAXDNSRCH]
    else:
        search = tuple(file_search)
    if cfg.dns_none:
        return DnsOffer((), (), search, None, None), DnsMatch(None, None)

    v4_on, v6_on = plan.v4.enabled, plan.v6.enabled
    given4 = tuple(a for a in cfg.dns if a.version == 4) if v4_on else ()
    given6 = tuple(a for a in cfg.dns if a.version == 6) if v6_on else ()
    map4, map6 = map_host_loopback(cfg, plan)

    out = {}
    for fam, given, mapped, fwd, host, on in (
            (4, given4, map4, cfg.dns_forward4, cfg.dns_host4, v4_on),
            (6, given6, map6, cfg.dns_forward6, cfg.dns_host6, v6_on)):
        match = fwd
        if given or not on:
            out[fam] = (given, host, match)
            continue
        offered: list = []
        for ns in servers:
            if ns.version != fam:
                continue
            if host is None:
                host = ns
            if ns.is_loopback or (mapped is not None and ns == mapped):
                if match is None:
                    if mapped is None:
                        continue                  # unreachable from the namespace
                    ns = match = mapped
                else:
                    ns = match                    # --dns-forward (with or without --no-map-gw)
            if ns not in offered and len(offered) < MAXNS:
                offered.append(ns)
        out[fam] = (tuple(offered), host, match)
    return (DnsOffer(out[4][0], out[6][0], search, out[4][1], out[6][1]),
            DnsMatch(out[4][2], out[6][2]))


def dns_resolve(cfg: C.Config, plan: NP.NetPlan,
                resolv_conf_text: str) -> tuple[DnsOffer, DnsMatch]:
    """dns_offer() and dns_match() from one pass over the options and resolv.conf."""
    return _resolve(cfg, plan, resolv_conf_text)


def dns_offer(cfg: C.Config, plan: NP.NetPlan, resolv_conf_text: str) -> DnsOffer:
    """pasta's DNS selection (module docstring): (dns4, dns6, search, dns_host4, dns_host6)."""
    return _resolve(cfg, plan, resolv_conf_text)[0]


def dns_match(cfg: C.Config, plan: NP.NetPlan, resolv_conf_text: str) -> DnsMatch:
    """The `dns_match` addresses pasta derives alongside dns_offer() (for the forwarding rules)."""
    return _resolve(cfg, plan, resolv_conf_text)[1]


def encode_name(name: str) -> Optional[bytes]:
    """RFC 1035 3.1 wire form of a domain name (uncompressed), or None if it cannot be encoded.

    A trailing dot is accepted; the root alone ("" or ".") gives None, as pasta skips it.
    """
    name = name.rstrip(".") if name != "." else ""
    if not name:
        return None
    try:
        labels = [lab.encode("ascii") for lab in name.split(".")]
    except UnicodeEncodeError:
        return None
    if any(not lab or len(lab) > LABEL_MAX for lab in labels):
        return None
    wire = b"".join(bytes((len(lab),)) + lab for lab in labels) + b"\x00"
    return wire if len(wire) <= DOMAIN_NAME_MAX else None


def name_bytes(name: str) -> bytes:
    """The bytes of a -H / --fqdn value as pasta copies them (argv bytes, surrogates undone)."""
    return name.encode("utf-8", "surrogateescape")


def encode_domain_name(name: bytes) -> bytes:
    """pasta's util.c encode_domain_name(): RFC 1035 3.1 labels, exactly len(name) + 2 bytes.

    Every dot becomes the length of the run up to the next dot, a length byte comes first and a
    zero byte last; nothing is checked ("a..b" and "a." give empty labels, as in pasta).
    """
    parts = name.split(b".")
    return b"".join(bytes((len(p) & 0xFF,)) + p for p in parts) + b"\x00"


def _mac_bytes(mac) -> bytes:
    if isinstance(mac, (bytes, bytearray)):
        if len(mac) != 6:
            raise ValueError(f"MAC address must be 6 bytes, got {len(mac)}")
        return bytes(mac)
    return bytes(int(x, 16) for x in str(mac).split(":"))


def _packed(addr) -> Optional[bytes]:
    return None if addr is None else addr.packed


@dataclass(frozen=True)
class Link4:
    """IPv4 side of the link: the guest's assigned address and pasta's own (the gateway)."""

    enabled: bool = False
    addr: Optional[bytes] = None          # assigned to the namespace (DHCP yiaddr)
    prefix_len: int = 0
    gw: Optional[bytes] = None            # guest_gw = our_tap_addr (router, server id, source)
    dns: tuple = ()                       # tuple[bytes, ...], 4 bytes each


@dataclass(frozen=True)
class Link6:
    """IPv6 side of the link: assigned address, our link-local source, gateway."""

    enabled: bool = False
    addr: Optional[bytes] = None          # assigned (RA prefix, DHCPv6 IA_NA)
    prefix_len: int = 64
    our_ll: Optional[bytes] = None        # our_tap_ll: source of NA/RA/DHCPv6 replies
    gw: Optional[bytes] = None
    dns: tuple = ()                       # tuple[bytes, ...], 16 bytes each


@dataclass(frozen=True)
class LinkCtx:
    """Everything the link-configuration responders read (module docstring)."""

    our_mac: bytes
    guest_mac: bytes
    v4: Link4 = Link4()
    v6: Link6 = Link6()
    search: tuple = ()                    # tuple[str, ...], offered with dhcp_search
    mtu: Optional[int] = C.MTU_DEFAULT    # None: -m 0, advertise nothing
    no_dhcp: bool = False
    no_ndp: bool = False
    no_dhcpv6: bool = False
    no_ra: bool = False
    dhcp_dns: bool = False
    dhcp_search: bool = False
    duid_time: int = 0                    # DUID-LLT time: seconds since 2000-01-01 at start-up
    hostname: Optional[str] = None        # -H: DHCP option 12
    fqdn: Optional[str] = None            # --fqdn: DHCP option 81, DHCPv6 option 39

    def __post_init__(self):
        # Enforce the module invariants for directly built contexts too: a responder never has
        # to check for a missing address.
        for name in ("our_mac", "guest_mac"):
            if len(getattr(self, name)) != 6:
                raise ValueError(f"LinkCtx.{name} must be 6 bytes")
        v4, v6 = self.v4, self.v6
        if not v4.enabled or v4.addr is None or v4.gw is None:
            object.__setattr__(self, "no_dhcp", True)
        if not v6.enabled or v6.our_ll is None:
            object.__setattr__(self, "no_ndp", True)
        if not v6.enabled or v6.our_ll is None or v6.addr is None:
            object.__setattr__(self, "no_dhcpv6", True)

    @classmethod
    def from_config(cls, cfg: C.Config, plan: NP.NetPlan, guest_mac: bytes, *,
                    resolv_conf: str = "", duid_time: int = 0) -> "LinkCtx":
        """Build from the parsed options, the addressing plan and resolv.conf's text."""
        offer = dns_offer(cfg, plan, resolv_conf)
        p4, p6 = plan.v4, plan.v6
        v4 = Link4(enabled=p4.enabled, addr=_packed(p4.addr) if p4.enabled else None,
                   prefix_len=p4.prefix or 0, gw=_packed(p4.gw) if p4.enabled else None,
                   dns=tuple(a.packed for a in offer.dns4))
        v6 = Link6(enabled=p6.enabled, addr=_packed(p6.addr) if p6.enabled else None,
                   prefix_len=p6.prefix if p6.prefix is not None else 64,
                   our_ll=_packed(p6.our_ll) if p6.enabled else None,
                   gw=_packed(p6.gw) if p6.enabled else None,
                   dns=tuple(a.packed for a in offer.dns6))
        mtu = plan.mtu if plan.mtu else None
        return cls(
            our_mac=_mac_bytes(cfg.our_mac), guest_mac=_mac_bytes(guest_mac), v4=v4, v6=v6,
            search=offer.search, mtu=mtu,
            no_dhcp=cfg.no_dhcp or not v4.enabled or v4.addr is None or v4.gw is None,
            no_ndp=cfg.no_ndp or not v6.enabled or v6.our_ll is None,
            no_dhcpv6=cfg.no_dhcpv6 or not v6.enabled or v6.addr is None or v6.our_ll is None,
            no_ra=cfg.no_ra or cfg.config_net,
            dhcp_dns=cfg.dhcp_dns, dhcp_search=cfg.dhcp_search, duid_time=duid_time,
            # getattr: older Config objects have no such fields; "" means unset, as in pasta
            hostname=getattr(cfg, "hostname", None) or None,
            fqdn=getattr(cfg, "fqdn", None) or None)

    def with_guest_mac(self, mac: bytes) -> "LinkCtx":
        """A copy with the guest MAC replaced (pasta follows the tap's source MAC)."""
        return dataclasses.replace(self, guest_mac=_mac_bytes(mac))


Y2K_UNIX = 946684800          # 2000-01-01T00:00:00Z, the DUID-LLT epoch (RFC 8415 11.2)


def duid_time_from_unix(unix_time: float) -> int:
    """DUID-LLT time field for a wall-clock time (the caller reads the clock once at start-up)."""
    return int(unix_time - Y2K_UNIX) & 0xFFFFFFFF
