"""Netlink facade over pyroute2: the only module that talks rtnetlink.

Theory of operation:
- `host_snapshot()` runs in the namespace pypasta started in and dumps links, addresses and
  main-table routes into the plain records of `pasta.netplan` (which decides what to copy).
- `configure_ns(plan, cfg, ifname)` runs *inside* the target namespace (through
  `netns.ns_call`), so its IPRoute socket is bound there. It always brings `lo` up and sets or reads
  the tap's MAC; with `--config-net` it sets the MTU, brings the tap up without DAD on the
  link-local address (see `_config_net`), and adds addresses and routes.
- Every IPRoute is closed explicitly; no pyroute2 object outlives the call that made it, and
  pyroute2 starts no threads here (checked before creating user namespaces).

Errors become one-line `SetupError`s naming the step, e.g. "Couldn't set IPv4 route(s) in
namespace: Network is unreachable".
"""

from __future__ import annotations

import errno
import ipaddress
import os

from pasta.lazyimport import submodule

IPRoute = submodule("pyroute2", "iproute.linux").IPRoute
NetlinkError = submodule("pyroute2", "netlink.exceptions").NetlinkError

from pasta import netplan as P
from pasta.errors import SetupError

IFF_UP = 0x1
IN6_ADDR_GEN_MODE_NONE = 1
IFA_F_NODAD = 0x02
_IGNORED_ROUTE_ERRORS = (errno.EEXIST, errno.ENETUNREACH, errno.EHOSTUNREACH)


def _route_from_msg(m) -> P.HostRoute:
    mp = ()
    if m.get("RTA_MULTIPATH"):
        mp = tuple(P.Nexthop(oif=nh["oif"], gateway=nh.get("RTA_GATEWAY"), hops=nh["hops"])
                   for nh in m.get("RTA_MULTIPATH"))
    extra = []
    if m.get("RTA_PREF") is not None:
        extra.append(("RTA_PREF", m.get("RTA_PREF")))
    metrics = m.get("RTA_METRICS")
    if metrics:
        extra.append(("metrics", tuple((k, v) for k, v in metrics["attrs"])))
    return P.HostRoute(
        family=m["family"], dst=m.get("RTA_DST"), dst_len=m["dst_len"], oif=m.get("RTA_OIF"),
        gateway=m.get("RTA_GATEWAY"), table=m.get("RTA_TABLE") or m["table"], scope=m["scope"],
        type=m["type"], proto=m["proto"], priority=m.get("RTA_PRIORITY"), multipath=mp,
        extra=tuple(extra))


def snapshot_from(ipr: IPRoute) -> P.HostSnapshot:
    links = tuple(P.HostLink(m["index"], m.get("IFLA_IFNAME"), m.get("IFLA_MTU") or 0)
                  for m in ipr.get_links())
    addrs = []
    for m in ipr.get_addr():
        a = m.get("IFA_LOCAL") if m["family"] == P.AF_INET else None
        a = a or m.get("IFA_ADDRESS")
        flags = m.get("IFA_FLAGS")
        addrs.append(P.HostAddr(m["family"], m["index"], a, m["prefixlen"], m["scope"],
                                m["flags"] if flags is None else flags))
    routes = []
    for fam in (P.AF_INET, P.AF_INET6):
        for m in ipr.get_routes(family=fam, table=P.RT_TABLE_MAIN):
            if (m.get("RTA_TABLE") or m["table"]) == P.RT_TABLE_MAIN:
                routes.append(_route_from_msg(m))
    return P.HostSnapshot(links=links, addrs=tuple(addrs), routes=tuple(routes))


def host_snapshot() -> P.HostSnapshot:
    """Dump the current network namespace's links, addresses and main-table routes."""
    try:
        with IPRoute() as ipr:
            return snapshot_from(ipr)
    except (OSError, NetlinkError) as e:
        raise SetupError(f"Couldn't read host interfaces and routes: {e}") from None


def _route_kwargs(r: P.HostRoute, oif: int) -> dict:
    kw = dict(family=r.family, dst_len=r.dst_len, table=r.table, scope=r.scope, type=r.type,
              proto=r.proto)
    if r.dst is not None and r.dst_len:
        kw["dst"] = r.dst
    if r.gateway:
        kw["gateway"] = r.gateway
    if r.priority is not None:
        kw["priority"] = r.priority
    if r.multipath:
        kw["multipath"] = [dict(oif=oif, hops=n.hops, **({"gateway": n.gateway} if n.gateway else {}))
                           for n in r.multipath]
    else:
        kw["oif"] = oif
    for k, v in r.extra:
        if k == "metrics":
            kw["metrics"] = {"attrs": [list(x) for x in v]}
        else:
            kw[k.lower().replace("rta_", "")] = v
    return kw


def _add_routes(ipr: IPRoute, routes: list[dict], fam: str) -> None:
    """Add routes, retrying as many rounds as there are routes so dependencies resolve."""
    pending = list(routes)
    last = None
    for _ in range(max(1, len(pending))):
        left = []
        for kw in pending:
            try:
                ipr.route("add", **kw)
            except NetlinkError as e:
                if e.code == errno.EEXIST:
                    continue
                last = e
                left.append(kw)
        pending = left
        if not pending:
            return
    # Like pasta: unreachable leftovers (e.g. a gateway outside every prefix) are not fatal.
    if last is not None and last.code not in _IGNORED_ROUTE_ERRORS:
        raise SetupError(f"Couldn't set {fam} route(s) in namespace: {_strerr(last)}")


def _strerr(e: NetlinkError) -> str:
    return os.strerror(e.code) if e.code else str(e)


def _addr_add(ipr: IPRoute, idx: int, family: int, addr: str, prefix: int, fam: str) -> None:
    try:
        ipr.addr("add", index=idx, family=family, address=str(addr), prefixlen=prefix,
                 flags=IFA_F_NODAD)
    except NetlinkError as e:
        if e.code != errno.EEXIST:
            raise SetupError(f"Couldn't set {fam} address(es) in namespace: {_strerr(e)}") from None


def configure_ns(plan: P.NetPlan, cfg, ifname: str) -> dict:
    """Inside the target netns: lo up, MAC, and with --config-net the whole interface setup.

    Returns {"ifindex", "mac", "ll"} of the tap ("ll": its link-local address, if any).
    """
    with IPRoute() as ipr:
        try:
            ipr.link("set", index=1, state="up")
        except NetlinkError as e:
            raise SetupError(f"Couldn't bring up loopback interface in namespace: {_strerr(e)}") from None
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            raise SetupError(f"Tap interface {ifname} not found in namespace")
        idx = found[0]
        try:
            if cfg.ns_mac:
                ipr.link("set", index=idx, address=cfg.ns_mac)
            mac = ipr.get_links(idx)[0].get("IFLA_ADDRESS")
        except NetlinkError as e:
            raise SetupError(f"Couldn't set MAC address in namespace: {_strerr(e)}") from None
        ll = None
        if cfg.config_net:
            ll = _config_net(ipr, idx, plan, mac)
        return {"ifindex": idx, "mac": mac, "ll": ll}


def eui64_link_local(mac: str) -> ipaddress.IPv6Address:
    """fe80::/64 address from a MAC (modified EUI-64, RFC 4291 appendix A)."""
    b = bytes.fromhex(mac.replace(":", ""))
    iid = bytes([b[0] ^ 0x02]) + b[1:3] + b"\xff\xfe" + b[3:6]
    return ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + iid)


def _config_net(ipr: IPRoute, idx: int, plan: P.NetPlan, mac: str):
    """MTU, up, addresses and routes. Returns the tap's IPv6 link-local address (or None).

    DAD dodge: pasta brings the link up with IFF_NOARP so that DAD on the kernel's link-local
    address completes at once, but that races with the DAD work item (measured here: the
    address stayed tentative for about a second). Instead, with IPv6 we switch the tap's
    address generation mode to "none" before it goes up and add the EUI-64 link-local address
    ourselves with IFA_F_NODAD: deterministic, and usable the moment the command starts.
    """
    ll = eui64_link_local(mac) if plan.v6.enabled else None
    try:
        if plan.mtu:
            ipr.link("set", index=idx, mtu=plan.mtu)
        if ll is not None:
            ipr.link("set", index=idx, IFLA_AF_SPEC={"attrs": [["AF_INET6", {"attrs": [
                ["IFLA_INET6_ADDR_GEN_MODE", IN6_ADDR_GEN_MODE_NONE]]}]]})
        ipr.link("set", index=idx, state="up")
    except NetlinkError as e:
        raise SetupError(f"Couldn't bring up tap interface in namespace: {_strerr(e)}") from None

    if plan.v4.enabled:
        v4 = plan.v4
        if v4.copy_addrs:
            for a in v4.copy_addrs:
                _addr_add(ipr, idx, P.AF_INET, a.address, a.prefixlen, "IPv4")
        elif v4.addr is not None:
            _addr_add(ipr, idx, P.AF_INET, v4.addr, v4.prefix, "IPv4")
        if v4.copying_routes:
            _add_routes(ipr, [_route_kwargs(r, idx) for r in v4.copy_routes], "IPv4")
        elif v4.gw is not None:
            _add_routes(ipr, [dict(family=P.AF_INET, dst_len=0, gateway=str(v4.gw), oif=idx,
                                   proto=3)], "IPv4")

    if plan.v6.enabled:
        v6 = plan.v6
        _addr_add(ipr, idx, P.AF_INET6, ll, 64, "IPv6 link-local")
        if v6.copy_addrs:
            for a in v6.copy_addrs:
                _addr_add(ipr, idx, P.AF_INET6, a.address, a.prefixlen, "IPv6")
        elif v6.addr is not None:
            _addr_add(ipr, idx, P.AF_INET6, v6.addr, v6.prefix or 64, "IPv6")
        if v6.copying_routes:
            _add_routes(ipr, [_route_kwargs(r, idx) for r in v6.copy_routes], "IPv6")
        elif v6.gw is not None:
            _add_routes(ipr, [dict(family=P.AF_INET6, dst_len=0, gateway=str(v6.gw), oif=idx,
                                   proto=3)], "IPv6")
    return ll
