"""ARP responder: every IPv4 address on the link resolves to pasta's MAC.

Purpose: answer the namespace's ARP requests the way pasta's arp.c does, as a pure function.

Theory of operation: the tap dispatcher hands `reply(ctx, arp_payload)` the ARP packet (the bytes
after the Ethernet header; trailing Ethernet padding is allowed). It gets back the 28-byte ARP
reply to wrap in an Ethernet header (destination: the requester's MAC, which is also the reply's
target hardware address; source: `ctx.our_mac`), or None when pasta stays silent. No state is
kept and pasta never sends ARP requests of its own.

States and events: `ArpOp.REQUEST` is answered, `ArpOp.REPLY` (and any other operation) is
ignored; the two exclude each other on a packet.

Rules (pasta-reference.md 11.1):
- Only Ethernet/IPv4 requests (htype 1, ptype 0x0800, hlen 6, plen 4, op REQUEST) are answered.
- Ignored: gratuitous announcements (sender IP == target IP, sender IP not 0.0.0.0) and requests
  for the namespace's own assigned IPv4 address. Probes from 0.0.0.0 are answered.
- The reply: op REPLY, sender = (our MAC, requested target IP), target = (requester's MAC and IP).
  pasta 2026 mirrors the host's neighbours (`pasta.core.neigh`): when the caller passes the
  neighbour table's `mac_for`, the sender MAC is the target's real MAC, or the gateway's, when
  the table knows it (arp.c arp() through fwd_neigh_mac_get()); the Ethernet source stays
  `ctx.our_mac`, as in pasta.

Invariants: a reply is exactly `ARP_LEN` (28) bytes; its sender hardware address is
`ctx.our_mac` unless `mac_for` gives another.

Limits and not handled: no ARP table of the namespace's side, no RARP/InARP, no requests sent
here (the gratuitous announcements are built by `pasta.core.neigh`). Nothing is answered
when IPv4 is disabled for the namespace.

Errors: fewer than 28 bytes raises `Malformed` (the dispatcher counts it); well-formed packets that
are not Ethernet/IPv4 requests return None.

Kernel assumptions: none.

Differences from passt: none known. Not determined from the reference: whether arp.c answers when
IPv4 is disabled (`-6`); here nothing is answered then, since no IPv4 traffic is translated.
"""

from __future__ import annotations

import enum
import struct
from typing import Callable, Optional

from pasta.util.errors import Malformed
from pasta.plan.linkctx import LinkCtx

ARP_HDR = struct.Struct("!HHBBH6s4s6s4s")
ARP_LEN = ARP_HDR.size          # 28
ARPHRD_ETHER = 1
ETH_P_IP = 0x0800
ZERO4 = b"\x00" * 4


class ArpOp(enum.IntEnum):
    """ARP operation codes (RFC 826)."""

    REQUEST = 1
    REPLY = 2


def reply(ctx: LinkCtx, arp_payload: bytes,
          mac_for: Optional[Callable[[bytes], Optional[bytes]]] = None) -> Optional[bytes]:
    """The ARP reply for a request from the namespace, or None if pasta would not answer.

    mac_for: the neighbour table's lookup (`pasta.core.neigh.NeighTable.mac_for`): the MAC to
    give for the requested address, or None for our own.
    """
    if len(arp_payload) < ARP_LEN:
        raise Malformed("arp: short packet")
    htype, ptype, hlen, plen, op, sha, spa, _tha, tpa = ARP_HDR.unpack_from(arp_payload, 0)
    if (htype != ARPHRD_ETHER or ptype != ETH_P_IP or hlen != 6 or plen != 4
            or op != ArpOp.REQUEST):
        return None
    if not ctx.v4.enabled:
        return None
    if spa == tpa and spa != ZERO4:          # gratuitous announcement
        return None
    if tpa == ctx.v4.addr:                   # the namespace's own address: let it keep it
        return None
    mac = mac_for(tpa) if mac_for is not None else None
    return ARP_HDR.pack(ARPHRD_ETHER, ETH_P_IP, 6, 4, ArpOp.REPLY, mac or ctx.our_mac, tpa, sha,
                        spa)
