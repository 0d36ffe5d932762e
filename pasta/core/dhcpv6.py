"""DHCPv6 responder: the one assigned IPv6 address, stateless, with infinite lifetimes.

Purpose: pasta's minimal DHCPv6 server (dhcpv6.c) as a pure function: a client message from the
namespace in, the reply payload and its destination out.

Theory of operation: the tap dispatcher checks the IPv6 and UDP headers (destination port 547,
UDP length matching) and passes the UDP payload and the IPv6 source (and, optionally, destination)
to `reply(ctx, udp_payload, src_ip, dst_ip)`. The result is `(payload, dst)`: the dispatcher sends
it from `ctx.v6.our_ll`:547 to `dst`:546, where `dst` is the client's (link-local) source
address, as pasta's `addr_ll_seen`. After a reply pasta also sets `addr_seen` to the assigned
address; that bookkeeping belongs to the caller. There is no lease table.

States and events (`Dhcp6Msg`, one per message; the server identifier is our DUID-LLT):
- `Dhcp6Msg.SOLICIT` without a server id -> `Dhcp6Msg.ADVERTISE`; with a `Dhcp6Opt.RAPID_COMMIT`
  option (any length, its data is ignored) -> `Dhcp6Msg.REPLY` with the same options plus an
  empty `Dhcp6Opt.RAPID_COMMIT` (RFC 8415 18.2.1, 18.3.1, 21.14): with no lease table the
  assignment is already committed. `Dhcp6Opt.RAPID_COMMIT` in any other message is ignored.
- `Dhcp6Msg.REQUEST` and `Dhcp6Msg.RENEW` with our server id, `Dhcp6Msg.CONFIRM` without any
  -> `Dhcp6Msg.REPLY`; if an address inside a `Dhcp6Opt.IA_NA` or `Dhcp6Opt.IA_TA` is not the
  assigned one, the `Dhcp6Msg.REPLY` instead carries that IA with only a `Dhcp6Opt.STATUS_CODE`
  `Dhcp6Status.NOTONLINK` "Prefix not appropriate for link." (RFC 8415 18.3.2/18.3.3).
- `Dhcp6Msg.REBIND` with our server id -> `Dhcp6Msg.REPLY` (pasta requires the server id).
- `Dhcp6Msg.INFORMATION_REQUEST` without IA options, server id absent or ours ->
  `Dhcp6Msg.REPLY` without IA.
- `Dhcp6Msg.RELEASE`, `Dhcp6Msg.DECLINE`, any other type, a message without
  `Dhcp6Opt.CLIENTID`, a wrong or unexpected `Dhcp6Opt.SERVERID`, or a unicast destination -> None.

Reply options, in this order: `Dhcp6Opt.SERVERID` (DUID-LLT: hardware type Ethernet, time =
`ctx.duid_time`, our MAC); `Dhcp6Opt.IA_NA` (IAID of the client's first IA_NA, else 1; T1 = T2 =
0xffffffff) holding one `Dhcp6Opt.IAADDR` (assigned address, preferred = valid = 0xffffffff);
`Dhcp6Opt.CLIENTID` echoed; `Dhcp6Opt.RAPID_COMMIT` (empty) only in the rapid-commit
`Dhcp6Msg.REPLY` to a SOLICIT; `Dhcp6Opt.DNS_SERVERS` with `--dhcp-dns` and IPv6 nameservers;
`Dhcp6Opt.DOMAIN_LIST` (uncompressed names, root-only entries skipped) with `--dhcp-search`;
`Dhcp6Opt.CLIENT_FQDN` last, with `--fqdn NAME` (dhcpv6.c dhcpv6_client_fqdn_fill()).

Client FQDN (RFC 4704 4): sent in every ADVERTISE and REPLY above (not in a NotOnLink REPLY),
whether or not the client asked for it. Data: one flags byte, then the name in wire format by
`encode_domain_name()` (len + 2 bytes). Flags are 0 (S clear: the server does not update the
AAAA record), or `FQDN_FLAG_O` when the client's own `Dhcp6Opt.CLIENT_FQDN` (the first one at
the top level) has `FQDN_FLAG_S` set: the server overrides the client's wish. The option is left
out when it does not fit pasta's budget: `len + 2 > OPT_MAX_SIZE - (reply length so far + 4 + 1)`,
with `OPT_MAX_SIZE` 1228 = 1280 (IPv6 minimum MTU) - 40 (IPv6) - 8 (UDP) - 4 (message header).

Invariants: the destination is always the request's source; every reply starts with our server id
and carries the client id unchanged; addresses offered are only `ctx.v6.addr`; a
`Dhcp6Opt.RAPID_COMMIT` is sent only in a `Dhcp6Msg.REPLY` to a SOLICIT that carried one, and
such a REPLY always holds the IA_NA with the assigned address.

Limits and not handled: no relay messages, no IA_PD, no reconfigure, no authentication, no
DNS update for the FQDN, no size check against the 1280-byte minimum MTU except pasta's for
the FQDN option.

Errors (`Malformed`): fewer than 4 bytes, an option running past the end of the message or of its
IA, a client DUID longer than 128 bytes (RFC 8415 11.1), an IA_NA shorter than 12 or IA_TA shorter
than 4 bytes, an IA address option shorter than 24 bytes.

Kernel assumptions: none.

This module does not log (`pasta.util.log` does I/O, see test_layering); the dispatcher does.

Differences from passt (dhcpv6.c dhcpv6()):
- pasta has no Rapid Commit and answers every SOLICIT with an ADVERTISE; here a SOLICIT with
  `Dhcp6Opt.RAPID_COMMIT` gets the committed REPLY at once (deliberate, issue 3), saving the
  client a REQUEST/REPLY round trip.
- pasta stops looking for options at a truncated one and carries on; here that is `Malformed`.
- pasta's INFORMATION-REQUEST reply also contains the IA_NA left over from the previous reply (its
  reply buffer is static); here it has none (RFC 8415 18.3.6).
- For an IA_TA not on link pasta copies 16 bytes as if it were an IA_NA; here the IA_TA is returned
  with its own layout (IAID only).
- pasta's IAID for a message without IA_NA is whatever the last client sent (static buffer, 1 at
  start); here it is always 1.
- pasta only inspects IA addresses of exactly 24 bytes; here longer ones (with sub-options) count.
- dhcpv6_client_fqdn_fill() reads the client's FQDN flags through IOV_PEEK_HEADER() of a whole
  `struct opt_client_fqdn` (4 + 1 + 254 bytes): when fewer than 259 bytes of the message are
  left from the start of the client's option (the usual case), the peek fails and pasta answers
  with flags 0 even if S was set. Here the S flag is read whenever the option has a flags byte,
  as the code intends (and RFC 4704 4.2 asks: O set when the server overrides S). A client
  option with no data at all counts as S clear (pasta would read the byte after it).
"""

from __future__ import annotations

import enum
import struct
from typing import Optional

from pasta.util.errors import Malformed
from pasta.plan.linkctx import LinkCtx, encode_domain_name, encode_name, name_bytes

MSG_HDR = struct.Struct("!I")                   # type (8 bits), transaction id (24 bits)
OPT_HDR = struct.Struct("!HH")
IA_NA_BODY = struct.Struct("!III")              # IAID, T1, T2
IA_TA_BODY = struct.Struct("!I")                # IAID
IAADDR_BODY = struct.Struct("!16sII")           # address, preferred, valid
DUID_LLT = struct.Struct("!HHI6s")              # type, hardware type, time, link-layer address
STATUS_HDR = struct.Struct("!H")

DUID_TYPE_LLT = 1
ARPHRD_ETHER = 1
DUID_MAX = 128
LIFETIME_INFINITE = 0xFFFFFFFF
IAID_DEFAULT = 1
STR_NOTONLINK = b"Prefix not appropriate for link."
IPV6_MIN_MTU = 1280
OPT_MAX_SIZE = IPV6_MIN_MTU - (40 + 8 + MSG_HDR.size)  # dhcpv6.c: IPv6, UDP, message header
FQDN_FLAG_S = 0x01                              # RFC 4704 4.1: client asks for AAAA updates
FQDN_FLAG_O = 0x02                              # server overrides the client's S


class Dhcp6Msg(enum.IntEnum):
    """DHCPv6 message types (RFC 8415 7.3)."""

    SOLICIT = 1
    ADVERTISE = 2
    REQUEST = 3
    CONFIRM = 4
    RENEW = 5
    REBIND = 6
    REPLY = 7
    RELEASE = 8
    DECLINE = 9
    INFORMATION_REQUEST = 11


class Dhcp6Opt(enum.IntEnum):
    """DHCPv6 option codes read or written here (RFC 8415 21, RFC 3646)."""

    CLIENTID = 1
    SERVERID = 2
    IA_NA = 3
    IA_TA = 4
    IAADDR = 5
    STATUS_CODE = 13
    RAPID_COMMIT = 14
    DNS_SERVERS = 23
    DOMAIN_LIST = 24
    CLIENT_FQDN = 39                            # RFC 4704


class Dhcp6Status(enum.IntEnum):
    """Status codes sent (RFC 8415 21.13)."""

    NOTONLINK = 4


def parse_options(buf: bytes, off: int, end: int) -> list[tuple[int, int, int]]:
    """(code, data start, data end) of each option in buf[off:end]; Malformed if truncated."""
    out = []
    while off < end:
        if off + OPT_HDR.size > end:
            raise Malformed("dhcpv6: truncated option header")
        code, olen = OPT_HDR.unpack_from(buf, off)
        start = off + OPT_HDR.size
        if start + olen > end:
            raise Malformed("dhcpv6: option runs past the end")
        out.append((code, start, start + olen))
        off = start + olen
    return out


def server_duid(ctx: LinkCtx) -> bytes:
    """Our DUID-LLT (RFC 8415 11.2): Ethernet, start-up time since 2000, our MAC."""
    return DUID_LLT.pack(DUID_TYPE_LLT, ARPHRD_ETHER, ctx.duid_time & 0xFFFFFFFF, ctx.our_mac)


def _opt(code: int, data: bytes) -> bytes:
    return OPT_HDR.pack(code, len(data)) + data


def _ia_addresses(buf: bytes, code: int, start: int, end: int) -> list[bytes]:
    """Addresses in the IA option buf[start:end]; checks the IA's framing."""
    fixed = IA_NA_BODY.size if code == Dhcp6Opt.IA_NA else IA_TA_BODY.size
    if end - start < fixed:
        raise Malformed("dhcpv6: short IA option")
    addrs = []
    for sub, s, e in parse_options(buf, start + fixed, end):
        if sub == Dhcp6Opt.IAADDR:
            if e - s < IAADDR_BODY.size:
                raise Malformed("dhcpv6: short IA address option")
            addrs.append(bytes(buf[s:s + 16]))
    return addrs


def _dns_options(ctx: LinkCtx) -> bytes:
    out = b""
    if ctx.dhcp_dns and ctx.v6.dns:
        out += _opt(Dhcp6Opt.DNS_SERVERS, b"".join(ctx.v6.dns))
    if ctx.dhcp_search and ctx.search:
        names = b"".join(w for w in (encode_name(n) for n in ctx.search) if w is not None)
        if names:
            out += _opt(Dhcp6Opt.DOMAIN_LIST, names)
    return out


def reply(ctx: LinkCtx, udp_payload: bytes, src_ip: bytes,
          dst_ip: Optional[bytes] = None) -> Optional[tuple[bytes, bytes]]:
    """(reply payload, IPv6 destination = the client's source) for a client message, or None."""
    if ctx.no_dhcpv6:
        return None
    if dst_ip is not None and dst_ip[0] != 0xFF:
        return None                             # pasta only serves multicast requests
    if len(udp_payload) < MSG_HDR.size:
        raise Malformed("dhcpv6: short message")
    word = MSG_HDR.unpack_from(udp_payload, 0)[0]
    mtype, xid = word >> 24, word & 0xFFFFFF
    opts = parse_options(udp_payload, MSG_HDR.size, len(udp_payload))

    client_id = server_id = ia_na = client_fqdn = None
    rapid = False
    ias = []
    for code, s, e in opts:
        if code == Dhcp6Opt.CLIENTID and client_id is None:
            if e - s > DUID_MAX:
                raise Malformed("dhcpv6: client DUID too long")
            client_id = bytes(udp_payload[s - OPT_HDR.size:e])
        elif code == Dhcp6Opt.SERVERID and server_id is None:
            server_id = bytes(udp_payload[s:e])
        elif code in (Dhcp6Opt.IA_NA, Dhcp6Opt.IA_TA):
            ias.append((code, s, e, _ia_addresses(udp_payload, code, s, e)))
            if code == Dhcp6Opt.IA_NA and ia_na is None:
                ia_na = (s, e)
        elif code == Dhcp6Opt.RAPID_COMMIT:
            rapid = True
        elif code == Dhcp6Opt.CLIENT_FQDN and client_fqdn is None:
            client_fqdn = bytes(udp_payload[s:e])
    if client_id is None:
        return None
    ours = server_duid(ctx)

    out_type = Dhcp6Msg.REPLY
    with_ia = True
    if mtype in (Dhcp6Msg.REQUEST, Dhcp6Msg.RENEW, Dhcp6Msg.CONFIRM):
        if mtype == Dhcp6Msg.CONFIRM:
            if server_id is not None:
                return None
        elif server_id != ours:
            return None
        # pasta checks every IA_NA first, then every IA_TA
        for kind in (Dhcp6Opt.IA_NA, Dhcp6Opt.IA_TA):
            for code, s, e, addrs in ias:
                if code == kind and any(a != ctx.v6.addr for a in addrs):
                    return _not_on_link(ours, xid, udp_payload, code, s, client_id), bytes(src_ip)
    elif mtype == Dhcp6Msg.REBIND:
        if server_id != ours:
            return None
    elif mtype == Dhcp6Msg.INFORMATION_REQUEST:
        if server_id is not None and server_id != ours:
            return None
        if ias:
            return None
        with_ia = False
    elif mtype == Dhcp6Msg.SOLICIT:
        if server_id is not None:
            return None
        # RFC 8415 18.3.1: with Rapid Commit the server commits at once and sends a REPLY
        out_type = Dhcp6Msg.REPLY if rapid else Dhcp6Msg.ADVERTISE
    else:
        return None

    parts = [MSG_HDR.pack(out_type << 24 | xid), _opt(Dhcp6Opt.SERVERID, ours)]
    if with_ia:
        iaid = IA_NA_BODY.unpack_from(udp_payload, ia_na[0])[0] if ia_na else IAID_DEFAULT
        iaaddr = _opt(Dhcp6Opt.IAADDR, IAADDR_BODY.pack(ctx.v6.addr, LIFETIME_INFINITE,
                                                        LIFETIME_INFINITE))
        parts.append(_opt(Dhcp6Opt.IA_NA, IA_NA_BODY.pack(iaid, LIFETIME_INFINITE,
                                                          LIFETIME_INFINITE) + iaaddr))
    parts.append(client_id)
    if mtype == Dhcp6Msg.SOLICIT and rapid:
        parts.append(_opt(Dhcp6Opt.RAPID_COMMIT, b""))     # RFC 8415 21.14: empty
    parts.append(_dns_options(ctx))
    out = b"".join(parts)
    return out + client_fqdn_option(ctx, client_fqdn, len(out)), bytes(src_ip)


def client_fqdn_option(ctx: LinkCtx, client_fqdn: Optional[bytes], offset: int) -> bytes:
    """`Dhcp6Opt.CLIENT_FQDN` for --fqdn (module docstring), or b"" (no name, or no room).

    client_fqdn: the data of the client's option 39, or None; offset: reply length so far.
    """
    if not ctx.fqdn:
        return b""
    name = name_bytes(ctx.fqdn)
    if len(name) + 2 > OPT_MAX_SIZE - (offset + OPT_HDR.size + 1):
        return b""                              # pasta: "client FQDN option doesn't fit"
    flags = FQDN_FLAG_O if client_fqdn and client_fqdn[0] & FQDN_FLAG_S else 0
    return _opt(Dhcp6Opt.CLIENT_FQDN, bytes((flags,)) + encode_domain_name(name))


def _not_on_link(ours: bytes, xid: int, buf: bytes, code: int, start: int,
                 client_id: bytes) -> bytes:
    """REPLY returning the client's IA with only a NotOnLink status inside."""
    fixed = IA_NA_BODY.size if code == Dhcp6Opt.IA_NA else IA_TA_BODY.size
    status = _opt(Dhcp6Opt.STATUS_CODE, STATUS_HDR.pack(Dhcp6Status.NOTONLINK) + STR_NOTONLINK)
    ia = _opt(code, bytes(buf[start:start + fixed]) + status)
    return (MSG_HDR.pack(Dhcp6Msg.REPLY << 24 | xid) + _opt(Dhcp6Opt.SERVERID, ours) + ia
            + client_id)
