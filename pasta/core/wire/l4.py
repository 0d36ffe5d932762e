"""Transport-layer codecs: TCP header and options, UDP, ICMP and ICMPv6.

Purpose: read the TCP, UDP and ICMP headers of frames from the tap, and write them for frames
pypasta sends. The payload is never copied: parsers return offsets into the caller's buffer.

Theory of operation: after `pasta.core.wire.parse_frame()` has found `proto`, `l4_off` and `end`,
the dispatcher calls `parse_tcp(buf, l4_off, end)`, `parse_udp(...)`, `parse_icmp(...)` (IPv4)
or `parse_icmp6(...)` (the generic type/code for NDP dispatch) and `parse_icmp6_echo(...)`.
`pack_tcp_into()` writes a TCP header with the only options pasta ever sends (MSS, NOP, window
scale, on SYN and SYN,ACK segments); checksums are filled afterwards with `pasta.core.wire.csum` and
the pseudo-header sums of `pasta.core.wire.ip`.

TCP options (RFC 9293 section 3.2, RFC 7323, RFC 2018): `parse_tcp_opts()` walks the option area:
EOL (0) ends it, NOP (1) is one byte, every other kind has a length byte >= 2 that must fit in the
area. MSS (2, length 4), window scale (3, length 3) and SACK-permitted (4, length 2) are returned;
timestamps (8, length 10) and SACK blocks (5, length 2 + 8n) are checked and skipped; unknown kinds
are skipped by their length. `parse_tcp()` walks options only on segments with SYN set (MSS, window
scale and SACK-permitted mean nothing elsewhere) unless told otherwise with `opts=`.

States and events: none (stateless codecs).

Invariants:
- On success `off + 20 <= payload_off <= end` (TCP), `off + 8 <= payload_off <= end` (UDP, with
  `end` trimmed to the UDP length), and `data_off`/`body_off` likewise for ICMP.
- Only `Malformed` escapes a `parse_*` function; reasons: "short tcp header", "bad tcp data
  offset", "bad tcp option length", "short udp header", "bad udp length", "short icmp header",
  "short icmpv6 header".
- Absent options are `None` (mss, wscale) or False (sack_ok); the window scale is reported raw
  (values above 14 are the TCP core's to clamp, RFC 7323 section 2.3).

Limits and not handled:
- Options other than MSS, window scale and SACK-permitted are never interpreted (timestamps are
  neither echoed nor sent, as in pasta); SACK blocks are ignored.
- A UDP length of 0 (IPv6 jumbograms, RFC 2675) is malformed. UDP GSO is not negotiated with the
  tap (no TUN_F_USO4/6), so one UDP header always covers one datagram.
- Checksums of incoming segments are not verified (the peer is the local kernel, and with
  NEEDS_CSUM they are only partial anyway).

Kernel assumptions: none beyond those of `pasta.core.wire.l2` (GSO TCP frames carry one TCP header
for the whole super-segment, so `payload_off..end` may exceed the MSS).

Differences from passt:
- `tcp.c tcp_opt_get()` rescans the options once per kind and treats a bad length as "option
  absent"; we scan once and report `Malformed("bad tcp option length")`, also for known kinds with
  the wrong fixed length (passt would read an MSS of any length as a number).
- `tcp.c tcp_fill_headers()` and the SYN option template `tcp_syn_opts` write MSS, NOP, window
  scale; `pack_tcp_into()` writes the same layout.
- `icmp.c icmp_tap_handler()` and `ndp.c ndp()` read type/code directly; here that is
  `parse_icmp()`, `parse_icmp6()` and `parse_icmp6_echo()`.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from pasta.util.errors import Malformed

# --- TCP --------------------------------------------------------------------------------------

TCP_HLEN = 20
TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_PSH = 0x08
TCP_ACK = 0x10
TCP_URG = 0x20
TCP_ECE = 0x40
TCP_CWR = 0x80

TCPOPT_EOL = 0
TCPOPT_NOP = 1
TCPOPT_MSS = 2
TCPOPT_WINDOW = 3
TCPOPT_SACK_PERM = 4
TCPOPT_SACK = 5
TCPOPT_TIMESTAMP = 8
TCPOLEN_MSS = 4
TCPOLEN_WINDOW = 3
TCPOLEN_SACK_PERM = 2
TCPOLEN_TIMESTAMP = 10

TCP = struct.Struct("!HHIIBBHHH")
_OPT_MSS = struct.Struct("!BBH")
_OPT_NOP_WS = struct.Struct("!BBBB")
_U16 = struct.Struct("!H")


class TcpOpts(NamedTuple):
    mss: int | None
    wscale: int | None
    sack_ok: bool


class TcpHdr(NamedTuple):
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int                      # TCP_FIN..TCP_CWR (the AE/NS bit is dropped)
    window: int                     # unscaled, as on the wire
    csum: int
    urg: int
    hdr_len: int                    # data offset * 4
    payload_off: int
    end: int                        # end of the segment (the IP packet's end)
    mss: int | None
    wscale: int | None
    sack_ok: bool


_NO_OPTS = TcpOpts(None, None, False)


def parse_tcp_opts(buf, off: int, opt_end: int) -> TcpOpts:
    """Walk the TCP option area buf[off:opt_end]; returns MSS, window scale and SACK-permitted."""
    mss = wscale = None
    sack_ok = False
    try:
        while off < opt_end:
            kind = buf[off]
            if kind == TCPOPT_EOL:
                break
            if kind == TCPOPT_NOP:
                off += 1
                continue
            if opt_end - off < 2:
                raise Malformed("bad tcp option length")
            olen = buf[off + 1]
            if olen < 2 or olen > opt_end - off:
                raise Malformed("bad tcp option length")
            if kind == TCPOPT_MSS:
                if olen != TCPOLEN_MSS:
                    raise Malformed("bad tcp option length")
                mss = _U16.unpack_from(buf, off + 2)[0]
            elif kind == TCPOPT_WINDOW:
                if olen != TCPOLEN_WINDOW:
                    raise Malformed("bad tcp option length")
                wscale = buf[off + 2]
            elif kind == TCPOPT_SACK_PERM:
                if olen != TCPOLEN_SACK_PERM:
                    raise Malformed("bad tcp option length")
                sack_ok = True
            elif kind == TCPOPT_TIMESTAMP:
                if olen != TCPOLEN_TIMESTAMP:
                    raise Malformed("bad tcp option length")
            elif kind == TCPOPT_SACK:
                if (olen - 2) & 7:
                    raise Malformed("bad tcp option length")
            off += olen
    except (struct.error, IndexError, TypeError, ValueError):
        raise Malformed("bad tcp option length") from None
    return TcpOpts(mss, wscale, sack_ok)


def parse_tcp(buf, off: int, end: int | None = None, opts: bool | None = None) -> TcpHdr:
    """Parse a TCP header at `off`; options are walked if `opts`, or if None when SYN is set."""
    if end is None or end > len(buf):
        end = len(buf)
    if end - off < TCP_HLEN:
        raise Malformed("short tcp header")
    try:
        sport, dport, seq, ack, doff, flags, window, tcsum, urg = TCP.unpack_from(buf, off)
    except (struct.error, TypeError, ValueError):
        raise Malformed("short tcp header") from None
    hlen = (doff >> 4) << 2
    if hlen < TCP_HLEN or hlen > end - off:
        raise Malformed("bad tcp data offset")
    if opts is None:
        opts = flags & TCP_SYN
    if opts and hlen > TCP_HLEN:
        mss, wscale, sack_ok = parse_tcp_opts(buf, off + TCP_HLEN, off + hlen)
    else:
        mss, wscale, sack_ok = _NO_OPTS
    return TcpHdr(sport, dport, seq, ack, flags, window, tcsum, urg, hlen, off + hlen, end,
                  mss, wscale, sack_ok)


def pack_tcp_into(buf, off: int, sport: int, dport: int, seq: int, ack: int, flags: int,
                  window: int, mss: int | None = None, wscale: int | None = None,
                  csum: int = 0, urg: int = 0) -> int:
    """Write a TCP header at `off`, with options MSS and NOP+window scale when given.

    Returns the payload offset. seq and ack are taken modulo 2**32; the checksum is `csum`
    (fill it later with `pasta.core.wire.csum`).
    """
    hlen = TCP_HLEN + (4 if mss is not None else 0) + (4 if wscale is not None else 0)
    TCP.pack_into(buf, off, sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, hlen << 2, flags,
                  window, csum, urg)
    p = off + TCP_HLEN
    if mss is not None:
        _OPT_MSS.pack_into(buf, p, TCPOPT_MSS, TCPOLEN_MSS, mss)
        p += 4
    if wscale is not None:
        _OPT_NOP_WS.pack_into(buf, p, TCPOPT_NOP, TCPOPT_WINDOW, TCPOLEN_WINDOW, wscale)
        p += 4
    return p


# --- UDP --------------------------------------------------------------------------------------

UDP_HLEN = 8
UDP = struct.Struct("!HHHH")


class UdpHdr(NamedTuple):
    sport: int
    dport: int
    length: int                     # UDP length field (header included)
    csum: int
    payload_off: int
    end: int                        # off + length (trailing bytes of the IP payload dropped)


def parse_udp(buf, off: int, end: int | None = None) -> UdpHdr:
    """Parse a UDP header at `off`; the datagram must fit before `end` and is trimmed to length."""
    if end is None or end > len(buf):
        end = len(buf)
    if end - off < UDP_HLEN:
        raise Malformed("short udp header")
    try:
        sport, dport, length, ucsum = UDP.unpack_from(buf, off)
    except (struct.error, TypeError, ValueError):
        raise Malformed("short udp header") from None
    if length < UDP_HLEN or length > end - off:
        raise Malformed("bad udp length")
    return UdpHdr(sport, dport, length, ucsum, off + UDP_HLEN, off + length)


def pack_udp_into(buf, off: int, sport: int, dport: int, length: int, csum: int = 0) -> int:
    """Write a UDP header at `off` (`length` includes the header); returns the payload offset."""
    UDP.pack_into(buf, off, sport, dport, length, csum)
    return off + UDP_HLEN


# --- ICMP and ICMPv6 --------------------------------------------------------------------------

ICMP_ECHOREPLY = 0
ICMP_ECHO = 8
ICMPV6_ECHO_REQUEST = 128
ICMPV6_ECHO_REPLY = 129
ND_ROUTER_SOLICIT = 133
ND_ROUTER_ADVERT = 134
ND_NEIGHBOR_SOLICIT = 135
ND_NEIGHBOR_ADVERT = 136
ND_REDIRECT = 137
ICMP_HLEN = 8                       # ICMPv4 header, and the ICMPv6 echo header
ICMP6_HLEN = 4                      # type, code, checksum: the generic ICMPv6 header
ICMP_CSUM_OFF = 2

ICMP = struct.Struct("!BBHHH")
ICMP6 = struct.Struct("!BBH")


class IcmpHdr(NamedTuple):
    type: int
    code: int
    csum: int
    ident: int                      # first word of rest-of-header (echo identifier)
    seq: int                        # second word (echo sequence number)
    data_off: int
    end: int


class Icmp6Hdr(NamedTuple):
    type: int
    code: int
    csum: int
    body_off: int                   # first byte after type, code and checksum
    end: int


def _parse_icmp8(buf, off: int, end, reason: str) -> IcmpHdr:
    if end is None or end > len(buf):
        end = len(buf)
    if end - off < ICMP_HLEN:
        raise Malformed(reason)
    try:
        itype, code, icsum, ident, seq = ICMP.unpack_from(buf, off)
    except (struct.error, TypeError, ValueError):
        raise Malformed(reason) from None
    return IcmpHdr(itype, code, icsum, ident, seq, off + ICMP_HLEN, end)


def parse_icmp(buf, off: int, end: int | None = None) -> IcmpHdr:
    """Parse the 8-byte ICMPv4 header at `off` (ident/seq are meaningful for echo only)."""
    return _parse_icmp8(buf, off, end, "short icmp header")


def parse_icmp6_echo(buf, off: int, end: int | None = None) -> IcmpHdr:
    """Parse an ICMPv6 echo request/reply header (8 bytes) at `off`; the type is not checked."""
    return _parse_icmp8(buf, off, end, "short icmpv6 header")


def parse_icmp6(buf, off: int, end: int | None = None) -> Icmp6Hdr:
    """Parse the generic 4-byte ICMPv6 header at `off`, for NDP and echo dispatch."""
    if end is None or end > len(buf):
        end = len(buf)
    if end - off < ICMP6_HLEN:
        raise Malformed("short icmpv6 header")
    try:
        itype, code, icsum = ICMP6.unpack_from(buf, off)
    except (struct.error, TypeError, ValueError):
        raise Malformed("short icmpv6 header") from None
    return Icmp6Hdr(itype, code, icsum, off + ICMP6_HLEN, end)


def pack_icmp_echo_into(buf, off: int, type: int, ident: int, seq: int, code: int = 0,
                        csum: int = 0) -> int:
    """Write an ICMP or ICMPv6 echo header at `off`; returns the data offset."""
    ICMP.pack_into(buf, off, type, code, csum, ident, seq)
    return off + ICMP_HLEN


def pack_icmp6_into(buf, off: int, type: int, code: int, csum: int = 0) -> int:
    """Write the generic 4-byte ICMPv6 header at `off`; returns the body offset."""
    ICMP6.pack_into(buf, off, type, code, csum)
    return off + ICMP6_HLEN
