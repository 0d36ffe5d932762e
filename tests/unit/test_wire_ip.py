"""Tests for pasta.core.wire.ip: IPv4/IPv6 headers, extension headers, pseudo-header sums (vs scapy)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, settings, strategies as st
from scapy.layers.inet import IP, TCP, UDP, IPOption_NOP, IPOption_RR, in4_chksum
from scapy.layers.inet6 import (IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
                                IPv6ExtHdrRouting, in6_chksum)
from scapy.layers.ipsec import AH
from scapy.packet import raw

from pasta.util.errors import Malformed
from pasta.core.wire.csum import csum
from pasta.core.wire.ip import (IP_DF, IPPROTO_AH, IPPROTO_ESP, IPPROTO_FRAGMENT, IPPROTO_HOPOPTS,
                           IPPROTO_ICMPV6, IPPROTO_NONE, IPPROTO_TCP, IPPROTO_UDP,
                           IPV6_HLEN, pack_ipv4_into, pack_ipv6_into, parse_ipv4, parse_ipv6,
                           pseudo_sum_ipv4, pseudo_sum_ipv6, skip_ipv6_exthdrs)

FAST = settings(max_examples=100, deadline=None)
SRC6, DST6 = "2001:db8::1", "2001:db8::2"

ip4s = st.binary(min_size=4, max_size=4)
ip6s = st.binary(min_size=16, max_size=16)


def a4(b: bytes) -> str:
    return str(IPv4Address(b))


def a6(b: bytes) -> str:
    return str(IPv6Address(b))


# --- IPv4 -------------------------------------------------------------------------------------

@FAST
@given(ip4s, ip4s, st.integers(0, 255), st.integers(0, 0xFFFF), st.integers(0, 255),
       st.sampled_from([0, 1, 6, 17, 47, 132]), st.binary(max_size=40),
       st.sampled_from(["", "DF"]))
def test_ipv4_parse_scapy_packet(src, dst, tos, ident, ttl, proto, payload, flags):
    p = IP(src=a4(src), dst=a4(dst), tos=tos, id=ident, ttl=ttl, proto=proto, flags=flags) / payload
    b = raw(p)
    h = parse_ipv4(b, 0)
    q = IP(b)
    assert (h.src, h.dst, h.tos, h.ident, h.ttl, h.proto) == (src, dst, tos, ident, ttl, proto)
    assert (h.tot_len, h.csum, h.hdr_len) == (q.len, q.chksum, q.ihl * 4)
    assert (h.l4_off, h.end, h.frag) == (20, len(b), False)
    assert h.frag_off == (IP_DF if flags else 0)


def test_ipv4_options_skipped_via_ihl():
    opts = [IPOption_NOP(), IPOption_RR(routers=["1.2.3.4"])]
    p = IP(src="10.0.0.1", dst="10.0.0.2", options=opts) / UDP(sport=1, dport=2)
    b = raw(p)
    ihl = IP(b).ihl * 4
    assert ihl > 20
    h = parse_ipv4(b, 0)
    assert (h.hdr_len, h.l4_off, h.proto) == (ihl, ihl, IPPROTO_UDP)


@pytest.mark.parametrize("kw", [dict(flags="MF"), dict(frag=1), dict(frag=100, flags="MF"),
                                dict(frag=8191)])
def test_ipv4_fragments_reported(kw):
    h = parse_ipv4(raw(IP(dst="10.0.0.1", **kw) / UDP()), 0)
    assert h.frag


def test_ipv4_scapy_fragment_list_all_reported():
    frags = (IP(dst="10.0.0.1") / UDP() / bytes(3000)).fragment(1000)
    assert len(frags) > 1
    assert all(parse_ipv4(raw(f), 0).frag for f in frags)


def test_ipv4_trims_padding_and_trailing_bytes():
    b = raw(IP(dst="10.0.0.1") / UDP() / b"x")
    h = parse_ipv4(b + bytes(17), 0)
    assert h.end == len(b) == h.tot_len
    h2 = parse_ipv4(b + bytes(17), 0, end=len(b) + 5)
    assert h2.end == len(b)


@pytest.mark.parametrize("mutate,reason", [
    (lambda b: b[:19], "short ipv4 header"),
    (lambda b: bytes([0x55]) + b[1:], "bad ipv4 version"),
    (lambda b: bytes([0x65]) + b[1:], "bad ipv4 version"),
    (lambda b: bytes([0x44]) + b[1:], "bad ipv4 header length"),
    (lambda b: bytes([0x4F]) + b[1:40], "short ipv4 header"),      # options beyond buffer
    (lambda b: b[:2] + (len(b) + 1).to_bytes(2, "big") + b[4:], "bad ipv4 total length"),
    (lambda b: b[:2] + (19).to_bytes(2, "big") + b[4:], "bad ipv4 total length"),
    (lambda b: b[:2] + bytes(2) + b[4:], "bad ipv4 total length"),
])
def test_ipv4_malformed(mutate, reason):
    b = raw(IP(dst="10.0.0.1") / UDP() / bytes(40))
    with pytest.raises(Malformed, match=reason):
        parse_ipv4(mutate(b), 0)


def test_ipv4_gso_zero_total_length_trusts_buffer():
    b = bytearray(raw(IP(dst="10.0.0.1") / TCP() / bytes(100)))
    b[2:4] = bytes(2)
    h = parse_ipv4(b, 0, gso=True)
    assert (h.tot_len, h.end, h.l4_off) == (0, len(b), 20)
    assert parse_ipv4(b, 0, end=60, gso=True).end == 60
    with pytest.raises(Malformed):
        parse_ipv4(b, 0, gso=False)


def test_ipv4_gso_nonzero_total_length_is_trimmed():
    b = raw(IP(dst="10.0.0.1") / TCP() / bytes(100))
    assert parse_ipv4(b + bytes(50), 0, gso=True).end == len(b)


@FAST
@given(ip4s, ip4s, st.sampled_from([1, 6, 17]), st.integers(20, 0xFFFF), st.integers(0, 255),
       st.integers(0, 255), st.integers(0, 0xFFFF), st.sampled_from([0, IP_DF]))
def test_ipv4_pack_scapy_dissects_and_checksum_verifies(src, dst, proto, tot_len, ttl, tos, ident,
                                                        frag_off):
    buf = bytearray(22)
    assert pack_ipv4_into(buf, 2, src, dst, proto, tot_len, ttl, tos, ident, frag_off) == 22
    p = IP(bytes(buf[2:]))
    assert (p.version, p.ihl, p.src, p.dst, p.proto, p.len) == (4, 5, a4(src), a4(dst), proto,
                                                               tot_len)
    assert (p.ttl, p.tos, p.id, p.flags.value << 13 | p.frag) == (ttl, tos, ident, frag_off)
    q = p.copy()
    del q.chksum
    assert IP(raw(q)).chksum == p.chksum
    assert csum(buf[2:]) == 0


def test_ipv4_pack_rejects_wrong_address_size():
    with pytest.raises(ValueError):
        pack_ipv4_into(bytearray(20), 0, bytes(16), bytes(4), 17, 20)


# --- IPv6 -------------------------------------------------------------------------------------

@FAST
@given(ip6s, ip6s, st.integers(0, 255), st.integers(0, 0xFFFFF), st.integers(0, 255),
       st.binary(max_size=40))
def test_ipv6_parse_scapy_packet(src, dst, tc, fl, hlim, payload):
    p = IPv6(src=a6(src), dst=a6(dst), tc=tc, fl=fl, hlim=hlim) / UDP(sport=5, dport=6) / payload
    b = raw(p)
    h = parse_ipv6(b, 0)
    assert (h.src, h.dst, h.tc, h.flow, h.hlim) == (src, dst, tc, fl, hlim)
    assert (h.plen, h.nh, h.proto, h.l4_off, h.end, h.frag) == \
        (8 + len(payload), IPPROTO_UDP, IPPROTO_UDP, 40, len(b), False)


def expected_l4_off(pkt, upper) -> int:
    return len(raw(pkt)) - len(raw(pkt[upper]))


EXT_CHAINS = [
    [IPv6ExtHdrHopByHop()],
    [IPv6ExtHdrDestOpt()],
    [IPv6ExtHdrRouting(addresses=["2001:db8::3", "2001:db8::4"])],
    [IPv6ExtHdrHopByHop(), IPv6ExtHdrDestOpt(), IPv6ExtHdrRouting(addresses=["2001:db8::3"]),
     IPv6ExtHdrDestOpt()],
    [IPv6ExtHdrHopByHop(), IPv6ExtHdrRouting(), IPv6ExtHdrFragment(offset=0, m=0),
     IPv6ExtHdrDestOpt()],
    [AH(nh=IPPROTO_UDP, payloadlen=4, spi=1, icv=bytes(12))],
]


@pytest.mark.parametrize("chain", EXT_CHAINS, ids=lambda c: "/".join(h.name[:14] for h in c))
@pytest.mark.parametrize("upper", [UDP(sport=1, dport=2), TCP(sport=1, dport=2, flags="S")])
def test_ipv6_extension_chain_reaches_upper_layer(chain, upper):
    pkt = IPv6(src=SRC6, dst=DST6)
    for hdr in chain:
        pkt = pkt / hdr.copy()
    if isinstance(chain[-1], AH):
        pkt[AH].nh = IPPROTO_UDP if isinstance(upper, UDP) else IPPROTO_TCP
    pkt = pkt / upper.copy() / b"data"
    b = raw(pkt)
    h = parse_ipv6(b, 0)
    assert h.proto == (IPPROTO_UDP if isinstance(upper, UDP) else IPPROTO_TCP)
    assert h.l4_off == expected_l4_off(pkt, type(upper))
    assert (h.end, h.frag) == (len(b), False)
    assert h.nh == b[6]


@pytest.mark.parametrize("offset,m", [(0, 1), (1, 0), (100, 1), (8191, 0)])
def test_ipv6_fragment_header_reported(offset, m):
    pkt = IPv6(src=SRC6, dst=DST6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrFragment(offset=offset, m=m,
                                                                                id=7) / UDP()
    b = raw(pkt)
    h = parse_ipv6(b, 0)
    assert (h.frag, h.proto) == (True, IPPROTO_UDP)
    assert h.l4_off == expected_l4_off(pkt, UDP)


def test_ipv6_scapy_fragments_all_reported():
    from scapy.layers.inet6 import fragment6
    pkt = IPv6(src=SRC6, dst=DST6) / IPv6ExtHdrFragment() / UDP() / bytes(3000)
    frags = fragment6(pkt, 1280)
    assert len(frags) > 1
    assert all(parse_ipv6(raw(f), 0).frag for f in frags)


def test_ipv6_atomic_fragment_is_walked_through():
    pkt = IPv6(src=SRC6, dst=DST6) / IPv6ExtHdrFragment(offset=0, m=0) / TCP()
    h = parse_ipv6(raw(pkt), 0)
    assert (h.frag, h.proto, h.l4_off) == (False, IPPROTO_TCP, 48)


def test_ipv6_stops_at_esp_and_no_next_header():
    esp = raw(IPv6(src=SRC6, dst=DST6) / IPv6ExtHdrDestOpt(nh=IPPROTO_ESP)
              / bytes(16))
    h = parse_ipv6(esp, 0)
    assert (h.proto, h.l4_off) == (IPPROTO_ESP, 48)
    none = raw(IPv6(src=SRC6, dst=DST6) / IPv6ExtHdrDestOpt(nh=IPPROTO_NONE))
    h = parse_ipv6(none, 0)
    assert (h.proto, h.l4_off, h.end) == (IPPROTO_NONE, 48, 48)


def test_ipv6_hop_by_hop_must_come_first():
    pkt = IPv6(src=SRC6, dst=DST6) / IPv6ExtHdrDestOpt() / IPv6ExtHdrHopByHop() / UDP()
    with pytest.raises(Malformed, match="hop-by-hop not first"):
        parse_ipv6(raw(pkt), 0)


@pytest.mark.parametrize("cut", [41, 47, 60])
def test_ipv6_truncated_extension_header(cut):
    pkt = IPv6(src=SRC6, dst=DST6) / IPv6ExtHdrRouting(addresses=["2001:db8::3"]) / UDP()
    b = bytearray(raw(pkt)[:cut])
    b[4:6] = (cut - 40).to_bytes(2, "big")          # payload length consistent with the cut
    with pytest.raises(Malformed, match="short ipv6 extension header"):
        parse_ipv6(bytes(b), 0)


@pytest.mark.parametrize("mutate,reason", [
    (lambda b: b[:39], "short ipv6 header"),
    (lambda b: bytes([0x40]) + b[1:], "bad ipv6 version"),
    (lambda b: b[:4] + (len(b) - 39).to_bytes(2, "big") + b[6:], "bad ipv6 payload length"),
])
def test_ipv6_malformed(mutate, reason):
    b = raw(IPv6(src=SRC6, dst=DST6) / UDP() / bytes(10))
    with pytest.raises(Malformed, match=reason):
        parse_ipv6(mutate(b), 0)


def test_ipv6_trims_trailing_bytes_and_honours_end():
    b = raw(IPv6(src=SRC6, dst=DST6) / UDP() / bytes(10))
    assert parse_ipv6(b + b"junk", 0).end == len(b)
    with pytest.raises(Malformed):
        parse_ipv6(b + b"junk", 0, end=len(b) - 1)


def test_ipv6_gso_zero_payload_length_trusts_buffer():
    b = bytearray(raw(IPv6(src=SRC6, dst=DST6) / TCP() / bytes(500)))
    b[4:6] = bytes(2)
    h = parse_ipv6(b, 0, gso=True)
    assert (h.plen, h.end, h.proto, h.l4_off) == (0, len(b), IPPROTO_TCP, 40)
    h = parse_ipv6(b, 0, gso=False)                  # an empty packet, then: nothing after 40
    assert (h.end, h.proto) == (40, IPPROTO_TCP)


@FAST
@given(ip6s, ip6s, st.sampled_from([6, 17, 58]), st.integers(0, 0xFFFF), st.integers(0, 255),
       st.integers(0, 255), st.integers(0, 0xFFFFF))
def test_ipv6_pack_scapy_dissects(src, dst, nh, plen, hlim, tc, flow):
    buf = bytearray(IPV6_HLEN)
    assert pack_ipv6_into(buf, 0, src, dst, nh, plen, hlim, tc, flow) == IPV6_HLEN
    p = IPv6(bytes(buf))
    assert (p.version, p.src, p.dst, p.nh, p.plen, p.hlim, p.tc, p.fl) == \
        (6, a6(src), a6(dst), nh, plen, hlim, tc, flow)


def test_ipv6_pack_rejects_wrong_address_size():
    with pytest.raises(ValueError):
        pack_ipv6_into(bytearray(40), 0, bytes(4), bytes(16), 17, 0)


def test_ipv6_skip_exthdrs_direct():
    assert skip_ipv6_exthdrs(b"", 0, IPPROTO_ICMPV6, 0) == (IPPROTO_ICMPV6, 0, False)
    with pytest.raises(Malformed):
        skip_ipv6_exthdrs(bytes(7), 0, IPPROTO_HOPOPTS, 7)
    with pytest.raises(Malformed):
        skip_ipv6_exthdrs(bytes(7), 0, IPPROTO_FRAGMENT, 7)
    with pytest.raises(Malformed):
        skip_ipv6_exthdrs(bytes(7), 0, IPPROTO_AH, 7)


# --- pseudo-header sums -----------------------------------------------------------------------

@FAST
@given(ip4s, ip4s, st.sampled_from([IPPROTO_UDP, IPPROTO_TCP]), st.binary(min_size=20,
                                                                          max_size=200))
def test_ipv4_pseudo_sum_matches_scapy_in4_chksum(src, dst, proto, l4):
    l4 = bytearray(l4)
    field = 6 if proto == IPPROTO_UDP else 16
    l4[field:field + 2] = bytes(2)
    ours = csum(l4, pseudo_sum_ipv4(src, dst, proto, len(l4)))
    assert ours == in4_chksum(proto, IP(src=a4(src), dst=a4(dst)), bytes(l4))


@FAST
@given(ip6s, ip6s, st.sampled_from([IPPROTO_UDP, IPPROTO_TCP, IPPROTO_ICMPV6]),
       st.binary(min_size=20, max_size=200))
def test_ipv6_pseudo_sum_matches_scapy_in6_chksum(src, dst, proto, l4):
    l4 = bytearray(l4)
    field = {IPPROTO_UDP: 6, IPPROTO_TCP: 16, IPPROTO_ICMPV6: 2}[proto]
    l4[field:field + 2] = bytes(2)
    ours = csum(l4, pseudo_sum_ipv6(src, dst, proto, len(l4)))
    assert ours == in6_chksum(proto, IPv6(src=a6(src), dst=a6(dst)), bytes(l4))


def test_ipv6_pseudo_sum_large_length_folds_like_32_bits():
    src, dst = bytes(15) + b"\x01", bytes(15) + b"\x02"
    # 0x12345 as a 32-bit field is the words 0x0001 and 0x2345
    assert pseudo_sum_ipv6(src, dst, 6, 0x12345) == (1 + 2 + 6 + 0x0001 + 0x2345)


# --- fuzz -------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.integers(0, 10), st.one_of(st.none(), st.integers(0, 130)),
       st.booleans())
def test_ip_parsers_raise_only_malformed(data, off, end, gso):
    for parse in (parse_ipv4, parse_ipv6):
        try:
            h = parse(data, off, end, gso)
        except Malformed:
            continue
        limit = len(data) if end is None else min(end, len(data))
        assert off + 20 <= h.l4_off <= h.end <= limit


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.sampled_from([0, 43, 44, 51, 60, 6]))
def test_ipv6_ext_walk_on_random_bytes(data, nh):
    # a fixed header whose next header and payload length fit the random tail
    head = raw(IPv6(src=SRC6, dst=DST6, nh=nh, plen=len(data)))
    try:
        h = parse_ipv6(head + data, 0)
    except Malformed:
        return
    assert 40 <= h.l4_off <= h.end == 40 + len(data)
