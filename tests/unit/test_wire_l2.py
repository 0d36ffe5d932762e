"""Tests for pasta.core.wire.l2: Ethernet, ARP and virtio-net headers, against scapy and struct."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings, strategies as st
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.packet import raw

from pasta.util.errors import Malformed
from pasta.core.wire import build_arp_frame, parse_frame
from pasta.core.wire.l2 import (ARP_LEN, ARPOP_REPLY, ARPOP_REQUEST, ETH_HLEN, ETH_P_8021AD,
                           ETH_P_8021Q, ETH_P_ARP, ETH_P_IP, VIRTIO_NET_HDR_F_NEEDS_CSUM,
                           VIRTIO_NET_HDR_GSO_TCPV4, VNET_HDR_LEN, VnetHdr, pack_arp_into,
                           pack_eth_into, pack_vnet_into, parse_arp, parse_eth, parse_vnet)

FAST = settings(max_examples=100, deadline=None)
MAC_A = "02:00:00:00:00:0a"
MAC_B = "9a:55:9a:55:9a:55"


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


macs = st.binary(min_size=6, max_size=6)
ip4s = st.binary(min_size=4, max_size=4)


# --- Ethernet ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_eth_parse_scapy_frame(kind):
    frame = raw(Ether(dst=MAC_A, src=MAC_B, type=0x86DD) / (b"\x60" + bytes(39)))
    h = parse_eth(kind(frame), 0)
    assert (h.dst, h.src, h.ethertype, h.l3_off) == (mac(MAC_A), mac(MAC_B), 0x86DD, ETH_HLEN)


def test_eth_parse_at_offset():
    frame = bytes(7) + raw(Ether(dst=MAC_A, src=MAC_B, type=0x0806))
    assert parse_eth(frame, 7).l3_off == 7 + ETH_HLEN


@FAST
@given(macs, macs, st.integers(0x0600, 0xFFFF))   # below: 802.3 lengths for scapy
def test_eth_pack_scapy_dissects(dst, src, ethertype):
    buf = bytearray(ETH_HLEN)
    assert pack_eth_into(buf, 0, dst, src, ethertype) == ETH_HLEN
    p = Ether(bytes(buf))
    assert (mac(p.dst), mac(p.src), p.type) == (dst, src, ethertype)


def test_eth_short_is_malformed():
    with pytest.raises(Malformed, match="short ethernet header"):
        parse_eth(bytes(13), 0)
    with pytest.raises(Malformed):
        parse_eth(bytes(20), 7)


@pytest.mark.parametrize("tag,tpid", [(Dot1Q(vlan=5), ETH_P_8021Q), (Dot1AD(vlan=7), ETH_P_8021AD)])
def test_eth_vlan_tag_reported_then_dropped(tag, tpid):
    """Decision documented in pasta.core.wire.l2: tags are not stripped; parse_frame drops them."""
    frame = raw(Ether(dst=MAC_A, src=MAC_B) / tag / ARP(pdst="10.0.0.1"))
    assert parse_eth(frame, 0).ethertype == tpid
    with pytest.raises(Malformed, match="vlan tagged frame"):
        parse_frame(frame, False)


def test_eth_unknown_ethertype_is_dropped():
    frame = raw(Ether(dst=MAC_A, src=MAC_B, type=0x88CC) / bytes(40))
    with pytest.raises(Malformed, match="unsupported ethertype"):
        parse_frame(frame, False)


# --- ARP --------------------------------------------------------------------------------------

@FAST
@given(st.sampled_from([ARPOP_REQUEST, ARPOP_REPLY]), macs, ip4s, macs, ip4s)
def test_arp_parse_scapy_packet(op, sha, spa, tha, tpa):
    from ipaddress import IPv4Address
    p = ARP(op=op, hwsrc=sha.hex(":"), psrc=str(IPv4Address(spa)), hwdst=tha.hex(":"),
            pdst=str(IPv4Address(tpa)))
    h = parse_arp(raw(p), 0)
    assert (h.op, h.sha, h.spa, h.tha, h.tpa) == (op, sha, spa, tha, tpa)


def test_arp_parse_ignores_ethernet_padding():
    frame = raw(Ether(dst=MAC_A, src=MAC_B) / ARP(pdst="10.0.0.1") / bytes(18))
    assert len(frame) == 60
    assert parse_arp(frame, ETH_HLEN).tpa == bytes([10, 0, 0, 1])
    assert parse_frame(frame, False).end == ETH_HLEN + ARP_LEN


@pytest.mark.parametrize("fields", [dict(hwtype=6), dict(ptype=0x86DD), dict(hwlen=8),
                                    dict(plen=16)])
def test_arp_unsupported_hardware_or_protocol(fields):
    body = bytearray(raw(ARP(pdst="10.0.0.1")))
    if "hwtype" in fields:
        body[0:2] = fields["hwtype"].to_bytes(2, "big")
    if "ptype" in fields:
        body[2:4] = fields["ptype"].to_bytes(2, "big")
    if "hwlen" in fields:
        body[4] = fields["hwlen"]
    if "plen" in fields:
        body[5] = fields["plen"]
    with pytest.raises(Malformed, match="unsupported arp"):
        parse_arp(bytes(body), 0)


def test_arp_short_is_malformed():
    body = raw(ARP(pdst="10.0.0.1"))
    with pytest.raises(Malformed, match="short arp packet"):
        parse_arp(body[:27], 0)
    with pytest.raises(Malformed, match="short arp packet"):
        parse_arp(body, 0, end=27)


@FAST
@given(st.sampled_from([ARPOP_REQUEST, ARPOP_REPLY]), macs, ip4s, macs, ip4s, st.booleans())
def test_arp_build_frame_scapy_dissects(op, sha, spa, tha, tpa, vnet):
    frame = build_arp_frame(tha, sha, op, sha, spa, tha, tpa, vnet=vnet)
    if vnet:
        assert frame[:VNET_HDR_LEN] == bytes(VNET_HDR_LEN)
        frame = frame[VNET_HDR_LEN:]
    p = Ether(frame)
    assert p.type == ETH_P_ARP and (mac(p.dst), mac(p.src)) == (tha, sha)
    a = p[ARP]
    assert (a.hwtype, a.ptype, a.hwlen, a.plen, a.op) == (1, ETH_P_IP, 6, 4, op)
    assert (mac(a.hwsrc), mac(a.hwdst)) == (sha, tha)
    assert (a.psrc, a.pdst) == (".".join(map(str, spa)), ".".join(map(str, tpa)))


def test_arp_pack_into_returns_end():
    buf = bytearray(40)
    assert pack_arp_into(buf, 5, ARPOP_REPLY, mac(MAC_A), bytes(4), mac(MAC_B), bytes(4)) == 33


def test_arp_build_rejects_wrong_sizes():
    with pytest.raises(ValueError):
        build_arp_frame(mac(MAC_A), mac(MAC_B), 1, mac(MAC_B), bytes(16), mac(MAC_A), bytes(4))


# --- virtio-net header ------------------------------------------------------------------------

vnet_fields = st.tuples(st.integers(0, 255), st.integers(0, 255),
                        *[st.integers(0, 0xFFFF) for _ in range(5)])


@FAST
@given(vnet_fields)
def test_vnet_parse_struct_layout(fields):
    """Independent layout: struct virtio_net_hdr_v1, little-endian, as linux/virtio_net.h."""
    buf = struct.pack("<BBHHHHH", *fields)
    assert parse_vnet(buf, 0) == VnetHdr(*fields)


@FAST
@given(vnet_fields)
def test_vnet_pack_roundtrip(fields):
    buf = bytearray(VNET_HDR_LEN + 3)
    assert pack_vnet_into(buf, 3, *fields) == VNET_HDR_LEN + 3
    assert struct.unpack_from("<BBHHHHH", buf, 3) == fields


def test_vnet_named_fields():
    buf = struct.pack("<BBHHHHH", VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 66,
                      1448, 34, 16, 0)
    h = parse_vnet(buf, 0)
    assert (h.flags, h.gso_type, h.hdr_len, h.gso_size, h.csum_start, h.csum_offset) == \
        (1, 1, 66, 1448, 34, 16)


def test_vnet_short_is_malformed():
    with pytest.raises(Malformed, match="short vnet header"):
        parse_vnet(bytes(11), 0)


# --- fuzz -------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.integers(0, 70), st.one_of(st.none(), st.integers(0, 70)))
def test_l2_parsers_raise_only_malformed(data, off, end):
    for parse in (lambda: parse_eth(data, off), lambda: parse_arp(data, off, end),
                  lambda: parse_vnet(data, off)):
        try:
            parse()
        except Malformed:
            pass
