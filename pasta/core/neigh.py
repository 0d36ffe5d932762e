"""Neighbour table: the host's ARP and NDP entries, mirrored so the namespace sees real MACs.

Purpose: pasta 2026's neighbour MAC mirroring (pasta-2026.md section 3; fwd.c fwd_neigh_*,
netlink.c nl_neigh_msg_read(), arp.c arp_announce(), ndp.c ndp_unsolicited_na()) as pure code:
a bounded table {address as the namespace sees it: MAC}, the decoder of the netlink messages that
feed it, and the builders of the gratuitous ARP and unsolicited NA frames that announce it.

Theory of operation:
- At start-up the shell builds `NeighTable.from_plan(plan, rules, ctx.our_mac)` (template
  interface index per family, the namespace's gateway per family, and the pinned addresses:
  `--map-host-loopback` and `--map-guest-addr` of each family, as fwd_neigh_table_init()).
- It opens a NETLINK_ROUTE socket bound to the group `RTMGRP_NEIGH` (the notifier), then dumps
  the host's tables with `neigh_dump_request(AF_INET, seq)` and `neigh_dump_request(AF_INET6,
  seq)` on a second socket (pasta's nl_neigh_sync()), reading each reply until `NeighMsg.DONE`.
- Every datagram read (dump reply or notification, plain `recv_into`) goes through
  `iter_neigh_events(buf, 0, n)`, which yields one `NeighEvent` per netlink message; each event
  goes to `table.on_neigh_event(ev, nat)`, where `nat(host_addr) -> ns_addr | None` is pasta's
  nat_inbound(): `lambda a: nat_inbound(rules, a, addr_seen)` with the shell's current
  `addr_seen` of that family (4 or 16 bytes; it changes at run time, hence a call argument).
- The result is a `NeighUpdate(op, addr, mac, announce)`. When `announce` is true, and the tap is
  configured (pasta's tap_is_ready(): `--config-net`; nothing is sent on an unconfigured tap),
  the shell writes `announce_frame(ctx, addr, mac, vnet)` to the tap. `op` tells the shell what
  to log (pasta's messages and levels are listed with `NeighOp` below).
- Whenever it needs the Ethernet source for something sent on behalf of a remote host (ARP
  reply, NA, TCP, UDP, ICMP towards the namespace), the shell or core asks `table.mac_for(addr)`
  and uses `ctx.our_mac` when it returns None: pass `mac_for=table.mac_for` to
  `pasta.core.arp.reply()` and `pasta.core.ndp.reply()`.

States and events:
- Netlink messages (`NeighMsg`): `NeighMsg.NEWNEIGH` (entry added or changed, also every entry
  of a dump), `NeighMsg.DELNEIGH` (entry deleted), `NeighMsg.DONE` (end of a dump) and
  `NeighMsg.ERROR` (an error or an acknowledgement: `NeighEvent.error`, a positive errno or 0).
  Other message types are skipped by the decoder.
- Neighbour states (`Nud`, bits of ndm_state): `Nud.INCOMPLETE`, `Nud.REACHABLE`, `Nud.STALE`,
  `Nud.DELAY`, `Nud.PROBE`, `Nud.FAILED`, `Nud.NOARP`, `Nud.PERMANENT`. An entry is kept only in
  a state of pasta's `NUD_VALID`: `Nud.PERMANENT`, `Nud.NOARP`, `Nud.REACHABLE`, `Nud.PROBE` or
  `Nud.STALE` (not `Nud.DELAY`; see the differences below); a NEWNEIGH in any other state
  removes the entry.
- Outcomes of one event (`NeighOp`, exactly one per event; pasta's log line in brackets):
  - `NeighOp.ADDED`: new entry [trace "neighbour notifier update: ADDR / MAC"];
  - `NeighOp.CHANGED`: known address, new MAC [same trace line];
  - `NeighOp.UNCHANGED`: known address and MAC, a pinned address, or a deletion of an absent
    entry [the update or delete trace line];
  - `NeighOp.REMOVED`: deleted, or no longer in a valid state [trace "neighbour notifier
    delete: ADDR", or "neighbour notifier: ADDR unreachable, state: 0x%04x"];
  - `NeighOp.IGNORED`: not for us: no NDA_DST, another interface or family, no namespace
    address for it (nat_inbound() refused), an lladdr that is not 6 bytes or an entry type other
    than unicast [silent];
  - `NeighOp.BAD_ADDR_LEN`: NDA_DST not 4 (AF_INET) or 16 (AF_INET6) bytes [warn "netlink:
    wrong address length in AF_INET notification" / "... AF_INET6 ..."];
  - `NeighOp.NO_LLADDR`: a valid NEWNEIGH without NDA_LLADDR [warn "RTM_NEWNEIGH ADDR: missing
    link layer address"];
  - `NeighOp.FULL`: a new address while the table is full [debug "Failed to allocate neighbour
    table entry"].
- `announce` is true for `NeighOp.ADDED` unless the MAC is our own (fwd_neigh_table_update());
  for `NeighOp.CHANGED` only if the table was built with `announce_changed=True` (pasta does
  not announce changes; the default follows pasta).

Invariants:
- Keys are namespace-side addresses, 4 or 16 bytes; values are 6-byte MACs.
- Pinned addresses are never entries, so `mac_for()` of a pinned address is always None; no
  event changes that.
- Entries plus pinned addresses never exceed `capacity` (`NEIGH_TABLE_SIZE`, 512, as pasta,
  whose pinned entries use table slots too).
- `mac_for(addr)` is the entry's MAC; else, if the gateway of that family is an entry, the
  gateway's MAC; else None. A pinned gateway therefore gives None for every unknown host.
- `iter_neigh_events()` yields events or raises `Malformed`, whatever the bytes.

Limits and not handled: no eviction (a full table ignores new addresses until one is removed,
as pasta); no IPv4-mapped keys (the family comes from the key length); neighbours on other
interfaces, proxy entries and bridge FDB entries are ignored; link, address and route changes
are not followed (nor are they in pasta). Frames are not padded to 60 bytes (pasta's
tap_send_single() pads; a tap does not need it, as for every other frame pypasta builds).

Kernel assumptions (no tests/kernel test yet; seen in a pyroute2 dump on Linux 6.18):
- ndm_type holds the route type of the entry: 1 (RTN_UNICAST) for unicast ARP and NDP entries,
  link-local ones included, 3 for broadcast, 5 for multicast. pasta compares it with
  ARPHRD_ETHER, which is also 1, so in effect it keeps unicast entries only; so does this table.
- Netlink headers and ndmsg are in host byte order; attributes are 4-byte aligned.

Differences from passt:
- fwd.c keeps pinned entries in its hash table with `permanent` set; here they are a separate
  set (same lookups, same capacity).
- passt's NUD_VALID leaves out NUD_DELAY (the kernel's includes it): an entry going STALE ->
  DELAY (the host sends to a stale neighbour) is dropped and re-added (and announced again) when
  it becomes REACHABLE. Kept as pasta does it.
- pasta's unsolicited NA sets the Solicited flag (R, S, O all set); RFC 4861 7.2.6 wants S clear
  in an unsolicited NA. Kept as pasta: the namespace then marks the entry REACHABLE, not STALE.
- The decoder raises `Malformed` for a bad message or attribute header where pasta's NLMSG_OK()
  and RTA_OK() loops stop silently.
"""

from __future__ import annotations

import enum
import struct
from typing import Callable, Iterator, NamedTuple, Optional

from pasta.core import fwd, ndp
from pasta.core.wire import build_arp_frame, build_icmp6_frame
from pasta.core.wire.l2 import ARPOP_REQUEST
from pasta.plan import netplan as NP
from pasta.plan.linkctx import LinkCtx
from pasta.util.errors import Malformed

NEIGH_TABLE_SIZE = 512                  # fwd.c NEIGH_TABLE_SIZE (NEIGH_TABLE_SLOTS / 2)

AF_INET = 2
AF_INET6 = 10
RTN_UNICAST = 1                         # == ARPHRD_ETHER, what netlink.c compares ndm_type with
RTMGRP_NEIGH = 4                        # bind() group of the notifier socket
RTM_GETNEIGH = 30
NLM_F_REQUEST = 0x001
NLM_F_DUMP = 0x300                      # NLM_F_ROOT | NLM_F_MATCH
NDA_DST = 1
NDA_LLADDR = 2
ETH_ALEN = 6

NLMSG_HDR = struct.Struct("=IHHII")     # len, type, flags, seq, pid (host byte order)
NDMSG = struct.Struct("=BBHiHBB")       # family, pad, pad, ifindex, state, flags, type
RTATTR = struct.Struct("=HH")           # len, type
NLMSG_ERR = struct.Struct("=i")

BROADCAST_MAC = b"\xff" * 6
ZERO_MAC = bytes(6)
ALL_NODES = ndp.ALL_NODES


class NeighMsg(enum.IntEnum):
    """Netlink message types the decoder reports (linux/netlink.h, linux/rtnetlink.h)."""

    ERROR = 2                           # NLMSG_ERROR
    DONE = 3                            # NLMSG_DONE
    NEWNEIGH = 28                       # RTM_NEWNEIGH
    DELNEIGH = 29                       # RTM_DELNEIGH


class Nud(enum.IntFlag):
    """Neighbour states (linux/neighbour.h NUD_*)."""

    INCOMPLETE = 0x01
    REACHABLE = 0x02
    STALE = 0x04
    DELAY = 0x08
    PROBE = 0x10
    FAILED = 0x20
    NOARP = 0x40
    PERMANENT = 0x80


# netlink.c: "borrowed from kernel", without NUD_DELAY (module docstring)
NUD_VALID = Nud.PERMANENT | Nud.NOARP | Nud.REACHABLE | Nud.PROBE | Nud.STALE


class NeighOp(enum.IntEnum):
    """What one event did to the table (module docstring, with pasta's log lines)."""

    ADDED = 1
    CHANGED = 2
    UNCHANGED = 3
    REMOVED = 4
    IGNORED = 5
    BAD_ADDR_LEN = 6
    NO_LLADDR = 7
    FULL = 8


class NeighEvent(NamedTuple):
    """One netlink message about a neighbour, as decoded (host-side address, raw fields)."""

    msg: int                            # NeighMsg
    family: int = 0                     # AF_INET / AF_INET6
    ifindex: int = 0
    state: int = 0                      # Nud bits
    ndm_type: int = RTN_UNICAST
    dst: Optional[bytes] = None         # NDA_DST as sent (host side), None if absent
    lladdr: Optional[bytes] = None      # NDA_LLADDR as sent, None if absent
    seq: int = 0                        # nlmsg_seq: matches dump replies to their request
    error: int = 0                      # NeighMsg.ERROR: errno (positive), 0 for an ACK


class NeighUpdate(NamedTuple):
    """The outcome of one event: op, namespace-side address, MAC, whether to announce it."""

    op: NeighOp
    addr: Optional[bytes] = None        # None when the event named no usable address
    mac: Optional[bytes] = None         # new MAC; the old one for REMOVED
    announce: bool = False


_IGNORED = NeighUpdate(NeighOp.IGNORED)


# --- netlink codec ----------------------------------------------------------------------------

def _align4(n: int) -> int:
    return (n + 3) & ~3


def neigh_dump_request(family: int, seq: int) -> bytes:
    """RTM_GETNEIGH dump request for one family (pasta's nl_neigh_sync()), host byte order."""
    body = NDMSG.pack(family, 0, 0, 0, 0, 0, 0)
    return NLMSG_HDR.pack(NLMSG_HDR.size + len(body), RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP,
                          seq & 0xFFFFFFFF, 0) + body


def iter_neigh_events(buf, off: int = 0, end: Optional[int] = None) -> Iterator[NeighEvent]:
    """Decode the netlink messages in buf[off:end] (one recv_into), one event per message.

    buf is borrowed while iterating (the events hold copies). Messages other than
    RTM_NEWNEIGH, RTM_DELNEIGH, NLMSG_DONE and NLMSG_ERROR are skipped. A bad header raises
    `Malformed` after the events before it have been yielded.
    """
    if end is None or end > len(buf):
        end = len(buf)
    while off < end:
        if end - off < NLMSG_HDR.size:
            raise Malformed("netlink: truncated message header")
        nlen, ntype, _flags, seq, _pid = NLMSG_HDR.unpack_from(buf, off)
        if nlen < NLMSG_HDR.size or nlen > end - off:
            raise Malformed("netlink: bad message length")
        body, mend = off + NLMSG_HDR.size, off + nlen
        off = min(off + _align4(nlen), end)
        if ntype == NeighMsg.DONE:
            yield NeighEvent(NeighMsg.DONE, seq=seq)
        elif ntype == NeighMsg.ERROR:
            if mend - body < NLMSG_ERR.size:
                raise Malformed("netlink: short error message")
            yield NeighEvent(NeighMsg.ERROR, seq=seq,
                             error=-NLMSG_ERR.unpack_from(buf, body)[0])
        elif ntype in (NeighMsg.NEWNEIGH, NeighMsg.DELNEIGH):
            yield _neigh_event(buf, ntype, seq, body, mend)


def _neigh_event(buf, ntype: int, seq: int, body: int, mend: int) -> NeighEvent:
    """One RTM_NEWNEIGH / RTM_DELNEIGH: struct ndmsg, then NDA_* attributes."""
    if mend - body < NDMSG.size:
        raise Malformed("netlink: short ndmsg")
    family, _p1, _p2, ifindex, state, _flags, ndm_type = NDMSG.unpack_from(buf, body)
    dst = lladdr = None
    a = body + _align4(NDMSG.size)
    while mend - a >= RTATTR.size:
        rlen, rtype = RTATTR.unpack_from(buf, a)
        if rlen < RTATTR.size or rlen > mend - a:
            raise Malformed("netlink: bad attribute length")
        if rtype == NDA_DST:                  # the last copy wins, as in pasta's loop
            dst = bytes(buf[a + RTATTR.size:a + rlen])
        elif rtype == NDA_LLADDR:
            lladdr = bytes(buf[a + RTATTR.size:a + rlen])
        a += _align4(rlen)
    return NeighEvent(NeighMsg(ntype), family, ifindex, state, ndm_type, dst, lladdr, seq)


# --- address translation ----------------------------------------------------------------------

def nat_inbound(rules: fwd.Rules, addr: bytes, addr_seen: Optional[bytes] = None
                ) -> Optional[bytes]:
    """The namespace-side address of host address `addr`, or None (pasta's fwd.c nat_inbound()).

    addr_seen: the namespace's address last seen on the tap for that family (IPv4: None means
    the assigned one, as pasta initialises it; IPv6: None or :: means not seen yet).
    """
    addr = bytes(addr)
    if len(addr) == 4:
        if rules.map_host_lo4 is not None and addr == fwd.LOOPBACK4:   # 127.0.0.1 only
            return rules.map_host_lo4
        if rules.map_guest4 is not None and addr == rules.guest4:
            return rules.map_guest4
        seen = addr_seen if addr_seen is not None else rules.guest4
        if addr[0] == 127 or addr == fwd.ANY4 or addr == rules.guest4 or addr == seen:
            return None
        return addr
    if rules.map_host_lo6 is not None and addr == fwd.LOOPBACK6:
        return rules.map_host_lo6
    if rules.map_guest6 is not None and addr == rules.guest6:
        return rules.map_guest6
    if addr == fwd.LOOPBACK6 or addr == rules.guest6:
        return None
    if addr_seen is not None and addr_seen != fwd.ANY6 and addr == addr_seen:
        return None
    return addr


# --- the table --------------------------------------------------------------------------------

class NeighTable:
    """Neighbour MACs by namespace-side address (module docstring)."""

    def __init__(self, our_mac: bytes, ifi4: Optional[int] = None, ifi6: Optional[int] = None,
                 gw4: Optional[bytes] = None, gw6: Optional[bytes] = None, pinned=(),
                 capacity: int = NEIGH_TABLE_SIZE, announce_changed: bool = False):
        if len(our_mac) != ETH_ALEN:
            raise ValueError("our_mac must be 6 bytes")
        self.our_mac = bytes(our_mac)
        self.ifi4 = ifi4
        self.ifi6 = ifi6
        self.gw4 = None if gw4 is None else bytes(gw4)
        self.gw6 = None if gw6 is None else bytes(gw6)
        self.pinned = frozenset(bytes(a) for a in pinned if a is not None)
        if len(self.pinned) > capacity:
            raise ValueError("more pinned addresses than table entries")
        self.capacity = capacity
        self.announce_changed = announce_changed
        self._macs: dict[bytes, bytes] = {}

    @classmethod
    def from_plan(cls, plan: NP.NetPlan, rules: fwd.Rules, our_mac: bytes,
                  **kw) -> "NeighTable":
        """The table pasta sets up in fwd_neigh_table_init(): templates, gateways, pins."""
        v4, v6 = plan.v4, plan.v6
        return cls(our_mac,
                   ifi4=v4.template_index if v4.enabled else None,
                   ifi6=v6.template_index if v6.enabled else None,
                   gw4=v4.gw.packed if v4.enabled and v4.gw is not None else None,
                   gw6=v6.gw.packed if v6.enabled and v6.gw is not None else None,
                   pinned=(rules.map_host_lo4, rules.map_guest4, rules.map_host_lo6,
                           rules.map_guest6), **kw)

    def __len__(self) -> int:
        return len(self._macs)

    def __contains__(self, addr) -> bool:
        return bytes(addr) in self._macs

    def items(self):
        """(namespace address, MAC) of every entry, pinned addresses excluded."""
        return self._macs.items()

    def mac_for(self, addr) -> Optional[bytes]:
        """The MAC to use for a host seen at `addr` by the namespace; None: use our own.

        pasta's fwd_neigh_mac_get(): the entry, else the gateway's entry, else none.
        """
        addr = bytes(addr)
        if addr in self.pinned:
            return None
        mac = self._macs.get(addr)
        if mac is not None:
            return mac
        gw = self.gw4 if len(addr) == 4 else self.gw6
        return None if gw is None else self._macs.get(gw)

    def on_neigh_event(self, ev: NeighEvent,
                       nat: Callable[[bytes], Optional[bytes]]) -> NeighUpdate:
        """Apply one netlink event (netlink.c nl_neigh_msg_read()); see `NeighOp`.

        nat maps the host-side address to the namespace-side one, or None to ignore it.
        """
        if ev.msg not in (NeighMsg.NEWNEIGH, NeighMsg.DELNEIGH) or ev.dst is None:
            return _IGNORED
        if ev.family == AF_INET:
            if ev.ifindex != self.ifi4 or self.ifi4 is None:
                return _IGNORED
            alen = 4
        elif ev.family == AF_INET6:
            if ev.ifindex != self.ifi6 or self.ifi6 is None:
                return _IGNORED
            alen = 16
        else:
            return _IGNORED
        if len(ev.dst) != alen:
            return NeighUpdate(NeighOp.BAD_ADDR_LEN)
        addr = nat(ev.dst)
        if addr is None:
            return _IGNORED
        addr = bytes(addr)
        if ev.msg == NeighMsg.DELNEIGH or not ev.state & NUD_VALID:
            return self._free(addr)
        if ev.lladdr is None:
            return NeighUpdate(NeighOp.NO_LLADDR, addr)
        if len(ev.lladdr) != ETH_ALEN or ev.ndm_type != RTN_UNICAST:
            return NeighUpdate(NeighOp.IGNORED, addr)
        return self._update(addr, bytes(ev.lladdr))

    def _update(self, addr: bytes, mac: bytes) -> NeighUpdate:
        """fwd_neigh_table_update(): pinned entries never change; new ones are announced."""
        if addr in self.pinned:
            return NeighUpdate(NeighOp.UNCHANGED, addr)
        old = self._macs.get(addr)
        if old is not None:
            if old == mac:
                return NeighUpdate(NeighOp.UNCHANGED, addr, mac)
            self._macs[addr] = mac
            return NeighUpdate(NeighOp.CHANGED, addr, mac,
                               self.announce_changed and mac != self.our_mac)
        if len(self._macs) + len(self.pinned) >= self.capacity:
            return NeighUpdate(NeighOp.FULL, addr, mac)
        self._macs[addr] = mac
        return NeighUpdate(NeighOp.ADDED, addr, mac, mac != self.our_mac)

    def _free(self, addr: bytes) -> NeighUpdate:
        """fwd_neigh_table_free(): pinned entries stay; an absent one is no change."""
        mac = self._macs.pop(addr, None)
        if mac is None:
            return NeighUpdate(NeighOp.UNCHANGED, addr)
        return NeighUpdate(NeighOp.REMOVED, addr, mac)


# --- announcements ----------------------------------------------------------------------------

def arp_announce_frame(addr: bytes, mac: bytes, vnet: bool = True) -> bytes:
    """Gratuitous ARP for addr at mac (arp.c arp_announce(), RFC 5227 2.3).

    Ethernet broadcast from `mac`; an ARP request with sender = target = addr, sender hardware
    address `mac` and a zero target hardware address.
    """
    return build_arp_frame(BROADCAST_MAC, mac, ARPOP_REQUEST, mac, addr, ZERO_MAC, addr, vnet)


def unsolicited_na_frame(ctx: LinkCtx, addr: bytes, mac: bytes,
                         vnet: bool = True) -> Optional[bytes]:
    """Unsolicited NA for addr at mac (ndp.c ndp_unsolicited_na()), or None without IPv6.

    From our MAC and `ctx.v6.our_ll` to the guest MAC and ff02::1, hop limit 255; flags R, S, O
    and the target link-layer option `mac`, as pasta's ndp_na(). Full ICMPv6 checksum.
    """
    if ctx.v6.our_ll is None:
        return None
    msg = ndp.neighbour_advertisement(ctx, addr, mac)
    return build_icmp6_frame(ctx.guest_mac, ctx.our_mac, ctx.v6.our_ll, ALL_NODES, msg[0],
                             msg[1], msg[4:], vnet)


def announce_frame(ctx: LinkCtx, addr: bytes, mac: bytes, vnet: bool = True) -> Optional[bytes]:
    """The frame announcing a `NeighUpdate` with `announce` set: ARP for IPv4, NA for IPv6."""
    if len(addr) == 4:
        return arp_announce_frame(addr, mac, vnet)
    return unsolicited_na_frame(ctx, addr, mac, vnet)


# --- the first frames of a link (tap_start_connection()) ---------------------------------------

ND_NEIGHBOR_SOLICIT = 135


def init_request_frames(ctx: LinkCtx, vnet: bool = True) -> list:
    """What passt sends when a link comes up, to learn the guest's MAC before it speaks:
    arp_send_init_req() (broadcast ARP request from our MAC and the gateway address for the
    guest's address) and ndp_send_init_req() (an NS for the guest's address, from our
    link-local address, to that address itself, no options), each if its family is on."""
    out = []
    if ctx.v4.addr is not None and ctx.v4.gw is not None:
        out.append(build_arp_frame(BROADCAST_MAC, ctx.our_mac, ARPOP_REQUEST, ctx.our_mac,
                                   ctx.v4.gw, BROADCAST_MAC, ctx.v4.addr, vnet))
    if ctx.v6.addr is not None and ctx.v6.our_ll is not None and not ctx.no_ndp:
        out.append(build_icmp6_frame(ctx.guest_mac, ctx.our_mac, ctx.v6.our_ll, ctx.v6.addr,
                                     ND_NEIGHBOR_SOLICIT, 0, bytes(4) + ctx.v6.addr, vnet))
    return out
