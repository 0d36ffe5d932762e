"""Addressing plan: from the host's links, addresses and routes plus the options to what the
namespace gets.

Purpose: pasta's template-interface choice and address/route copying rules (pasta-reference.md
sections 5 and 6.3) as a pure function, testable with plain data.

Theory of operation: `pasta.setup.netlink.host_snapshot()` dumps the host's links, addresses and main-table
routes into the plain `HostLink`/`HostAddr`/`HostRoute` records below; `plan(cfg, snapshot)` returns
a frozen `NetPlan`; `pasta.setup.netlink.configure_ns()` applies it inside the namespace. Translator
modules read addresses (our address, gateway, guest address) from the same `NetPlan`.

Rules (section 5):
- Template per family: `-i`, else `--outbound-ifN`, else the first interface carrying a default
  route in the main table (ignoring routes with no output interface and link-local destinations),
  else the first interface with any such route, else none.
- IPv4: gateway from the template's default route (multipath: nexthop with most hops); address
  the template's non-deprecated address with the longest prefix; `-a` without `-n` is classful.
  No address: IPv4 disabled. No gateway: no DHCP and no gateway mapping.
- IPv6: gateway from the default route; address the longest-prefix global one; our link-local is
  the gateway when it is link-local, else the template's own link-local. Enabled only with both.
- Local mode, per family (pasta 2026, 4ddd59b): a family that cannot be configured from a
  template (none, or no address/gateway there) and is not disabled by -4/-6 gets IPv4
  169.254.2.1/16 via 169.254.2.2, or IPv6 gateway and our link-local fe80::1 (no address unless
  `-a`); no copying. The tap is named tap0 when neither family has a template. `local_mode`
  says every enabled family is local.
- Copying: without `-a`, all non-link-local, non-deprecated addresses of the template; without
  `-g`, all main-table routes through the template (multipath only if every nexthop uses it),
  re-targeted at the tap. `--no-copy-addrs`/`--no-copy-routes` turn copying off.

`--splice-only`: no template, no tap and no addresses; both families stay enabled (unless
-4/-6) for the loopback sockets, and the summary has no "Namespace interface:" line.

Limits: routes of tables other than main are not copied (as in pasta).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Optional

from pasta.plan import config as C
from pasta.util.errors import ConfigError

AF_INET = 2
AF_INET6 = 10
RT_TABLE_MAIN = 254
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RTN_UNICAST = 1
IFA_F_DEPRECATED = 0x20
IFA_F_TENTATIVE = 0x40

_LL4 = ipaddress.ip_network("169.254.0.0/16")
_LL6 = ipaddress.ip_network("fe80::/10")


@dataclass(frozen=True)
class HostLink:
    index: int
    name: str
    mtu: int = 1500
    mac: str = ""


@dataclass(frozen=True)
class HostAddr:
    family: int
    index: int
    address: str
    prefixlen: int
    scope: int = RT_SCOPE_UNIVERSE
    flags: int = 0


@dataclass(frozen=True)
class Nexthop:
    oif: int
    gateway: Optional[str] = None
    hops: int = 0


@dataclass(frozen=True)
class HostRoute:
    family: int
    dst: Optional[str]                # None for the default route
    dst_len: int
    oif: Optional[int] = None
    gateway: Optional[str] = None
    table: int = RT_TABLE_MAIN
    scope: int = RT_SCOPE_UNIVERSE
    type: int = RTN_UNICAST
    proto: int = 3                    # RTPROT_BOOT
    priority: Optional[int] = None
    multipath: tuple = ()             # tuple[Nexthop, ...]
    extra: tuple = ()                 # other (name, value) netlink attributes to replay (metrics, pref)

    @property
    def first_oif(self) -> Optional[int]:
        if self.oif is not None:
            return self.oif
        return self.multipath[0].oif if self.multipath else None


@dataclass(frozen=True)
class HostSnapshot:
    links: tuple = ()                 # tuple[HostLink, ...]
    addrs: tuple = ()                 # tuple[HostAddr, ...]
    routes: tuple = ()                # tuple[HostRoute, ...], main table only

    def link_by_name(self, name: str) -> Optional[HostLink]:
        return next((l for l in self.links if l.name == name), None)

    def link_by_index(self, index: int) -> Optional[HostLink]:
        return next((l for l in self.links if l.index == index), None)


@dataclass(frozen=True)
class FamilyPlan:
    enabled: bool = False
    template: Optional[str] = None
    template_index: Optional[int] = None
    addr: Optional[ipaddress._BaseAddress] = None
    prefix: Optional[int] = None
    gw: Optional[ipaddress._BaseAddress] = None
    our_ll: Optional[ipaddress.IPv6Address] = None      # IPv6 only
    copy_addrs: tuple = ()             # tuple[HostAddr, ...] to replay (empty: add addr/prefix)
    copy_routes: tuple = ()            # tuple[HostRoute, ...] to replay (empty: default via gw)
    copying_addrs: bool = False
    copying_routes: bool = False


@dataclass(frozen=True)
class NetPlan:
    ns_ifname: str
    mtu: int
    v4: FamilyPlan = field(default_factory=FamilyPlan)
    v6: FamilyPlan = field(default_factory=FamilyPlan)
    local_mode: bool = False
    notes: tuple = ()                  # informational lines for the log
    splice_only: bool = False          # --splice-only: no tap, no addresses

    def summary(self, namespace: bool = True) -> list[str]:
        """pasta's configuration summary lines (printed unless quiet); without the namespace
        interface in passt mode (`namespace` False)."""
        out = []
        t4 = f"{self.v4.template} (IPv4)" if self.v4.template else None
        t6 = f"{self.v6.template} (IPv6)" if self.v6.template else None
        if t4 or t6:
            out.append("Template interface: " + ", ".join(t for t in (t4, t6) if t))
        if self.splice_only:
            return out
        if namespace:
            out.append(f"Namespace interface: {self.ns_ifname}")
        if self.v4.enabled:
            out.append(f"IPv4: {self.v4.addr}/{self.v4.prefix} gateway {self.v4.gw or '(none)'}")
        if self.v6.enabled:
            out.append(f"IPv6: {self.v6.addr or '(none)'} gateway {self.v6.gw or '(none)'}"
                       f" our link-local {self.v6.our_ll}")
        return out


def classful_prefix(addr: ipaddress.IPv4Address) -> int:
    first = int(addr) >> 24
    if first < 128:
        return 8
    if first < 192:
        return 16
    if first < 224:
        return 24
    return 32


def _is_ll(family: int, dst: Optional[str], dst_len: int) -> bool:
    if dst is None or dst_len == 0:
        return False
    net = ipaddress.ip_network(f"{dst}/{dst_len}", strict=False)
    return net.subnet_of(_LL4) if family == AF_INET else net.subnet_of(_LL6)


def _candidate_routes(snap: HostSnapshot, family: int):
    for r in snap.routes:
        if r.family != family or r.table != RT_TABLE_MAIN or r.type != RTN_UNICAST:
            continue
        if r.scope != RT_SCOPE_UNIVERSE and r.dst_len == 0:
            continue
        if r.first_oif is None or _is_ll(family, r.dst, r.dst_len):
            continue
        yield r


def choose_template(snap: HostSnapshot, family: int) -> tuple[Optional[HostLink], list[str]]:
    """pasta's nl_get_ext_if(): default-route interface first, else any route's interface."""
    notes = []
    routes = list(_candidate_routes(snap, family))
    defaults = [r for r in routes if r.dst_len == 0]
    fam = "IPv4" if family == AF_INET else "IPv6"
    pick = defaults[0] if defaults else (routes[0] if routes else None)
    if len({r.first_oif for r in defaults}) > 1:
        notes.append(f"Multiple default {fam} routes, picked first")
    if pick is None:
        return None, notes
    return snap.link_by_index(pick.first_oif), notes


def _gateway(snap: HostSnapshot, family: int, index: int) -> Optional[str]:
    for r in _candidate_routes(snap, family):
        if r.dst_len != 0:
            continue
        if r.multipath:
            hops = [n for n in r.multipath if n.oif == index and n.gateway]
            if hops:
                return max(hops, key=lambda n: n.hops).gateway
            continue
        if r.oif == index:
            return r.gateway
    return None


def _template(snap: HostSnapshot, family: int, cfg: C.Config):
    name = cfg.template_if or (cfg.outbound_if4 if family == AF_INET else cfg.outbound_if6)
    if name:
        link = snap.link_by_name(name)
        if link is None:
            raise ConfigError(f"Invalid interface name {name}: No such device")
        return link, []
    return choose_template(snap, family)


def _routes_through(snap: HostSnapshot, family: int, index: int) -> tuple:
    out = []
    for r in snap.routes:
        if r.family != family or r.table != RT_TABLE_MAIN:
            continue
        if r.multipath:
            if all(n.oif == index for n in r.multipath):
                out.append(r)
        elif r.oif == index:
            out.append(r)
    return tuple(out)


def _plan_v4(cfg: C.Config, snap: HostSnapshot, link: Optional[HostLink]) -> FamilyPlan:
    if link is None and cfg.addr4 is None:
        return FamilyPlan()
    addrs = [a for a in snap.addrs if link and a.family == AF_INET and a.index == link.index
             and not a.flags & IFA_F_DEPRECATED]
    if cfg.addr4 is not None:
        addr = cfg.addr4
        prefix = cfg.prefix4 if cfg.prefix4 is not None else classful_prefix(addr)
    elif addrs:
        best = max(addrs, key=lambda a: a.prefixlen)
        addr = ipaddress.IPv4Address(best.address)
        prefix = cfg.prefix4 if cfg.prefix4 is not None else best.prefixlen
    else:
        return FamilyPlan()
    gw = cfg.gw4
    if gw is None and link is not None:
        g = _gateway(snap, AF_INET, link.index)
        gw = ipaddress.IPv4Address(g) if g else None
    copying_addrs = cfg.addr4 is None and not cfg.no_copy_addrs
    copying_routes = cfg.gw4 is None and not cfg.no_copy_routes
    return FamilyPlan(
        enabled=True, template=link.name if link else None,
        template_index=link.index if link else None, addr=addr, prefix=prefix, gw=gw,
        copy_addrs=tuple(a for a in addrs if a.scope != RT_SCOPE_LINK) if copying_addrs else (),
        copy_routes=_routes_through(snap, AF_INET, link.index) if copying_routes and link else (),
        copying_addrs=copying_addrs, copying_routes=copying_routes and link is not None)


def _plan_v6(cfg: C.Config, snap: HostSnapshot, link: Optional[HostLink]) -> FamilyPlan:
    if link is None and (cfg.addr6 is None or cfg.gw6 is None):
        return FamilyPlan()
    # Without a template (a host with no IPv6, e.g. for slirp4netns's fd00::/64): an explicit
    # address and gateway are enough, as for IPv4.
    mine = [a for a in snap.addrs if link and a.family == AF_INET6 and a.index == link.index
            and not a.flags & IFA_F_DEPRECATED]
    glob = [a for a in mine if a.scope == RT_SCOPE_UNIVERSE]
    lls = [a for a in mine if a.scope == RT_SCOPE_LINK]
    if cfg.addr6 is not None:
        addr, prefix = cfg.addr6, 64
    elif glob:
        best = max(glob, key=lambda a: a.prefixlen)
        addr, prefix = ipaddress.IPv6Address(best.address), best.prefixlen
    else:
        addr, prefix = None, None
    gw = cfg.gw6
    if gw is None and link is not None:
        g = _gateway(snap, AF_INET6, link.index)
        gw = ipaddress.IPv6Address(g.split("%")[0]) if g else None
    if gw is not None and gw.is_link_local:
        our_ll = gw
    elif lls:
        our_ll = ipaddress.IPv6Address(max(lls, key=lambda a: a.prefixlen).address)
    else:
        our_ll = None
    if addr is None or our_ll is None:
        return FamilyPlan()
    copying_addrs = cfg.addr6 is None and not cfg.no_copy_addrs
    copying_routes = cfg.gw6 is None and not cfg.no_copy_routes and link is not None
    return FamilyPlan(
        enabled=True, template=link.name if link else None,
        template_index=link.index if link else None, addr=addr, prefix=prefix,
        gw=gw, our_ll=our_ll,
        copy_addrs=tuple(glob) if copying_addrs else (),
        copy_routes=_routes_through(snap, AF_INET6, link.index) if copying_routes else (),
        copying_addrs=copying_addrs, copying_routes=copying_routes)


def plan(cfg: C.Config, snap: HostSnapshot) -> NetPlan:
    """Decide the namespace's interface name, addresses, gateways and what to copy."""
    if cfg.splice_only:
        # No tap and no template: both families stay usable for the spliced sockets.
        return NetPlan(ns_ifname="", mtu=cfg.mtu, v4=FamilyPlan(enabled=cfg.ipv4),
                       v6=FamilyPlan(enabled=cfg.ipv6), splice_only=True)
    notes: list[str] = []
    link4 = link6 = None
    if cfg.ipv4:
        link4, n = _template(snap, AF_INET, cfg)
        notes += n
    if cfg.ipv6:
        link6, n = _template(snap, AF_INET6, cfg)
        notes += n
    v4 = _plan_v4(cfg, snap, link4) if cfg.ipv4 else FamilyPlan()
    v6 = _plan_v6(cfg, snap, link6) if cfg.ipv6 else FamilyPlan()
    # Local mode, per family (pasta 2026): a family the host cannot serve as a template still
    # gets a link: IPv4 169.254.2.1/16 via 169.254.2.2, IPv6 fe80::1 as gateway and our
    # link-local (no address unless -a gives one).
    local4 = cfg.ipv4 and not v4.enabled
    local6 = cfg.ipv6 and not v6.enabled
    if local4:
        notes.append("IPv4: no external interface as template, use local mode")
        v4 = FamilyPlan(enabled=True, addr=C.LOCAL_MODE_ADDR4, prefix=C.LOCAL_MODE_PREFIX4,
                        gw=cfg.gw4 or C.LOCAL_MODE_GW4)
    if local6:
        notes.append("IPv6: no external interface as template, use local mode")
        v6 = FamilyPlan(enabled=True, addr=cfg.addr6, prefix=64 if cfg.addr6 else None,
                        gw=cfg.gw6 or C.LOCAL_MODE_GW6, our_ll=C.LOCAL_MODE_GW6)
    local = (local4 or not cfg.ipv4) and (local6 or not cfg.ipv6)
    if cfg.ns_ifname:
        name = cfg.ns_ifname
    elif link4 is None and link6 is None:
        name = C.LOCAL_MODE_IFNAME
    else:
        name = (link4.name if (link4 and v4.enabled) else None) or \
               (link6.name if link6 else None) or (link4.name if link4 else C.LOCAL_MODE_IFNAME)
    if len(name.encode()) >= C.IFNAMSIZ:
        raise ConfigError(f"Invalid interface name {name}: too long")
    if not v4.enabled and not v6.enabled:
        raise ConfigError("No usable IPv4 or IPv6 configuration (check -4/-6, -a, -i)")
    return NetPlan(ns_ifname=name, mtu=cfg.mtu, v4=v4, v6=v6, local_mode=local,
                   notes=tuple(notes))
