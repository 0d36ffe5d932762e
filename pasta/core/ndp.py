"""NDP responder: neighbour advertisements for every address, router advertisements for SLAAC.

Purpose: pasta's ndp.c as pure functions: answer the namespace's Neighbour Solicitations and
Router Solicitations, and build the unsolicited Router Advertisements the engine schedules.

Theory of operation: the tap dispatcher passes every ICMPv6 message of type 133..136 to
`reply(ctx, icmp6_payload, src_ip, dst_ip)` (the whole ICMPv6 message: type, code, checksum,
body; the input checksum is not checked here). The result is `(message, src, dst)`: an ICMPv6
message whose checksum field is zero (the dispatcher fills it with the pseudo-header sum), the
IPv6 source (always `ctx.v6.our_ll`) and destination; the dispatcher sends it with hop limit 255
(RFC 4861 7.1.2 / 6.1.2) to the guest MAC. For unsolicited RAs the engine arms a timer at
`first_deadline(now, rng)` at start, and whenever a deadline passes sends `unsolicited_ra(ctx)`
(if not None) and arms the next at `next_deadline(now, rng)`: as pasta, nothing at start, then
one RA every 200..599 s.

Why no RA at start: the kernel accepts an RA while its link-local address is still tentative
(duplicate address detection, 1..2 s after the link comes up) and configures the default route and
SLAAC address from it at once. An early RA therefore makes "SLAAC has completed" true before the
link-local address is usable, and a DHCPv6 client started then (ISC dhclient -6 binds that address)
fails with EADDRNOTAVAIL (issue 13, item 3). The kernel sends its Router Solicitation only once
the link-local address is usable, so answering that RS is both soon enough and safe.

States and events (`NdpType`, one per message):
- `NdpType.NS` -> `NdpType.NA` for the requested target, whatever it is (every address on the
  link is pasta), flags `NaFlag.ROUTER` + `NaFlag.SOLICITED` + `NaFlag.OVERRIDE`, option
  `NdpOpt.TARGET_L2_ADDR` = our MAC, or the target's real MAC when the caller passes the
  neighbour table's `mac_for` and it knows one (pasta 2026 fwd_neigh_mac_get(); see
  `pasta.core.neigh`, which also sends the same NA unsolicited to ff02::1), sent to the
  solicitor. An NS from the unspecified address
  (duplicate address detection) is ignored, so DAD always succeeds.
- `NdpType.RS` -> `NdpType.RA` to the solicitor (to ff02::1 if the RS came from ::), unless RAs
  are off (`--no-ra`, `--config-net`).
- `NdpType.RA` and `NdpType.NA` from the namespace are consumed silently (None).
- With `--no-ndp` (or IPv6 disabled) every message is ignored.

RA contents (pasta-reference.md 11.2): current hop limit 255, `RaFlag.MANAGED` set (addresses also
via DHCPv6) and `RaFlag.OTHER` clear, router lifetime 65535 s, reachable time and retransmit timer
0; options in this order: `NdpOpt.PREFIX_INFO` (the assigned address's /64, flags on-link and
autonomous, valid and preferred lifetime infinite), `NdpOpt.SRC_L2_ADDR` (our MAC), `NdpOpt.MTU`
(unless `-m 0`), `NdpOpt.RDNSS` (lifetime infinite) with `--dhcp-dns` and IPv6 nameservers, and
`NdpOpt.DNSSL` (lifetime infinite) with `--dhcp-search` and a search list, only when the RDNSS
option is sent too (as in pasta).

Invariants: every message returned has source `ctx.v6.our_ll`, code 0 and checksum field 0; every
option length is a non-zero multiple of 8 bytes.

Limits and not handled: no redirects, no neighbour cache, no NS sent by pasta, no DAD of our own
link-local; input options are only checked for framing (RFC 4861 4.6: zero length is invalid), the
solicitor's source link-layer option is not used (the guest MAC is known from Ethernet).

Errors (`Malformed`): a message shorter than its fixed part (4 bytes for any, 24 for NS, 8 for RS)
or options that are truncated or of zero length.

Kernel assumptions: none.

Differences from passt (ndp.c):
- The RA prefix has its host bits cleared (RFC 4861 4.6.2: reserved, MUST be zero); pasta copies the
  whole assigned address. Receivers ignore those bits, so the result is the same.
- Without an assigned IPv6 address (local mode) the RA carries no prefix information; pasta would
  advertise ::/64.
- An RS from :: is answered to ff02::1 (RFC 4861 6.2.6); pasta addresses it to ::.
- The DNSSL option is padded to exactly its announced length; pasta appends 8 bytes of padding
  when the names already fill a multiple of 8.
"""

from __future__ import annotations

import enum
import struct
from typing import Callable, Optional

from pasta.util.errors import Malformed
from pasta.plan.linkctx import LinkCtx, encode_name

ICMP6_HDR = struct.Struct("!BBH")
NS_HDR = struct.Struct("!BBHI16s")              # type, code, checksum, reserved, target
NA_HDR = NS_HDR                                 # same layout, flags in the reserved word
RS_HDR = struct.Struct("!BBHI")
RA_HDR = struct.Struct("!BBHBBHII")             # ..., hop limit, flags, lifetime, reach, retrans
OPT_L2_ADDR = struct.Struct("!BB6s")
OPT_PREFIX_INFO = struct.Struct("!BBBBIII16s")
OPT_MTU = struct.Struct("!BBHI")
OPT_DNS_HDR = struct.Struct("!BBHI")            # RDNSS and DNSSL: type, len, reserved, lifetime

RT_LIFETIME_S = 65535
RA_CUR_HOP_LIMIT = 255
LIFETIME_INFINITE = 0xFFFFFFFF
PREFIX_LEN = 64
PREFIX_FLAGS_LA = 0xC0                          # on-link (L), autonomous (A)
MAX_RTR_ADV_INTERVAL_S = min(600, RT_LIFETIME_S - 1)        # RFC 4861 6.2.1, below the lifetime
MIN_DELAY_BETWEEN_RAS_S = 3                                 # RFC 4861 10
MIN_RTR_ADV_INTERVAL_S = max(MAX_RTR_ADV_INTERVAL_S // 3, MIN_DELAY_BETWEEN_RAS_S)
ALL_NODES = bytes.fromhex("ff020000000000000000000000000001")
UNSPECIFIED6 = bytes(16)


class NdpType(enum.IntEnum):
    """ICMPv6 types of Neighbor Discovery (RFC 4861 4)."""

    RS = 133
    RA = 134
    NS = 135
    NA = 136


class NdpOpt(enum.IntEnum):
    """Neighbor Discovery option types used here (RFC 4861 4.6, RFC 8106)."""

    SRC_L2_ADDR = 1
    TARGET_L2_ADDR = 2
    PREFIX_INFO = 3
    MTU = 5
    RDNSS = 25
    DNSSL = 31


class NaFlag(enum.IntFlag):
    """Neighbor Advertisement flags (first word after the checksum)."""

    ROUTER = 0x80000000
    SOLICITED = 0x40000000
    OVERRIDE = 0x20000000


class RaFlag(enum.IntFlag):
    """Router Advertisement flags byte."""

    MANAGED = 0x80
    OTHER = 0x40


def _check_options(msg: bytes, off: int) -> None:
    """Raise Malformed unless msg[off:] is a well-framed sequence of ND options."""
    end = len(msg)
    while off < end:
        if off + 2 > end:
            raise Malformed("ndp: truncated option")
        olen = msg[off + 1] * 8
        if olen == 0:
            raise Malformed("ndp: zero-length option")
        if off + olen > end:
            raise Malformed("ndp: option runs past the end")
        off += olen


def _dnssl(ctx: LinkCtx) -> bytes:
    """DNSSL option (RFC 8106 5.2), or b"" if no name can be encoded."""
    names = b"".join(w for w in (encode_name(n) for n in ctx.search) if w is not None)
    if not names:
        return b""
    names += bytes(-len(names) % 8)
    return OPT_DNS_HDR.pack(NdpOpt.DNSSL, 1 + len(names) // 8, 0, LIFETIME_INFINITE) + names


def router_advertisement(ctx: LinkCtx) -> bytes:
    """The RA pasta sends (module docstring), checksum field zero."""
    v6 = ctx.v6
    out = [RA_HDR.pack(NdpType.RA, 0, 0, RA_CUR_HOP_LIMIT, RaFlag.MANAGED, RT_LIFETIME_S, 0, 0)]
    if v6.addr is not None:
        prefix = v6.addr[:PREFIX_LEN // 8] + bytes(16 - PREFIX_LEN // 8)
        out.append(OPT_PREFIX_INFO.pack(NdpOpt.PREFIX_INFO, 4, PREFIX_LEN, PREFIX_FLAGS_LA,
                                        LIFETIME_INFINITE, LIFETIME_INFINITE, 0, prefix))
    out.append(OPT_L2_ADDR.pack(NdpOpt.SRC_L2_ADDR, 1, ctx.our_mac))
    if ctx.mtu:
        out.append(OPT_MTU.pack(NdpOpt.MTU, 1, 0, ctx.mtu))
    if ctx.dhcp_dns and v6.dns:
        out.append(OPT_DNS_HDR.pack(NdpOpt.RDNSS, 1 + 2 * len(v6.dns), 0, LIFETIME_INFINITE))
        out.extend(v6.dns)
        if ctx.dhcp_search and ctx.search:
            out.append(_dnssl(ctx))
    return b"".join(out)


def neighbour_advertisement(ctx: LinkCtx, target: bytes, mac: Optional[bytes] = None) -> bytes:
    """NA for target with `mac` (None: our MAC), checksum field zero (pasta's ndp_na())."""
    flags = NaFlag.ROUTER | NaFlag.SOLICITED | NaFlag.OVERRIDE
    return (NA_HDR.pack(NdpType.NA, 0, 0, flags, target)
            + OPT_L2_ADDR.pack(NdpOpt.TARGET_L2_ADDR, 1, mac or ctx.our_mac))


def reply(ctx: LinkCtx, icmp6_payload: bytes, src_ip: bytes, dst_ip: bytes,
          mac_for: Optional[Callable[[bytes], Optional[bytes]]] = None
          ) -> Optional[tuple[bytes, bytes, bytes]]:
    """(ICMPv6 message, IPv6 source, IPv6 destination) answering an NS or RS, or None.

    mac_for: the neighbour table's lookup (`pasta.core.neigh.NeighTable.mac_for`), giving the
    target's MAC for an NA, or None for our own; without it every NA carries our MAC.
    """
    if len(icmp6_payload) < ICMP6_HDR.size:
        raise Malformed("ndp: short ICMPv6 header")
    mtype = icmp6_payload[0]
    if mtype < NdpType.RS or mtype > NdpType.NA:
        return None                             # not NDP: not ours
    if ctx.no_ndp:
        return None
    if mtype == NdpType.NS:
        if len(icmp6_payload) < NS_HDR.size:
            raise Malformed("ndp: short NS")
        _check_options(icmp6_payload, NS_HDR.size)
        if src_ip == UNSPECIFIED6:
            return None                         # DAD probe: nobody else has that address
        target = NS_HDR.unpack_from(icmp6_payload, 0)[4]
        mac = mac_for(target) if mac_for is not None else None
        return neighbour_advertisement(ctx, target, mac), ctx.v6.our_ll, bytes(src_ip)
    if mtype == NdpType.RS:
        if len(icmp6_payload) < RS_HDR.size:
            raise Malformed("ndp: short RS")
        _check_options(icmp6_payload, RS_HDR.size)
        if ctx.no_ra:
            return None
        dst = ALL_NODES if src_ip == UNSPECIFIED6 else bytes(src_ip)
        return router_advertisement(ctx), ctx.v6.our_ll, dst
    return None                                 # RA, NA: consumed silently


def unsolicited_ra(ctx: LinkCtx) -> Optional[tuple[bytes, bytes, bytes]]:
    """(RA, our link-local, ff02::1) for the periodic advertisement, or None if RAs are off."""
    if ctx.no_ndp or ctx.no_ra:
        return None
    return router_advertisement(ctx), ctx.v6.our_ll, ALL_NODES


def first_deadline(now: float, rng) -> float:
    """When the first unsolicited RA is due: one whole interval after start, as pasta's ndp_timer
    (its first call only arms the timer). Never earlier: see "Why no RA at start" above."""
    return next_deadline(now, rng)


def next_deadline(now: float, rng) -> float:
    """When the next unsolicited RA is due: now + a whole number of seconds in [200, 600).

    rng is a `random.Random` (or anything with `randrange`); not cryptographic, as in pasta.
    """
    return now + rng.randrange(MIN_RTR_ADV_INTERVAL_S, MAX_RTR_ADV_INTERVAL_S)
