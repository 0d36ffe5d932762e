"""DHCP (IPv4) responder: one fixed lease, handed to whoever asks.

Purpose: pasta's minimal DHCP server (dhcp.c) as a pure function: a BOOTP/DHCP request from the
namespace in, the reply payload and its destination address out.

Theory of operation: the tap dispatcher checks the IPv4 and UDP headers (destination port 67, UDP
length matching) and passes the UDP payload to `reply(ctx, udp_payload)`. The result is
`(payload, dst_ip)`: the dispatcher sends it from `ctx.v4.gw`:67 to `dst_ip`:68, Ethernet
destination the guest MAC (the request's source). `dst_ip` is 255.255.255.255 when the client set
the broadcast flag, else the assigned address; for the answer to an INFORM it is the client's
ciaddr (RFC 2131 4.3.5). There is no lease table: every client gets `ctx.v4.addr`, whatever it
asked for. This module does not log (`pasta.util.log` does I/O, see test_layering); the dispatcher logs
pasta's info line for each answer: "DHCP: offer to discover", "DHCP: ack to discover (Rapid
Commit)", "DHCP: ack to request" / "BOOTP: ack to request", "DHCP: ack to inform".

States and events (one message type per request; `DhcpMsg`):
- `DhcpMsg.DISCOVER` -> `DhcpMsg.OFFER`; with the client's `DhcpOpt.RAPID_COMMIT` option ->
  `DhcpMsg.ACK` carrying an empty `DhcpOpt.RAPID_COMMIT` (RFC 4039).
- `DhcpMsg.REQUEST`, or no usable `DhcpOpt.MSG_TYPE` at all (plain BOOTP) -> `DhcpMsg.ACK`,
  always for the one assigned address (never `DhcpMsg.NAK`).
- `DhcpMsg.INFORM` (RFC 2131 3.4, 4.3.5: the client already has an address and only wants the
  other parameters) -> `DhcpMsg.ACK` with yiaddr 0.0.0.0 and without `DhcpOpt.LEASE_TIME`, sent
  unicast to the request's ciaddr (whatever address that is); an INFORM with ciaddr 0.0.0.0 is
  `Malformed`. A `DhcpOpt.RAPID_COMMIT` in it is ignored.
- `DhcpMsg.DECLINE` and `DhcpMsg.RELEASE` -> None: with no lease table there is nothing to mark
  unusable or to free, and the next request gets the same address anyway.
- A BOOTREPLY op and every other type (`DhcpMsg.OFFER`, `DhcpMsg.ACK`, `DhcpMsg.NAK`, unknown)
  -> None (ignored).

Options sent (`DhcpOpt`): `DhcpOpt.SUBNET_MASK`, `DhcpOpt.ROUTER` (the gateway),
`DhcpOpt.LEASE_TIME` 0xffffffff (infinite; left out of the answer to an INFORM),
`DhcpOpt.MSG_TYPE`, `DhcpOpt.SERVER_ID` (our address = the gateway), `DhcpOpt.MTU` unless
`-m 0`, `DhcpOpt.DNS` only with `--dhcp-dns` and IPv4 nameservers, `DhcpOpt.DOMAIN_SEARCH`
(RFC 3397, RFC 1035 4.1.4 compressed) only with `--dhcp-search` and a search list, and
`DhcpOpt.CLASSLESS_ROUTE` (RFC 3442: gateway/32 on-link plus default via the gateway) only when
the gateway is outside the assigned subnet.
With `-H NAME`, `DhcpOpt.HOSTNAME` (the name's bytes, no terminator); with `--fqdn NAME`,
`DhcpOpt.CLIENT_FQDN` (RFC 4702 2: flags `FQDN_FLAG_E` only, RCODE1 = RCODE2 = 255, then the
name in wire format by `encode_domain_name()`), if it fits in one option: up to 250 bytes of
name (3 + len + 2 <= 255), else left out. Both go in every reply, whether or not the client
asked for them or sent its own (pasta does not read the client's options 12 and 81), and like
every option they take part in the order and the 308-byte fit below.
Order: `DhcpOpt.MSG_TYPE` first unless the client's `DhcpOpt.PARAM_REQ_LIST` names it (some
clients, e.g. wattcp, want it first); then the options in the order of that list; then the rest
by number; then `DhcpOpt.END`. An option that would overflow the 308-byte options area (RFC 2131:
576-byte messages) is left out; the area is zero-padded to at least 60 bytes (RFC 951).
The header echoes htype, hlen, xid, flags, ciaddr, giaddr, chaddr and the magic cookie; op is
BOOTREPLY, hops and secs are zero, yiaddr is the assigned address (0.0.0.0 for an INFORM),
siaddr/sname/file are zero.

Request parsing: `DhcpOpt.PAD` is skipped, `DhcpOpt.END` stops a field; `DhcpOpt.OVERLOAD`
(RFC 2131 4.1) continues the options in `file` and then `sname`; repeated options are
concatenated (RFC 3396). Read are only the message type, the parameter request list and rapid
commit; `DhcpOpt.REQUESTED_ADDR`, client id, the client's `DhcpOpt.HOSTNAME` and
`DhcpOpt.CLIENT_FQDN` and maximum size are accepted and ignored.

Invariants: the reply's yiaddr is `ctx.v4.addr`, except for an INFORM, whose ACK has yiaddr
0.0.0.0, no `DhcpOpt.LEASE_TIME` and goes to the (non-zero) ciaddr; no address other than
`ctx.v4.addr` is ever handed out; the options area is 60..308 bytes and ends with `DhcpOpt.END`
followed only by zero padding.

Limits and not handled: no relay agents (giaddr is echoed, nothing is sent to it, also for an
INFORM), no lease table (so DECLINE and RELEASE change nothing), no client's maximum message
size (the reply never exceeds 576 bytes anyway), no DNS update for the client's FQDN (the
FQDN option only tells the client its name).

Errors (`Malformed`, counted by the dispatcher): fewer than 240 bytes (header and magic cookie), a
magic cookie other than 99.130.83.99, an option running past the end of its field, an invalid
overload value, an INFORM with ciaddr 0.0.0.0 (RFC 2131 4.4.1 table 5: the client must fill it
in).

Kernel assumptions: none.

Differences from passt (dhcp.c dhcp()):
- pasta ignores DHCPINFORM; here it gets the ACK of RFC 2131 4.3.5 (deliberate, issue 3), so
  a client with an address configured by other means can still learn DNS, search list and MTU.
- pasta reads options without treating PAD/END specially and with last-copy-wins; here PAD/END and
  RFC 3396 concatenation are honoured, and overloaded `file`/`sname` fields are read.
- pasta puts option 53 first only when the client sent a parameter request list without 53; here
  it is also first when there is no list at all (the reference's wording, and the safer order).
- pasta does not check the magic cookie; here a wrong cookie is `Malformed`.
- A parameter request list naming an option twice makes pasta send it twice; here once.
- pasta's search list budget (dhcp.c opt_set_dns_search) is 308 minus the lengths of the other
  options (plus one per unused option number), so a long `-H`/`--fqdn` shortens the list there;
  here the list is encoded up to 255 bytes and then fits or is left out whole, like any option.
"""

from __future__ import annotations

import enum
import struct
from typing import Optional

from pasta.util.errors import Malformed
from pasta.plan.linkctx import LinkCtx, encode_domain_name, encode_name, name_bytes

BOOTP_HDR = struct.Struct("!BBBBIHH4s4s4s4s16s64s128sI")
BOOTP_HDR_LEN = BOOTP_HDR.size            # 240, options start here
OFF_SNAME = 44
OFF_FILE = 108
LEN_SNAME = 64
LEN_FILE = 128
MAGIC_COOKIE = 0x63825363
BOOTREQUEST = 1
BOOTREPLY = 2
FLAG_BROADCAST = 0x8000
OPT_MIN = 60                              # RFC 951
OPT_MAX = 307                             # 576 - 268 (offset of options) - 1 (end option)
LEASE_INFINITE = 0xFFFFFFFF
OPT_DATA_MAX = 255                        # one option's length byte
FQDN_FLAG_E = 0x04                        # RFC 4702 2.1: canonical wire format (pasta's only flag)
FQDN_RCODE = 0xFF                         # RFC 4702 2.2: what a server puts in RCODE1 and RCODE2
BROADCAST4 = b"\xff\xff\xff\xff"
ZERO4 = b"\x00" * 4
_U32 = struct.Struct("!I")
_U16 = struct.Struct("!H")


class DhcpMsg(enum.IntEnum):
    """DHCP message types (option 53, RFC 2132 9.6)."""

    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8


class DhcpOpt(enum.IntEnum):
    """DHCP option codes read or written here (RFC 2132 unless noted)."""

    PAD = 0
    SUBNET_MASK = 1
    ROUTER = 3
    DNS = 6
    HOSTNAME = 12
    MTU = 26
    REQUESTED_ADDR = 50
    LEASE_TIME = 51
    OVERLOAD = 52
    MSG_TYPE = 53
    SERVER_ID = 54
    PARAM_REQ_LIST = 55
    RAPID_COMMIT = 80                     # RFC 4039
    CLIENT_FQDN = 81                      # RFC 4702
    DOMAIN_SEARCH = 119                   # RFC 3397
    CLASSLESS_ROUTE = 121                 # RFC 3442
    END = 255


def _parse_field(buf: bytes, off: int, end: int, opts: dict) -> None:
    """Read options from buf[off:end] into opts (code -> bytes, repeats concatenated)."""
    while off < end:
        code = buf[off]
        if code == DhcpOpt.PAD:
            off += 1
            continue
        if code == DhcpOpt.END:
            return
        if off + 2 > end:
            raise Malformed("dhcp: truncated option header")
        olen = buf[off + 1]
        if off + 2 + olen > end:
            raise Malformed("dhcp: option runs past the end")
        val = bytes(buf[off + 2:off + 2 + olen])
        opts[code] = opts[code] + val if code in opts else val
        off += 2 + olen


def parse_options(msg: bytes) -> dict:
    """All options of a BOOTP/DHCP message (after the header), honouring overload."""
    opts: dict = {}
    _parse_field(msg, BOOTP_HDR_LEN, len(msg), opts)
    overload = opts.get(DhcpOpt.OVERLOAD)
    if overload is not None:
        if len(overload) != 1 or overload[0] not in (1, 2, 3):
            raise Malformed("dhcp: bad overload option")
        if overload[0] & 1:
            _parse_field(msg, OFF_FILE, OFF_FILE + LEN_FILE, opts)
        if overload[0] & 2:
            _parse_field(msg, OFF_SNAME, OFF_SNAME + LEN_SNAME, opts)
    return opts


def encode_search(domains, limit: int = 255) -> bytes:
    """Domain search list in RFC 1035 4.1.4 compressed form (option 119 data, at most limit)."""
    out = bytearray()
    suffixes: dict = {}                   # tuple of labels -> offset in out
    for name in domains:
        wire = encode_name(name)
        if wire is None:
            continue
        labels = []
        i = 0
        while wire[i]:
            labels.append(wire[i + 1:i + 1 + wire[i]].lower())
            i += 1 + wire[i]
        enc = bytearray()
        new = {}
        for k in range(len(labels)):
            suffix = tuple(labels[k:])
            if suffix in suffixes:
                enc += _U16.pack(0xC000 | suffixes[suffix])
                break
            new[suffix] = len(out) + len(enc)
            lab = _wire_label(wire, k)
            enc += bytes((len(lab),)) + lab
        else:
            enc.append(0)
        if len(out) + len(enc) > limit:
            break
        out += enc
        suffixes.update(new)
    return bytes(out)


def _wire_label(wire: bytes, index: int) -> bytes:
    """Label number `index` of an uncompressed wire-form name, original case."""
    i = 0
    for _ in range(index):
        i += 1 + wire[i]
    return wire[i + 1:i + 1 + wire[i]]


def _server_options(ctx: LinkCtx, msg_type: int, rapid: bool, lease: bool = True) -> dict:
    """Option code -> data pasta would send for this request (lease=False: no lease time)."""
    v4 = ctx.v4
    prefix = v4.prefix_len
    mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF if prefix else 0
    opts = {
        DhcpOpt.SUBNET_MASK: _U32.pack(mask),
        DhcpOpt.ROUTER: v4.gw,
        DhcpOpt.MSG_TYPE: bytes((msg_type,)),
        DhcpOpt.SERVER_ID: v4.gw,
    }
    if lease:
        opts[DhcpOpt.LEASE_TIME] = _U32.pack(LEASE_INFINITE)
    if rapid:
        opts[DhcpOpt.RAPID_COMMIT] = b""
    if ctx.mtu:
        opts[DhcpOpt.MTU] = _U16.pack(ctx.mtu)
    if ctx.dhcp_dns and v4.dns:
        opts[DhcpOpt.DNS] = b"".join(v4.dns)
    if ctx.dhcp_search and ctx.search:
        search = encode_search(ctx.search)
        if search:
            opts[DhcpOpt.DOMAIN_SEARCH] = search
    opts.update(name_options(ctx))
    addr_i = _U32.unpack(v4.addr)[0]
    gw_i = _U32.unpack(v4.gw)[0]
    if addr_i & mask != gw_i & mask:
        # RFC 3442: gw/32 on-link (router 0.0.0.0), then 0/0 via gw
        opts[DhcpOpt.CLASSLESS_ROUTE] = bytes((32,)) + v4.gw + ZERO4 + b"\x00" + v4.gw
    return opts


def name_options(ctx: LinkCtx) -> dict:
    """`DhcpOpt.HOSTNAME` and `DhcpOpt.CLIENT_FQDN` data for -H / --fqdn (dhcp.c dhcp())."""
    opts = {}
    if ctx.hostname:
        name = name_bytes(ctx.hostname)
        if len(name) <= OPT_DATA_MAX:            # conf.c allows 253: always true from the CLI
            opts[DhcpOpt.HOSTNAME] = name
    if ctx.fqdn:
        name = name_bytes(ctx.fqdn)
        # flags, RCODE1, RCODE2 + the encoded name (length byte first, terminator last)
        if 3 + len(name) + 2 <= OPT_DATA_MAX:
            opts[DhcpOpt.CLIENT_FQDN] = (bytes((FQDN_FLAG_E, FQDN_RCODE, FQDN_RCODE))
                                         + encode_domain_name(name))
    return opts


def _fill(server: dict, prl: Optional[bytes]) -> bytes:
    """Options area in pasta's order, END-terminated and padded to OPT_MIN."""
    order = []
    if prl is None or DhcpOpt.MSG_TYPE not in prl:
        order.append(DhcpOpt.MSG_TYPE)
    for code in prl or b"":
        if code in server and code not in order:
            order.append(code)
    order += sorted(c for c in server if c not in order)
    out = bytearray()
    for code in order:
        data = server[code]
        if len(out) + 2 + len(data) > OPT_MAX:
            continue                      # does not fit: pasta skips it
        out += bytes((code, len(data))) + data
    out.append(DhcpOpt.END)
    if len(out) < OPT_MIN:
        out += bytes(OPT_MIN - len(out))
    return bytes(out)


def reply(ctx: LinkCtx, udp_payload: bytes) -> Optional[tuple[bytes, bytes]]:
    """(reply payload, destination IPv4 address) for a request, or None if ignored."""
    if ctx.no_dhcp:
        return None
    if len(udp_payload) < BOOTP_HDR_LEN:
        raise Malformed("dhcp: short message")
    (op, htype, hlen, _hops, xid, _secs, flags, ciaddr, _yiaddr, _siaddr, giaddr, chaddr,
     _sname, _file, magic) = BOOTP_HDR.unpack_from(udp_payload, 0)
    if magic != MAGIC_COOKIE:
        raise Malformed("dhcp: bad magic cookie")
    if op != BOOTREQUEST:
        return None
    opts = parse_options(udp_payload)

    mtype = opts.get(DhcpOpt.MSG_TYPE)
    rapid = False
    inform = False
    if mtype and mtype[0] == DhcpMsg.DISCOVER:
        if DhcpOpt.RAPID_COMMIT in opts:
            out_type, rapid = DhcpMsg.ACK, True
        else:
            out_type = DhcpMsg.OFFER
    elif not mtype or mtype[0] == DhcpMsg.REQUEST:
        out_type = DhcpMsg.ACK            # DHCPREQUEST, or BOOTP without a message type
    elif mtype[0] == DhcpMsg.INFORM:
        # RFC 2131 4.4.1 table 5: an INFORM carries ciaddr; 4.3.5: the ACK goes there
        if ciaddr == ZERO4:
            raise Malformed("dhcp: inform without ciaddr")
        out_type, inform = DhcpMsg.ACK, True
    elif mtype[0] in (DhcpMsg.DECLINE, DhcpMsg.RELEASE):
        return None                       # no lease table: nothing to mark or free
    else:
        return None

    # RFC 2131 4.3.5: no yiaddr and no lease time in the answer to an INFORM
    yiaddr = ZERO4 if inform else ctx.v4.addr
    hdr = BOOTP_HDR.pack(BOOTREPLY, htype, hlen, 0, xid, 0, flags, ciaddr, yiaddr, ZERO4,
                         giaddr, chaddr, bytes(LEN_SNAME), bytes(LEN_FILE), MAGIC_COOKIE)
    body = _fill(_server_options(ctx, out_type, rapid, lease=not inform),
                 opts.get(DhcpOpt.PARAM_REQ_LIST))
    if inform:
        dst = bytes(ciaddr)
    else:
        dst = BROADCAST4 if flags & FLAG_BROADCAST else ctx.v4.addr
    return hdr + body, dst
