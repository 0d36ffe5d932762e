"""Rtnetlink for pypasta: pyroute2's message codecs over a socket of our own.

Theory of operation:
- `host_snapshot()` runs in the namespace pypasta started in and dumps links, addresses and
  main-table routes into the plain records of `pasta.plan.netplan` (which decides what to copy).
- `configure_ns(plan, cfg, ifname)` runs *inside* the target namespace (through
  `netns.ns_call`), so its netlink socket is bound there. It always brings `lo` up and sets or
  reads the tap's MAC; with `--config-net` it sets the MTU, brings the tap up without DAD on the
  link-local address (see `_config_net`), and adds addresses and routes.

Why not `pyroute2.IPRoute`: importing it (and the asyncio, ssl and request-filter machinery it
pulls in) cost about 75 ms, half of pypasta's start-up budget, for a dozen requests. pyroute2
still does every encode and decode here: `_Rtnl` builds its `ifinfmsg`/`ifaddrmsg`/`rtmsg`
messages, whose import costs about 15 ms, and only owns the socket, sequence numbers and the
ACK/DONE loop (`request` for one change, `dump` for a listing). Every socket is closed before the
call that opened it returns, and nothing here starts a thread.

Errors become one-line `SetupError`s naming the step, e.g. "Couldn't set IPv4 route(s) in
namespace: Network is unreachable".
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct

from pasta.util.lazyimport import submodule

ifinfmsg = submodule("pyroute2", "netlink.rtnl.ifinfmsg").ifinfmsg
ifaddrmsg = submodule("pyroute2", "netlink.rtnl.ifaddrmsg").ifaddrmsg
rtmsg = submodule("pyroute2", "netlink.rtnl.rtmsg").rtmsg

from pasta.plan import netplan as P
from pasta.util.errors import SetupError

IFF_UP = 0x1
IN6_ADDR_GEN_MODE_NONE = 1
IFA_F_NODAD = 0x02
_IGNORED_ROUTE_ERRORS = (errno.EEXIST, errno.ENETUNREACH, errno.EHOSTUNREACH)

NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE, NLM_F_DUMP = 0x1, 0x4, 0x200, 0x400, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 3, 0, 1
_NLMSGHDR = struct.Struct("=IHHII")


class NetlinkError(Exception):
    """The kernel refused a request: `code` is the errno."""

    def __init__(self, code: int):
        self.code = code
        super().__init__(os.strerror(code))


class _Rtnl:
    """One NETLINK_ROUTE socket in the current thread's netns; requests are synchronous."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                  socket.NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def _send(self, msg, mtype: int, flags: int) -> int:
        self.seq += 1
        h = msg["header"]
        h["type"], h["flags"], h["sequence_number"], h["pid"] = mtype, flags, self.seq, 0
        msg.encode()
        self.sock.send(msg.data)
        return self.seq

    def _collect(self, seq: int, cls) -> list:
        """Messages answering `seq` until its ACK or NLMSG_DONE; raises NetlinkError on error."""
        out = []
        while True:
            data = self.sock.recv(1 << 18)
            off = 0
            while off + _NLMSGHDR.size <= len(data):
                length, mtype, _flags, mseq, _pid = _NLMSGHDR.unpack_from(data, off)
                if length < _NLMSGHDR.size:
                    raise NetlinkError(errno.EPROTO)
                if mseq == seq:
                    if mtype == NLMSG_ERROR:
                        code = -struct.unpack_from("=i", data, off + _NLMSGHDR.size)[0]
                        if code:
                            raise NetlinkError(code)
                        return out
                    if mtype == NLMSG_DONE:
                        return out
                    m = cls(data[off:off + length])
                    m.decode()
                    out.append(m)
                off += (length + 3) & ~3

    def request(self, cls, mtype: int, fields: dict, attrs=(), flags: int = 0) -> None:
        """One change, acknowledged."""
        msg = cls()
        for k, v in fields.items():
            msg[k] = v
        msg["attrs"] = [list(a) for a in attrs]
        self._collect(self._send(msg, mtype, NLM_F_REQUEST | NLM_F_ACK | flags), cls)

    def dump(self, cls, mtype: int, **fields) -> list:
        msg = cls()
        for k, v in fields.items():
            msg[k] = v
        return self._collect(self._send(msg, mtype, NLM_F_REQUEST | NLM_F_DUMP), cls)

    def get_link(self, ifname: str):
        msg = ifinfmsg()
        msg["attrs"] = [["IFLA_IFNAME", ifname]]
        found = self._collect(self._send(msg, RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK), ifinfmsg)
        return found[0] if found else None

    def link_set(self, index: int, up: bool = False, **attrs) -> None:
        fields = {"index": index}
        if up:
            fields.update(flags=IFF_UP, change=IFF_UP)
        self.request(ifinfmsg, RTM_NEWLINK, fields, attrs.items())


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


def snapshot_from(nl: _Rtnl) -> P.HostSnapshot:
    links = tuple(P.HostLink(m["index"], m.get("IFLA_IFNAME"), m.get("IFLA_MTU") or 0,
                             m.get("IFLA_ADDRESS") or "")
                  for m in nl.dump(ifinfmsg, RTM_GETLINK))
    addrs = []
    for m in nl.dump(ifaddrmsg, RTM_GETADDR):
        a = m.get("IFA_LOCAL") if m["family"] == P.AF_INET else None
        a = a or m.get("IFA_ADDRESS")
        flags = m.get("IFA_FLAGS")
        addrs.append(P.HostAddr(m["family"], m["index"], a, m["prefixlen"], m["scope"],
                                m["flags"] if flags is None else flags))
    routes = []
    for fam in (P.AF_INET, P.AF_INET6):
        for m in nl.dump(rtmsg, RTM_GETROUTE, family=fam):
            if m["family"] == fam and (m.get("RTA_TABLE") or m["table"]) == P.RT_TABLE_MAIN:
                routes.append(_route_from_msg(m))
    return P.HostSnapshot(links=links, addrs=tuple(addrs), routes=tuple(routes))


def host_snapshot() -> P.HostSnapshot:
    """Dump the current network namespace's links, addresses and main-table routes."""
    try:
        with _Rtnl() as nl:
            return snapshot_from(nl)
    except (OSError, NetlinkError) as e:
        raise SetupError(f"Couldn't read host interfaces and routes: {e}") from None


def _route_msg(r: P.HostRoute, oif: int) -> tuple[dict, list]:
    """(rtmsg fields, attributes) adding the copy of host route `r` through `oif`."""
    fields = dict(family=r.family, dst_len=r.dst_len, table=r.table if r.table < 256 else 252,
                  scope=r.scope, type=r.type, proto=r.proto)
    attrs = [("RTA_TABLE", r.table)]
    if r.dst is not None and r.dst_len:
        attrs.append(("RTA_DST", r.dst))
    if r.gateway:
        attrs.append(("RTA_GATEWAY", r.gateway))
    if r.priority is not None:
        attrs.append(("RTA_PRIORITY", r.priority))
    if r.multipath:
        attrs.append(("RTA_MULTIPATH", [
            {"flags": 0, "hops": n.hops, "oif": oif,
             "attrs": [["RTA_GATEWAY", n.gateway]] if n.gateway else []}
            for n in r.multipath]))
    else:
        attrs.append(("RTA_OIF", oif))
    for k, v in r.extra:
        if k == "metrics":
            attrs.append(("RTA_METRICS", {"attrs": [list(x) for x in v]}))
        else:
            attrs.append((k, v))
    return fields, attrs


def _gateway_route(family: int, gw, oif: int) -> tuple[dict, list]:
    """A default route via `gw` (`ip route add default via GW dev TAP`)."""
    fields = dict(family=family, dst_len=0, table=P.RT_TABLE_MAIN, scope=RT_SCOPE_UNIVERSE,
                  type=RTN_UNICAST, proto=RTPROT_BOOT)
    return fields, [("RTA_TABLE", P.RT_TABLE_MAIN), ("RTA_GATEWAY", str(gw)), ("RTA_OIF", oif)]


def _add_routes(nl: _Rtnl, routes: list[tuple[dict, list]], fam: str) -> None:
    """Add routes, retrying as many rounds as there are routes so dependencies resolve."""
    pending = list(routes)
    last = None
    for _ in range(max(1, len(pending))):
        left = []
        for fields, attrs in pending:
            try:
                nl.request(rtmsg, RTM_NEWROUTE, fields, attrs, NLM_F_CREATE | NLM_F_EXCL)
            except NetlinkError as e:
                if e.code == errno.EEXIST:
                    continue
                last = e
                left.append((fields, attrs))
        pending = left
        if not pending:
            return
    # Like pasta: unreachable leftovers (e.g. a gateway outside every prefix) are not fatal.
    if last is not None and last.code not in _IGNORED_ROUTE_ERRORS:
        raise SetupError(f"Couldn't set {fam} route(s) in namespace: {_strerr(last)}")


def _strerr(e: NetlinkError) -> str:
    return os.strerror(e.code) if e.code else str(e)


def _addr_add(nl: _Rtnl, idx: int, family: int, addr, prefix: int, fam: str) -> None:
    addr = str(addr)
    attrs = [("IFA_ADDRESS", addr), ("IFA_FLAGS", IFA_F_NODAD)]
    if family == P.AF_INET:
        attrs.append(("IFA_LOCAL", addr))
    try:
        nl.request(ifaddrmsg, RTM_NEWADDR,
                   dict(family=family, prefixlen=prefix, flags=IFA_F_NODAD, scope=0, index=idx),
                   attrs, NLM_F_CREATE | NLM_F_EXCL)
    except NetlinkError as e:
        if e.code != errno.EEXIST:
            raise SetupError(f"Couldn't set {fam} address(es) in namespace: {_strerr(e)}") from None


def configure_ns(plan: P.NetPlan, cfg, ifname) -> dict:
    """Inside the target netns: lo up, MAC, and with --config-net the whole interface setup
    (`ifname` None: lo only, for --splice-only).

    Returns {"ifindex", "mac", "ll"} of the tap ("ll": its link-local address, if any).
    """
    try:
        nl = _Rtnl()
    except OSError as e:
        raise SetupError(f"Couldn't open netlink socket in namespace: {e.strerror}") from None
    with nl:
        try:
            nl.link_set(1, up=True)
        except (OSError, NetlinkError) as e:
            raise SetupError(f"Couldn't bring up loopback interface in namespace: {e}") from None
        if ifname is None:              # --splice-only: no tap, loopback only
            return {"ifindex": 0, "mac": None, "ll": None}
        try:
            link = nl.get_link(ifname)
        except NetlinkError:
            link = None
        if link is None:
            raise SetupError(f"Tap interface {ifname} not found in namespace")
        idx = link["index"]
        mac = link.get("IFLA_ADDRESS")
        try:
            if cfg.ns_mac:
                nl.link_set(idx, IFLA_ADDRESS=cfg.ns_mac)
                mac = nl.get_link(ifname).get("IFLA_ADDRESS")
        except NetlinkError as e:
            raise SetupError(f"Couldn't set MAC address in namespace: {_strerr(e)}") from None
        ll = None
        if cfg.config_net:
            ll = _config_net(nl, idx, plan, mac)
        return {"ifindex": idx, "mac": mac, "ll": ll}


def eui64_link_local(mac: str) -> ipaddress.IPv6Address:
    """fe80::/64 address from a MAC (modified EUI-64, RFC 4291 appendix A)."""
    b = bytes.fromhex(mac.replace(":", ""))
    iid = bytes([b[0] ^ 0x02]) + b[1:3] + b"\xff\xfe" + b[3:6]
    return ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + iid)


def _config_net(nl: _Rtnl, idx: int, plan: P.NetPlan, mac: str):
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
            nl.link_set(idx, IFLA_MTU=plan.mtu)
        if ll is not None:
            nl.link_set(idx, IFLA_AF_SPEC={"attrs": [["AF_INET6", {"attrs": [
                ["IFLA_INET6_ADDR_GEN_MODE", IN6_ADDR_GEN_MODE_NONE]]}]]})
        nl.link_set(idx, up=True)
    except NetlinkError as e:
        raise SetupError(f"Couldn't bring up tap interface in namespace: {_strerr(e)}") from None

    if plan.v4.enabled:
        v4 = plan.v4
        if v4.copy_addrs:
            for a in v4.copy_addrs:
                _addr_add(nl, idx, P.AF_INET, a.address, a.prefixlen, "IPv4")
        elif v4.addr is not None:
            _addr_add(nl, idx, P.AF_INET, v4.addr, v4.prefix, "IPv4")
        if v4.copying_routes:
            _add_routes(nl, [_route_msg(r, idx) for r in v4.copy_routes], "IPv4")
        elif v4.gw is not None:
            _add_routes(nl, [_gateway_route(P.AF_INET, v4.gw, idx)], "IPv4")

    if plan.v6.enabled:
        v6 = plan.v6
        _addr_add(nl, idx, P.AF_INET6, ll, 64, "IPv6 link-local")
        if v6.copy_addrs:
            for a in v6.copy_addrs:
                _addr_add(nl, idx, P.AF_INET6, a.address, a.prefixlen, "IPv6")
        elif v6.addr is not None:
            _addr_add(nl, idx, P.AF_INET6, v6.addr, v6.prefix or 64, "IPv6")
        if v6.copying_routes:
            _add_routes(nl, [_route_msg(r, idx) for r in v6.copy_routes], "IPv6")
        elif v6.gw is not None:
            _add_routes(nl, [_gateway_route(P.AF_INET6, v6.gw, idx)], "IPv6")
    return ll
