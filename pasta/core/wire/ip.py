"""IP-layer codecs: IPv4 and IPv6 headers, IPv6 extension-header walk, pseudo-header sums.

Purpose: find, for a frame from the tap, where the upper-layer header starts, which protocol it
is, where the IP packet ends and whether it is a fragment; and write IPv4/IPv6 headers for the
frames pypasta builds.

Theory of operation: `pasta.core.wire.parse_frame()` calls `parse_ipv4()` or `parse_ipv6()` after the
Ethernet header; TCP, UDP and ICMP code uses `src`, `dst`, `proto`, `l4_off` and `end` from the
result, and the pseudo-header sums (`pseudo_sum_ipv4()`, `pseudo_sum_ipv6()`) to checksum or to
offload what it sends. `pack_ipv4_into()` always computes the 20-byte header checksum in software.

Lengths, and GSO frames from the tap:
- `end` (default: the end of the buffer) bounds the parse; bytes after it (a read slot's stale
  tail) are never looked at.
- IPv4: the packet ends at `off + tot_len`. A shorter buffer is `Malformed`; a longer one (Ethernet
  padding, trailing bytes) is trimmed to tot_len. If `gso` is true (the virtio-net header says
  gso_type != NONE) and tot_len is 0 (BIG TCP style super-packets above 64 KiB), the buffer end is
  trusted instead. A TSO frame with a non-zero tot_len is trimmed like any other.
- IPv6: the same with `40 + payload_len`; payload_len 0 means "up to the buffer end" only for GSO
  frames. Jumbograms (RFC 2675) are not supported: without GSO, payload_len 0 is an empty packet.

IPv6 extension headers (RFC 8200 section 4) are skipped until the upper-layer header:
hop-by-hop options (0, only directly after the fixed header), routing (43), destination options
(60) and AH (51, length in 4-byte units, RFC 4302). A fragment header (44) with a non-zero offset or
the M flag set stops the walk and reports `frag=True` with the fragment header's next header as
`proto`; an atomic fragment (offset 0, M clear, RFC 6946) is skipped and the walk goes on. Any other
next header (TCP, UDP, ICMPv6, ESP, no-next-header 59, ...) ends the walk and is reported as `proto`
with `l4_off` pointing at it.

States and events: none (stateless codecs).

Invariants:
- On success `off + header length <= l4_off <= end <= len(buf)`.
- `frag` is true exactly for IPv4 packets with MF set or a non-zero fragment offset, and for
  IPv6 packets with a non-atomic fragment header; callers drop those (pasta does not reassemble).
- Only `Malformed` escapes a `parse_*` function; reasons: "short ipv4 header", "bad ipv4 version",
  "bad ipv4 header length", "bad ipv4 total length", "short ipv6 header", "bad ipv6 version",
  "bad ipv6 payload length", "short ipv6 extension header", "ipv6 hop-by-hop not first".
- Pseudo-header sums are folded, non-inverted 16-bit values (see `pasta.core.wire.csum`).

Limits and not handled:
- Reassembly of fragments; IPv4 options are skipped (via IHL) and never interpreted.
- The IPv4 header checksum of incoming packets is not verified: frames come from the local kernel
  over the tap (passt does not verify it either).
- Routing headers are skipped whatever their type and segments-left value (the final destination
  is not computed; pasta does not forward source-routed packets).

Kernel assumptions:
- With TUN_F_TSO4/TSO6 the namespace's stack may send TCP super-packets of up to 64 KiB whose IP
  length fields hold the full length (expected from the tun driver, not yet measured: a kernel
  test for it belongs with the TCP translator, which is what makes the namespace send them).

Differences from passt:
- `tap.c tap4_handler()` drops packets with tot_len larger than the frame but also ignores the
  frame length otherwise; we trim to tot_len the same way, and add the GSO exception above.
- `ip.c ipv6_l4hdr()` treats 0, 43, 44, 50, 51, 60, 135, 139, 140, 253 and 254 alike with the
  (hdrlen + 1) * 8 length rule, so it neither recognises fragments nor sizes AH correctly, and walks
  into ESP's encrypted payload. We skip only the headers whose layout is known, report fragments,
  and stop at ESP, Mobility, HIP and Shim6, which the caller drops as unknown protocols.
- `tap.c tap6_handler()` requires payload_len to match the frame exactly; we trim longer frames.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from pasta.util.errors import Malformed
from pasta.core.wire.csum import csum, csum_fold

IPPROTO_HOPOPTS = 0
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_ESP = 50
IPPROTO_AH = 51
IPPROTO_ICMPV6 = 58
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60

IP_DF = 0x4000
IP_MF = 0x2000
IP_OFFMASK = 0x1FFF
IPV4_HLEN = 20
IPV6_HLEN = 40
IP_TTL_DEFAULT = 255                # pasta's TTL / hop limit for everything it sends

IP4 = struct.Struct("!BBHHHBBH4s4s")
IP6 = struct.Struct("!IHBB16s16s")
_U16 = struct.Struct("!H")

_from_bytes = int.from_bytes


class Ip4Hdr(NamedTuple):
    hdr_len: int                    # IHL * 4, options included
    tos: int
    tot_len: int                    # as found in the header (0 allowed for GSO frames)
    ident: int
    frag_off: int                   # raw 16-bit field: flags (DF, MF) and offset
    ttl: int
    proto: int
    csum: int
    src: bytes
    dst: bytes
    l4_off: int
    end: int                        # end of the IP packet in buf
    frag: bool                      # MF or offset != 0: the caller drops it


class Ip6Hdr(NamedTuple):
    tc: int                         # traffic class
    flow: int                       # flow label
    plen: int                       # payload length, as found
    nh: int                         # next header of the fixed header
    hlim: int
    src: bytes
    dst: bytes
    proto: int                      # upper-layer protocol after the extension headers
    l4_off: int
    end: int
    frag: bool                      # non-atomic fragment header seen: the caller drops it


def parse_ipv4(buf, off: int, end: int | None = None, gso: bool = False) -> Ip4Hdr:
    """Parse an IPv4 header at `off` (options skipped); see the module docstring for lengths."""
    if end is None or end > len(buf):
        end = len(buf)
    avail = end - off
    if avail < IPV4_HLEN:
        raise Malformed("short ipv4 header")
    try:
        vihl, tos, tot_len, ident, frag_off, ttl, proto, hcsum, src, dst = IP4.unpack_from(buf, off)
    except (struct.error, TypeError, ValueError):
        raise Malformed("short ipv4 header") from None
    if vihl >> 4 != 4:
        raise Malformed("bad ipv4 version")
    hlen = (vihl & 0x0F) << 2
    if hlen < IPV4_HLEN:
        raise Malformed("bad ipv4 header length")
    if hlen > avail:
        raise Malformed("short ipv4 header")
    if tot_len == 0 and gso:
        pkt_end = end
    elif tot_len < hlen or tot_len > avail:
        raise Malformed("bad ipv4 total length")
    else:
        pkt_end = off + tot_len
    return Ip4Hdr(hlen, tos, tot_len, ident, frag_off, ttl, proto, hcsum, src, dst,
                  off + hlen, pkt_end, bool(frag_off & (IP_MF | IP_OFFMASK)))


def skip_ipv6_exthdrs(buf, off: int, nh: int, end: int) -> tuple[int, int, bool]:
    """Walk extension headers from `off` (first one of type `nh`); returns (proto, l4_off, frag)."""
    first = True
    try:
        while True:
            if nh == IPPROTO_HOPOPTS or nh == IPPROTO_ROUTING or nh == IPPROTO_DSTOPTS:
                if nh == IPPROTO_HOPOPTS and not first:
                    raise Malformed("ipv6 hop-by-hop not first")     # RFC 8200 section 4.1
                if end - off < 8:
                    raise Malformed("short ipv6 extension header")
                hlen = (buf[off + 1] + 1) << 3
            elif nh == IPPROTO_FRAGMENT:
                if end - off < 8:
                    raise Malformed("short ipv6 extension header")
                if _U16.unpack_from(buf, off + 2)[0] & 0xFFF9:       # offset or M flag
                    return buf[off], off + 8, True
                hlen = 8                                            # atomic fragment, RFC 6946
            elif nh == IPPROTO_AH:
                if end - off < 8:
                    raise Malformed("short ipv6 extension header")
                hlen = (buf[off + 1] + 2) << 2                      # RFC 4302 section 2.2
            else:
                return nh, off, False
            if end - off < hlen:
                raise Malformed("short ipv6 extension header")
            nh = buf[off]
            off += hlen
            first = False
    except (struct.error, IndexError, TypeError, ValueError):
        raise Malformed("short ipv6 extension header") from None


def parse_ipv6(buf, off: int, end: int | None = None, gso: bool = False) -> Ip6Hdr:
    """Parse an IPv6 header at `off` and skip its extension headers."""
    if end is None or end > len(buf):
        end = len(buf)
    avail = end - off
    if avail < IPV6_HLEN:
        raise Malformed("short ipv6 header")
    try:
        vtf, plen, nh, hlim, src, dst = IP6.unpack_from(buf, off)
    except (struct.error, TypeError, ValueError):
        raise Malformed("short ipv6 header") from None
    if vtf >> 28 != 6:
        raise Malformed("bad ipv6 version")
    if plen == 0 and gso:
        pkt_end = end
    elif plen > avail - IPV6_HLEN:
        raise Malformed("bad ipv6 payload length")
    else:
        pkt_end = off + IPV6_HLEN + plen
    proto, l4_off, frag = skip_ipv6_exthdrs(buf, off + IPV6_HLEN, nh, pkt_end)
    return Ip6Hdr((vtf >> 20) & 0xFF, vtf & 0xFFFFF, plen, nh, hlim, src, dst, proto, l4_off,
                  pkt_end, frag)


def pack_ipv4_into(buf, off: int, src: bytes, dst: bytes, proto: int, tot_len: int,
                   ttl: int = IP_TTL_DEFAULT, tos: int = 0, ident: int = 0,
                   frag_off: int = IP_DF) -> int:
    """Write a 20-byte IPv4 header with its checksum at `off`; returns the L4 offset."""
    if len(src) != 4 or len(dst) != 4:
        raise ValueError("IPv4 addresses must be 4 bytes")
    IP4.pack_into(buf, off, 0x45, tos, tot_len, ident, frag_off, ttl, proto, 0, src, dst)
    _U16.pack_into(buf, off + 10, csum(memoryview(buf)[off:off + IPV4_HLEN]))
    return off + IPV4_HLEN


def pack_ipv6_into(buf, off: int, src: bytes, dst: bytes, nh: int, plen: int,
                   hlim: int = IP_TTL_DEFAULT, tc: int = 0, flow: int = 0) -> int:
    """Write a 40-byte IPv6 header at `off`; returns the offset after it."""
    if len(src) != 16 or len(dst) != 16:
        raise ValueError("IPv6 addresses must be 16 bytes")
    IP6.pack_into(buf, off, 0x60000000 | (tc & 0xFF) << 20 | (flow & 0xFFFFF), plen, nh, hlim,
                  src, dst)
    return off + IPV6_HLEN


def pseudo_sum_ipv4(src, dst, proto: int, l4_len: int) -> int:
    """Folded, non-inverted sum of the IPv4 pseudo-header (RFC 793 section 3.1, RFC 768)."""
    return csum_fold(_from_bytes(src, "big") + _from_bytes(dst, "big") + proto + l4_len)


def pseudo_sum_ipv6(src, dst, proto: int, l4_len: int) -> int:
    """Folded, non-inverted sum of the IPv6 pseudo-header (RFC 8200 section 8.1)."""
    # The 32-bit length field sums like its two 16-bit halves, since 2**16 == 1 (mod 0xffff).
    return csum_fold(_from_bytes(src, "big") + _from_bytes(dst, "big") + proto + l4_len)
