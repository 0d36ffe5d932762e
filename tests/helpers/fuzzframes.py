"""Fuzz frames for pypasta's tap: valid templates of every kind, and a seeded source of random and
mutated Ethernet frames.

Purpose: feed the integration test of issue 3, which injects a million hostile frames into the tap
from inside the namespace (tests/helpers/inject.py) and checks that pypasta stays up, counts the
drops and keeps its memory flat.

Theory of operation:
- `templates(our_mac, guest_mac, guest4, gw4, peer4, guest6, guest_ll6, gw_ll6, peer6)` returns
  the valid frames the namespace could send, one of every kind the translator parses (the
  names are in `TEMPLATE_NAMES`, the frames by name from `named_templates()`): ARP request; DHCP
  DISCOVER, REQUEST, INFORM; DHCPv6 SOLICIT to ff02::1:2; NDP NS and RS; ICMP echo v4/v6; UDP v4/v6
  to the peer with 32- and 1400-byte payloads; TCP SYN v4/v6; the first and the last fragment of
  an IPv4 UDP datagram, an IPv6 fragment; IPv6 with hop-by-hop and destination-options headers
  before UDP; an 802.1Q tagged IPv4 UDP frame; a frame with an unknown ethertype (0x88b5).
  They are built here with `struct`, with correct checksums, so this module and inject.py need
  only the standard library (the rootless venv has no scapy). tests/unit/test_fuzzframes.py
  dissects every template with scapy and compares the checksums, so they are not checked only
  against themselves (STYLE.md B7).
- `FrameSource(seed, templates).next()` returns one frame (bytes); `next_tagged()` returns
  (kind, frame); `counts` says how many of each kind were made. The kinds (`KINDS`, default
  mix in `DEFAULT_WEIGHTS`):
    valid     a template, untouched (keeps real flows and responders busy)
    random    random bytes, length 0..1600, one time in 16 up to 9000
    headered  the first 14..80 bytes of a template, then random bytes (reaches the L3/L4 parsers)
    mutate    a template with 1..8 bytes overwritten, 3 in 4 of them within the first 80 bytes
    truncate  a template cut short (half the time inside its first 80 bytes)
    append    a template with 1..64 (one time in 8: up to 1500) random trailing bytes
    extreme   a template with one length/offset field set to an extreme: IPv4 IHL, total length
              and fragment offset; IPv6 payload length; extension header lengths and the fragment
              offset; UDP length; TCP data offset and option lengths; ARP hlen/plen; DHCP,
              DHCPv6 and NDP option lengths (an NDP option length 0 is the classic endless loop)
  The fields `extreme` may touch are found once per template by `length_fields()`.

Invariants:
- Determinism: one seed and one template list give the same frames in the same order (for one
  Python version: it relies on `random.Random`'s `random`, `getrandbits` and `randbytes`).
- Every frame is at most `FRAME_MAX` (9014) bytes; it may be empty.
- Only the frame generation draws randomness; no I/O, no global state.
- Safety: `templates()` refuses (ValueError) any address outside the test ranges
  `SAFE_NETS_4`/`SAFE_NETS_6` (198.51.100.0/24, 198.18.0.0/15, 2001:db8::/64,
  2001:db8:ffff::1) and link-local fe80::/64 for the link-local ones; 192.0.2.0/24 and
  203.0.113.0/24 (`FORBIDDEN_NETS`) are never valid. The fixed addresses in templates are
  0.0.0.0, 255.255.255.255 and ff02::/16 multicast (DHCP, NDP, DHCPv6). Mutated frames may carry
  any destination; that is safe only because the integration topology is hermetic (the host
  namespace's only link is the veth to the peer namespace).

Cost: measured on the 2-core test machine (Python 3.11), `next()` takes about 2 µs per frame on
average over the default mix (see `bench()`; `python3 tests/helpers/fuzzframes.py` prints it).

Limits and not handled: no TCP beyond the SYN (no established-flow sequences), no GSO frames (the
injector's AF_PACKET socket cannot send a virtio-net header), no stateful fuzzing (replies are not
read back), checksums of mutated frames are left stale on purpose (pypasta does not verify
incoming checksums; the kernel made them).
"""

from __future__ import annotations

import ipaddress
import random
import struct
import time

FRAME_MAX = 9014                 # a 9000-byte MTU plus the Ethernet header
RANDOM_MAX_LEN = 1600
JUMBO_MAX_LEN = 9000
JUMBO_ONE_IN = 16
HEADER_BIAS_LEN = 80             # mutations favour the headers, which live here
MUTATE_MAX_BYTES = 8
APPEND_MAX_LEN = 64
APPEND_LONG_MAX_LEN = 1500
APPEND_LONG_ONE_IN = 8
HEADERED_TAIL_MAX_LEN = 1500

SAFE_NETS_4 = (ipaddress.ip_network("198.51.100.0/24"), ipaddress.ip_network("198.18.0.0/15"))
SAFE_NETS_6 = (ipaddress.ip_network("2001:db8::/64"), ipaddress.ip_network("2001:db8:ffff::1/128"))
LINK_LOCAL_6 = ipaddress.ip_network("fe80::/64")
FORBIDDEN_NETS = (ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("203.0.113.0/24"))

KINDS = ("valid", "random", "headered", "mutate", "truncate", "append", "extreme")
DEFAULT_WEIGHTS = {"valid": 5, "random": 15, "headered": 10, "mutate": 35, "truncate": 12,
                   "append": 8, "extreme": 15}

TEMPLATE_NAMES = (
    "arp_request", "dhcp_discover", "dhcp_request", "dhcp_inform", "dhcpv6_solicit", "ndp_ns",
    "ndp_rs", "icmp4_echo", "icmp6_echo", "udp4_small", "udp4_large", "udp6_small", "udp6_large",
    "tcp4_syn", "tcp6_syn", "ipv4_frag_first", "ipv4_frag_last", "ipv6_frag", "ipv6_exthdrs_udp",
    "vlan_udp4", "unknown_ethertype",
)

ETH_P_IP, ETH_P_ARP, ETH_P_IPV6, ETH_P_8021Q, ETH_P_8021AD = 0x0800, 0x0806, 0x86DD, 0x8100, 0x88A8
ETH_P_UNKNOWN = 0x88B5           # IEEE 802 local experimental ethertype 1
IPPROTO_HOPOPTS, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ROUTING = 0, 6, 17, 43
IPPROTO_FRAGMENT, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_DSTOPTS = 44, 1, 58, 60
UDP_SPORT, UDP_DPORT = 40000, 9  # discard: nobody needs to answer
TCP_SPORT, TCP_DPORT = 40001, 9
SMALL_PAYLOAD, LARGE_PAYLOAD = 32, 1400

# Field widths for length_fields(): bytes, or a nibble of one byte.
U8, U16, LO_NIBBLE, HI_NIBBLE = 1, 2, -1, -2
EXTREME_U16 = (0, 1, 2, 7, 8, 20, 40, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF)
EXTREME_U8 = (0, 1, 2, 0x7F, 0x80, 0xFE, 0xFF)

_U16 = struct.Struct("!H")


# --- building templates (once) --------------------------------------------------------------------

def _mac(s: str) -> bytes:
    b = bytes(int(x, 16) for x in s.split(":"))
    if len(b) != 6:
        raise ValueError(f"not a MAC address: {s!r}")
    return b


def _checked(addr: str, nets, what: str):
    ip = ipaddress.ip_address(addr)
    if any(ip in n for n in FORBIDDEN_NETS if n.version == ip.version) or not any(
            ip in n for n in nets if n.version == ip.version):
        allowed = ", ".join(str(n) for n in nets)
        raise ValueError(f"{what} {addr} is outside the test ranges ({allowed})")
    return ip.packed


def _csum(data: bytes) -> int:
    """Internet checksum (RFC 1071) of `data`, inverted and ready to store."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _eth(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    return dst + src + _U16.pack(ethertype) + payload


def _ipv4(src: bytes, dst: bytes, proto: int, payload: bytes, ident: int = 1, frag: int = 0,
          ttl: int = 64) -> bytes:
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, ttl,
                                proto, 0, src, dst))
    _U16.pack_into(hdr, 10, _csum(bytes(hdr)))
    return bytes(hdr) + payload


def _ipv6(src: bytes, dst: bytes, nh: int, payload: bytes, hlim: int = 64) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), nh, hlim, src, dst) + payload


def _pseudo(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    if len(src) == 4:
        return src + dst + struct.pack("!BBH", 0, proto, length)
    return src + dst + struct.pack("!IxxxB", length, proto)


def _l4(src: bytes, dst: bytes, proto: int, msg: bytes, csum_off: int) -> bytes:
    """`msg` with its checksum (at `csum_off`, zero on entry) computed over the pseudo-header."""
    c = _csum(_pseudo(src, dst, proto, len(msg)) + msg)
    if proto == IPPROTO_UDP and c == 0:
        c = 0xFFFF
    return msg[:csum_off] + _U16.pack(c) + msg[csum_off + 2:]


def _udp(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    return _l4(src, dst, IPPROTO_UDP, struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
               + payload, 6)


def _tcp_syn(src: bytes, dst: bytes) -> bytes:
    opts = (b"\x02\x04\x05\xb4"          # MSS 1460
            + b"\x01\x01\x04\x02"        # NOP NOP SACK-permitted
            + b"\x01\x03\x03\x07")       # NOP window scale 7
    hdr = struct.pack("!HHIIBBHHH", TCP_SPORT, TCP_DPORT, 0x01020304, 0, (20 + len(opts)) // 4 << 4,
                      0x02, 64240, 0, 0)
    return _l4(src, dst, IPPROTO_TCP, hdr + opts, 16)


def _icmp6(src: bytes, dst: bytes, type_: int, code: int, body: bytes) -> bytes:
    return _l4(src, dst, IPPROTO_ICMPV6, struct.pack("!BBH", type_, code, 0) + body, 2)


def _payload(n: int, salt: int) -> bytes:
    return bytes((i * 7 + salt) & 0xFF for i in range(n))


def _bootp(mac: bytes, ciaddr: bytes, options: bytes) -> bytes:
    """A BOOTREQUEST (RFC 2131 section 2) padded to 300 bytes, as ISC clients send it."""
    msg = (struct.pack("!BBBBIHH4s4s4s4s", 1, 1, 6, 0, 0x3903F326, 0, 0x8000, ciaddr, bytes(4),
                       bytes(4), bytes(4))
           + mac + bytes(10) + bytes(64) + bytes(128) + b"\x63\x82\x53\x63" + options + b"\xff")
    return msg + bytes(max(0, 300 - len(msg)))


def _dhcp_opts(msg_type: int, mac: bytes, extra: bytes = b"") -> bytes:
    return (bytes((53, 1, msg_type)) + bytes((61, 7, 1)) + mac + extra
            + bytes((55, 4, 1, 3, 6, 15)))


def _solicited_node(addr: bytes) -> bytes:
    return ipaddress.IPv6Address("ff02::1:ff00:0").packed[:13] + addr[13:]


def _mcast_mac(addr6: bytes) -> bytes:
    return b"\x33\x33" + addr6[12:]


def named_templates(our_mac: str, guest_mac: str, guest4: str, gw4: str, peer4: str, guest6: str,
                    guest_ll6: str, gw_ll6: str, peer6: str) -> dict[str, bytes]:
    """The valid frames of every kind, by name (`TEMPLATE_NAMES` order).

    `our_mac` is pypasta's MAC, `guest_*` the namespace's, `gw*` the gateway, `peer*` a host in the
    test topology. Raises ValueError for an address outside the test ranges.
    """
    ours, guest = _mac(our_mac), _mac(guest_mac)
    g4 = _checked(guest4, SAFE_NETS_4, "guest4")
    gw4b = _checked(gw4, SAFE_NETS_4, "gw4")
    p4 = _checked(peer4, SAFE_NETS_4, "peer4")
    g6 = _checked(guest6, SAFE_NETS_6, "guest6")
    gll = _checked(guest_ll6, (LINK_LOCAL_6,), "guest_ll6")
    gwll = _checked(gw_ll6, (LINK_LOCAL_6,), "gw_ll6")
    p6 = _checked(peer6, SAFE_NETS_6, "peer6")
    any4, bcast4 = bytes(4), b"\xff" * 4
    bcast = b"\xff" * 6
    all_routers = ipaddress.IPv6Address("ff02::2").packed
    dhcp6_servers = ipaddress.IPv6Address("ff02::1:2").packed
    slla = bytes((1, 1)) + guest                      # NDP source link-layer address option

    def eth4(payload: bytes, dst: bytes = ours) -> bytes:
        return _eth(dst, guest, ETH_P_IP, payload)

    def eth6(payload: bytes, dst: bytes = ours) -> bytes:
        return _eth(dst, guest, ETH_P_IPV6, payload)

    def udp4(dst4: bytes, n: int, src4: bytes = g4, sport: int = UDP_SPORT,
             dport: int = UDP_DPORT, payload: bytes | None = None) -> bytes:
        data = _udp(src4, dst4, sport, dport, _payload(n, 4) if payload is None else payload)
        return _ipv4(src4, dst4, IPPROTO_UDP, data)

    def udp6(dst6: bytes, n: int) -> bytes:
        return _ipv6(g6, dst6, IPPROTO_UDP, _udp(g6, dst6, UDP_SPORT, UDP_DPORT, _payload(n, 6)))

    t: dict[str, bytes] = {}
    t["arp_request"] = _eth(bcast, guest, ETH_P_ARP, struct.pack(
        "!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, 1, guest, g4, bytes(6), gw4b))
    t["dhcp_discover"] = eth4(udp4(bcast4, 0, any4, 68, 67, _bootp(
        guest, any4, _dhcp_opts(1, guest))), bcast)
    t["dhcp_request"] = eth4(udp4(bcast4, 0, any4, 68, 67, _bootp(
        guest, any4, _dhcp_opts(3, guest, bytes((50, 4)) + g4 + bytes((54, 4)) + gw4b))), bcast)
    t["dhcp_inform"] = eth4(udp4(bcast4, 0, g4, 68, 67, _bootp(
        guest, g4, _dhcp_opts(8, guest))), bcast)
    solicit = (bytes((1, 0x12, 0x34, 0x56))                               # SOLICIT, xid
               + struct.pack("!HHHH", 1, 10, 3, 1) + guest                 # CLIENTID, DUID-LL
               + struct.pack("!HHH", 8, 2, 0)                              # ELAPSED_TIME
               + struct.pack("!HHIII", 3, 12, 0x0C0FFEE, 0, 0)             # IA_NA
               + struct.pack("!HHHH", 6, 4, 23, 24))                       # ORO: DNS, domains
    t["dhcpv6_solicit"] = _eth(_mcast_mac(dhcp6_servers), guest, ETH_P_IPV6, _ipv6(
        gll, dhcp6_servers, IPPROTO_UDP, _udp(gll, dhcp6_servers, 546, 547, solicit), 1))
    sn = _solicited_node(gwll)
    t["ndp_ns"] = _eth(_mcast_mac(sn), guest, ETH_P_IPV6, _ipv6(
        gll, sn, IPPROTO_ICMPV6, _icmp6(gll, sn, 135, 0, bytes(4) + gwll + slla), 255))
    t["ndp_rs"] = _eth(_mcast_mac(all_routers), guest, ETH_P_IPV6, _ipv6(
        gll, all_routers, IPPROTO_ICMPV6, _icmp6(gll, all_routers, 133, 0, bytes(4) + slla), 255))
    echo = struct.pack("!HH", 0x4242, 1) + _payload(56, 8)
    icmp4 = struct.pack("!BBH", 8, 0, 0) + echo
    icmp4 = icmp4[:2] + _U16.pack(_csum(icmp4)) + icmp4[4:]
    t["icmp4_echo"] = eth4(_ipv4(g4, p4, IPPROTO_ICMP, icmp4))
    t["icmp6_echo"] = eth6(_ipv6(g6, p6, IPPROTO_ICMPV6, _icmp6(g6, p6, 128, 0, echo)))
    t["udp4_small"] = eth4(udp4(p4, SMALL_PAYLOAD))
    t["udp4_large"] = eth4(udp4(p4, LARGE_PAYLOAD))
    t["udp6_small"] = eth6(udp6(p6, SMALL_PAYLOAD))
    t["udp6_large"] = eth6(udp6(p6, LARGE_PAYLOAD))
    t["tcp4_syn"] = eth4(_ipv4(g4, p4, IPPROTO_TCP, _tcp_syn(g4, p4)))
    t["tcp6_syn"] = eth6(_ipv6(g6, p6, IPPROTO_TCP, _tcp_syn(g6, p6)))
    dgram = _udp(g4, p4, UDP_SPORT, UDP_DPORT, _payload(56, 12))          # 64 bytes: 8 + 56
    t["ipv4_frag_first"] = eth4(_ipv4(g4, p4, IPPROTO_UDP, dgram[:32], ident=0x4444,
                                      frag=0x2000))                      # MF, offset 0
    t["ipv4_frag_last"] = eth4(_ipv4(g4, p4, IPPROTO_UDP, dgram[32:], ident=0x4444,
                                     frag=32 // 8))                      # offset 32 bytes
    dgram6 = _udp(g6, p6, UDP_SPORT, UDP_DPORT, _payload(56, 14))
    frag6 = struct.pack("!BBHI", IPPROTO_UDP, 0, 0x0001, 0x66666666)       # offset 0, M
    t["ipv6_frag"] = eth6(_ipv6(g6, p6, IPPROTO_FRAGMENT, frag6 + dgram6[:32]))
    padn4 = b"\x01\x04" + bytes(4)
    exthdrs = (bytes((IPPROTO_DSTOPTS, 0)) + padn4          # hop-by-hop, next: destination options
               + bytes((IPPROTO_UDP, 0)) + padn4)           # destination options, next: UDP
    t["ipv6_exthdrs_udp"] = eth6(_ipv6(g6, p6, IPPROTO_HOPOPTS, exthdrs + _udp(
        g6, p6, UDP_SPORT, UDP_DPORT, _payload(SMALL_PAYLOAD, 16))))
    t["vlan_udp4"] = ours + guest + struct.pack("!HHH", ETH_P_8021Q, 100, ETH_P_IP) + udp4(
        p4, SMALL_PAYLOAD)
    t["unknown_ethertype"] = _eth(ours, guest, ETH_P_UNKNOWN, _payload(46, 18))
    assert tuple(t) == TEMPLATE_NAMES
    return t


def templates(our_mac: str, guest_mac: str, guest4: str, gw4: str, peer4: str, guest6: str,
              guest_ll6: str, gw_ll6: str, peer6: str) -> list[bytes]:
    """The valid frames of every kind (see `named_templates`), in `TEMPLATE_NAMES` order."""
    return list(named_templates(our_mac, guest_mac, guest4, gw4, peer4, guest6, guest_ll6,
                                gw_ll6, peer6).values())


# --- where the length fields are -----------------------------------------------------------------

def _u16(b: bytes, off: int) -> int:
    return (b[off] << 8) | b[off + 1]


def _tlv8_fields(b: bytes, p: int, end: int, singles: tuple = (), stop: int = -1) -> list:
    """Length bytes of 8-bit type/length options from `p` (DHCP, TCP options)."""
    out = []
    while p + 1 < end and b[p] != stop:
        if b[p] in singles:
            p += 1
            continue
        out.append((p + 1, U8))
        p += 2 + b[p + 1]
    return out


def _l4_fields(b: bytes, proto: int, p: int, end: int) -> list:
    out: list = []
    if proto == IPPROTO_UDP and p + 8 <= end:
        out.append((p + 4, U16))
        sport, dport = _u16(b, p), _u16(b, p + 2)
        if dport in (67, 68) and p + 8 + 240 <= end:                 # DHCP options
            out += _tlv8_fields(b, p + 8 + 240, end, singles=(0,), stop=255)
        elif dport == 547 and sport == 546:                          # DHCPv6 options
            q = p + 8 + 4
            while q + 4 <= end:
                out.append((q + 2, U16))
                q += 4 + _u16(b, q + 2)
    elif proto == IPPROTO_TCP and p + 20 <= end:
        out.append((p + 12, HI_NIBBLE))
        out += _tlv8_fields(b, p + 20, min(end, p + (b[p + 12] >> 4) * 4), singles=(0, 1))
    elif proto == IPPROTO_ICMPV6 and p + 8 <= end and 133 <= b[p] <= 137:
        q = p + {133: 8, 134: 16, 135: 24, 136: 24, 137: 40}[b[p]]   # NDP options
        while q + 2 <= end and b[q + 1]:
            out.append((q + 1, U8))
            q += b[q + 1] * 8
    return out


def length_fields(frame: bytes) -> list[tuple[int, int]]:
    """(offset, width) of the length and offset fields in a well-formed frame, outermost first.

    Width is `U8`, `U16`, `LO_NIBBLE` or `HI_NIBBLE`. Used once per template, not per frame.
    """
    b, n = frame, len(frame)
    if n < 14:
        return []
    et, off = _u16(b, 12), 14
    while et in (ETH_P_8021Q, ETH_P_8021AD) and off + 4 <= n:
        et, off = _u16(b, off + 2), off + 4
    out: list = []
    if et == ETH_P_ARP and off + 8 <= n:
        out += [(off + 4, U8), (off + 5, U8)]                        # hlen, plen
    elif et == ETH_P_IP and off + 20 <= n:
        out += [(off, LO_NIBBLE), (off + 2, U16), (off + 6, U16)]    # IHL, total length, frag
        if _u16(b, off + 6) & 0x1FFF == 0:
            out += _l4_fields(b, b[off + 9], off + (b[off] & 15) * 4, n)
    elif et == ETH_P_IPV6 and off + 40 <= n:
        out.append((off + 4, U16))                                   # payload length
        nh, p = b[off + 6], off + 40
        while nh in (IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_DSTOPTS) and p + 8 <= n:
            out.append((p + 1, U8))                                  # hdr ext len
            nh, p = b[p], p + (b[p + 1] + 1) * 8
        if nh == IPPROTO_FRAGMENT and p + 8 <= n:
            out.append((p + 2, U16))                                 # offset and M flag
            if _u16(b, p + 2) >> 3:
                return out
            nh, p = b[p], p + 8
        out += _l4_fields(b, nh, p, n)
    return out


# --- the frame source ----------------------------------------------------------------------------

class FrameSource:
    """A deterministic stream of random and mutated frames (see the module docstring).

    `weights` maps kinds (a subset of `KINDS`) to integer weights; the default is
    `DEFAULT_WEIGHTS`. `counts` holds how many frames of each kind were returned.
    """

    def __init__(self, seed: int, templates: list[bytes], weights: dict[str, int] | None = None):
        if not templates:
            raise ValueError("FrameSource needs at least one template")
        self.templates = [bytes(t[:FRAME_MAX]) for t in templates]
        self.fields = [length_fields(t) for t in self.templates]
        weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
        unknown = set(weights) - set(KINDS)
        if unknown or not any(weights.values()):
            raise ValueError(f"bad weights {weights} (kinds: {KINDS})")
        makers = {k: getattr(self, "_make_" + k) for k in KINDS}
        # One slot per unit of weight: choosing a kind costs one random() and one index.
        self._table = [(k, makers[k]) for k in KINDS for _ in range(weights.get(k, 0))]
        self.counts = dict.fromkeys(KINDS, 0)
        self._rng = random.Random(seed)

    def next(self) -> bytes:
        """The next frame."""
        kind, make = self._table[int(self._rng.random() * len(self._table))]
        self.counts[kind] += 1
        return make()

    def next_tagged(self) -> tuple[str, bytes]:
        """The next frame with its kind."""
        kind, make = self._table[int(self._rng.random() * len(self._table))]
        self.counts[kind] += 1
        return kind, make()

    def _template(self) -> int:
        return int(self._rng.random() * len(self.templates))

    def _make_valid(self) -> bytes:
        return self.templates[self._template()]

    def _make_random(self) -> bytes:
        rng = self._rng
        top = JUMBO_MAX_LEN if rng.random() * JUMBO_ONE_IN < 1 else RANDOM_MAX_LEN
        return rng.randbytes(int(rng.random() * (top + 1)))

    def _make_headered(self) -> bytes:
        rng = self._rng
        t = self.templates[self._template()]
        keep = min(len(t), 14 + int(rng.random() * (HEADER_BIAS_LEN - 14 + 1)))
        return t[:keep] + rng.randbytes(int(rng.random() * (HEADERED_TAIL_MAX_LEN + 1)))

    def _make_mutate(self) -> bytes:
        rng = self._rng
        buf = bytearray(self.templates[self._template()])
        n = len(buf)
        if not n:
            return b""
        head = min(n, HEADER_BIAS_LEN)
        for _ in range(1 + int(rng.random() * MUTATE_MAX_BYTES)):
            pos = int(rng.random() * (head if rng.random() < 0.75 else n))
            buf[pos] = rng.getrandbits(8)
        return bytes(buf)

    def _make_truncate(self) -> bytes:
        rng = self._rng
        t = self.templates[self._template()]
        top = min(len(t), HEADER_BIAS_LEN) if rng.random() < 0.5 else len(t)
        return t[:int(rng.random() * top)]

    def _make_append(self) -> bytes:
        rng = self._rng
        t = self.templates[self._template()]
        top = APPEND_LONG_MAX_LEN if rng.random() * APPEND_LONG_ONE_IN < 1 else APPEND_MAX_LEN
        extra = 1 + int(rng.random() * top)
        return t + rng.randbytes(min(extra, FRAME_MAX - len(t)))

    def _make_extreme(self) -> bytes:
        rng = self._rng
        i = self._template()
        fields = self.fields[i]
        if not fields:
            return self._mutate_one(i)
        off, width = fields[int(rng.random() * len(fields))]
        buf = bytearray(self.templates[i])
        r = rng.random()
        if width == U16:
            orig = _u16(buf, off)
            choices = EXTREME_U16
            value = (choices[int(r * len(choices) * 1.5)] if r < 2 / 3
                     else (orig + (1 if r < 5 / 6 else -1)) & 0xFFFF)
            buf[off], buf[off + 1] = value >> 8, value & 0xFF
        elif width == U8:
            choices = EXTREME_U8
            buf[off] = (choices[int(r * len(choices) * 1.5)] if r < 2 / 3
                        else (buf[off] + (1 if r < 5 / 6 else -1)) & 0xFF)
        elif width == LO_NIBBLE:
            buf[off] = (buf[off] & 0xF0) | int(r * 16)
        else:
            buf[off] = (buf[off] & 0x0F) | (int(r * 16) << 4)
        return bytes(buf)

    def _mutate_one(self, i: int) -> bytes:
        rng = self._rng
        buf = bytearray(self.templates[i])
        if buf:
            buf[int(rng.random() * min(len(buf), HEADER_BIAS_LEN))] = rng.getrandbits(8)
        return bytes(buf)


# --- measuring ------------------------------------------------------------------------------------

EXAMPLE_ADDRS = dict(our_mac="9a:55:9a:55:9a:55", guest_mac="02:00:c6:33:64:02",
                     guest4="198.51.100.2", gw4="198.51.100.1", peer4="198.18.0.1",
                     guest6="2001:db8::2", guest_ll6="fe80::c6ff:fe33:6402",
                     gw_ll6="fe80::c6ff:fe33:6401", peer6="2001:db8:ffff::1")
"""The addresses of the integration topology (tests/helpers/topology.py), for examples and tests."""


def bench(n: int = 200_000, seed: int = 1) -> float:
    """Mean seconds per `next()` over `n` frames of the default mix."""
    src = FrameSource(seed, templates(**EXAMPLE_ADDRS))
    nxt = src.next
    t0 = time.perf_counter()
    for _ in range(n):
        nxt()
    return (time.perf_counter() - t0) / n


if __name__ == "__main__":
    print(f"{bench() * 1e6:.2f} µs per frame")
