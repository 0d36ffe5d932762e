"""pasta.core.ndp: NS/RS built with scapy as the kernel sends them, NA/RA dissected with scapy."""

from __future__ import annotations

import ipaddress
import random

import pytest
from hypothesis import given, settings, strategies as st
from scapy.layers.inet6 import (ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6ND_RA,
                                ICMPv6ND_RS, ICMPv6NDOptDNSSL, ICMPv6NDOptDstLLAddr,
                                ICMPv6NDOptMTU, ICMPv6NDOptPrefixInfo, ICMPv6NDOptRDNSS,
                                ICMPv6NDOptSrcLLAddr, IPv6)

from pasta.plan import config as C
from pasta.core import ndp
from pasta.plan import netplan as NP
from pasta.util.errors import Malformed
from pasta.plan.linkctx import LinkCtx

IP6 = ipaddress.IPv6Address
OUR_MAC = "9a:55:9a:55:9a:55"
NS_MAC = "02:00:00:00:00:01"
NS_LL = "fe80::ff:fe00:1"
NS_ADDR = "2001:db8::10"
OUR_LL = "fe80::1"
RESOLV = "nameserver 2001:db8::53\nnameserver 2001:db8::54\nsearch example.com lab.example.com\n"


def make_ctx(resolv=RESOLV, addr=NS_ADDR, **cfg_kw) -> LinkCtx:
    cfg = C.Config(**cfg_kw)
    v6 = NP.FamilyPlan(enabled=True, addr=IP6(addr) if addr else None, prefix=64,
                       gw=IP6(OUR_LL), our_ll=IP6(OUR_LL))
    plan = NP.NetPlan(ns_ifname="eth0", mtu=cfg.mtu, v6=v6)
    return LinkCtx.from_config(cfg, plan, bytes.fromhex("020000000001"), resolv_conf=resolv)


CTX = make_ctx()


def icmp6(src, dst, msg) -> tuple[bytes, bytes, bytes]:
    """(ICMPv6 bytes as on the wire, src, dst): built under an IPv6 header so scapy fills the
    checksum, then cut out of the dissected packet."""
    pkt = IPv6(bytes(IPv6(src=src, dst=dst, hlim=255) / msg))
    return bytes(pkt.payload), IP6(src).packed, IP6(dst).packed


def ns(target, src=NS_LL, dst=None):
    dst = dst or "ff02::1:ff00:" + format(int(IP6(target)) & 0xffff, "x")
    return icmp6(src, dst, ICMPv6ND_NS(tgt=target) / ICMPv6NDOptSrcLLAddr(lladdr=NS_MAC))


def rs(src=NS_LL):
    msg = ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=NS_MAC) if src != "::" else ICMPv6ND_RS()
    return icmp6(src, "ff02::2", msg)


def test_ndp_ns_for_gateway_answered_with_na():
    msg, src, dst = ndp.reply(CTX, *ns(OUR_LL))
    assert src == IP6(OUR_LL).packed and dst == IP6(NS_LL).packed
    na = ICMPv6ND_NA(msg)
    assert na.type == 136 and na.code == 0 and na.cksum == 0
    assert na.R == 1 and na.S == 1 and na.O == 1
    assert na.tgt == OUR_LL
    opt = na[ICMPv6NDOptDstLLAddr]
    assert opt.type == 2 and opt.len == 1 and opt.lladdr == OUR_MAC
    assert len(msg) == 32


@pytest.mark.parametrize("target", ["2001:db8::1", "2001:db8::77", "fe80::1234", NS_ADDR])
def test_ndp_ns_for_any_target_answered(target):
    msg, _, dst = ndp.reply(CTX, *ns(target, src=NS_ADDR))
    assert ICMPv6ND_NA(msg).tgt == target and dst == IP6(NS_ADDR).packed


def test_ndp_ns_unicast_for_gateway_answered():
    msg, _, _ = ndp.reply(CTX, *ns(OUR_LL, dst=OUR_LL))
    assert ICMPv6ND_NA(msg).tgt == OUR_LL


def test_ndp_dad_probe_from_unspecified_ignored():
    payload, _, dst = icmp6("::", "ff02::1:ff00:10", ICMPv6ND_NS(tgt=NS_ADDR))
    assert ndp.reply(CTX, payload, bytes(16), dst) is None


def assert_ra(msg, mtu=65520):
    ra = ICMPv6ND_RA(msg)
    assert ra.type == 134 and ra.code == 0 and ra.cksum == 0
    assert ra.chlim == 255 and ra.M == 1 and ra.O == 0 and ra.H == 0
    assert ra.routerlifetime == 65535 and ra.reachabletime == 0 and ra.retranstimer == 0
    pi = ra[ICMPv6NDOptPrefixInfo]
    assert pi.len == 4 and pi.prefixlen == 64 and pi.L == 1 and pi.A == 1
    assert pi.validlifetime == 0xFFFFFFFF and pi.preferredlifetime == 0xFFFFFFFF
    assert pi.prefix == "2001:db8::"
    assert ra[ICMPv6NDOptSrcLLAddr].lladdr == OUR_MAC
    if mtu:
        assert ra[ICMPv6NDOptMTU].mtu == mtu and ra[ICMPv6NDOptMTU].len == 1
    else:
        assert ICMPv6NDOptMTU not in ra
    return ra


def option_types(msg: bytes, off: int = 16) -> list[int]:
    out = []
    while off < len(msg):
        out.append(msg[off])
        off += msg[off + 1] * 8
    assert off == len(msg)
    return out


def test_ndp_rs_answered_with_ra_to_solicitor():
    msg, src, dst = ndp.reply(CTX, *rs())
    assert src == IP6(OUR_LL).packed and dst == IP6(NS_LL).packed
    ra = assert_ra(msg)
    assert ICMPv6NDOptRDNSS not in ra and ICMPv6NDOptDNSSL not in ra
    assert option_types(msg) == [3, 1, 5]


def test_ndp_rs_from_unspecified_answered_to_all_nodes():
    payload, _, dst = rs(src="::")
    msg, _, out_dst = ndp.reply(CTX, payload, bytes(16), dst)
    assert out_dst == IP6("ff02::1").packed
    assert_ra(msg)


def test_ndp_ra_prefix_host_bits_cleared():
    msg, _, _ = ndp.reply(make_ctx(addr="2001:db8:1:2:aaaa:bbbb:cccc:dddd"), *rs())
    assert ICMPv6ND_RA(msg)[ICMPv6NDOptPrefixInfo].prefix == "2001:db8:1:2::"


def test_ndp_ra_rdnss_only_with_dhcp_dns():
    msg, _, _ = ndp.reply(make_ctx(dhcp_dns=True), *rs())
    ra = assert_ra(msg)
    rdnss = ra[ICMPv6NDOptRDNSS]
    assert rdnss.dns == ["2001:db8::53", "2001:db8::54"] and rdnss.len == 5
    assert rdnss.lifetime == 0xFFFFFFFF
    assert ICMPv6NDOptDNSSL not in ra
    assert option_types(msg) == [3, 1, 5, 25]


def test_ndp_ra_dnssl_with_dhcp_dns_and_dhcp_search():
    msg, _, _ = ndp.reply(make_ctx(dhcp_dns=True, dhcp_search=True), *rs())
    ra = assert_ra(msg)
    dnssl = ra[ICMPv6NDOptDNSSL]
    assert [n.rstrip(".") for n in dnssl.searchlist] == ["example.com", "lab.example.com"]
    assert dnssl.lifetime == 0xFFFFFFFF
    assert option_types(msg) == [3, 1, 5, 25, 31]


def test_ndp_ra_dnssl_needs_rdnss_as_in_pasta():
    msg, _, _ = ndp.reply(make_ctx(dhcp_search=True), *rs())
    assert option_types(msg) == [3, 1, 5]
    msg, _, _ = ndp.reply(make_ctx(resolv="search example.com\n", dhcp_dns=True,
                                   dhcp_search=True), *rs())
    assert option_types(msg) == [3, 1, 5]


def test_ndp_ra_dnssl_padding_exact_when_names_fill_eight_bytes():
    # "abcde.fg" encodes to 10 bytes, "abcdefghijkl.mn" to 17: 27 -> padded to 32 (len 5)
    ctx = make_ctx(dhcp_dns=True, dhcp_search=True, search=("abcde.fg", "abcdefghijkl.mn"))
    msg, _, _ = ndp.reply(ctx, *rs())
    assert ICMPv6ND_RA(msg)[ICMPv6NDOptDNSSL].len == 5
    option_types(msg)
    # "abcdefghijkl.o" encodes to exactly 16 bytes: no padding at all (len 1 + 2)
    ctx = make_ctx(dhcp_dns=True, dhcp_search=True, search=("abcdefghijkl.o",))
    msg = ndp.reply(ctx, *rs())[0]
    dnssl = ICMPv6ND_RA(msg)[ICMPv6NDOptDNSSL]
    assert dnssl.len == 3 and [n.rstrip(".") for n in dnssl.searchlist] == ["abcdefghijkl.o"]
    option_types(msg)


def test_ndp_ra_mtu_option_follows_config():
    assert_ra(ndp.reply(make_ctx(mtu=1500), *rs())[0], mtu=1500)
    msg = ndp.reply(make_ctx(mtu=0), *rs())[0]
    assert_ra(msg, mtu=0)
    assert option_types(msg) == [3, 1]


def test_ndp_ra_without_address_has_no_prefix():
    msg, _, _ = ndp.reply(make_ctx(addr=None), *rs())
    assert ICMPv6NDOptPrefixInfo not in ICMPv6ND_RA(msg)
    assert option_types(msg) == [1, 5]


def test_ndp_no_ra_ignores_rs_but_answers_ns():
    for ctx in (make_ctx(no_ra=True), make_ctx(config_net=True)):
        assert ndp.reply(ctx, *rs()) is None
        assert ndp.reply(ctx, *ns(OUR_LL)) is not None
        assert ndp.unsolicited_ra(ctx) is None


def test_ndp_no_ndp_ignores_everything():
    ctx = make_ctx(no_ndp=True)
    assert ndp.reply(ctx, *rs()) is None and ndp.reply(ctx, *ns(OUR_LL)) is None
    assert ndp.unsolicited_ra(ctx) is None


def test_ndp_ra_na_and_non_ndp_types_ignored():
    for msg in (ICMPv6ND_RA(), ICMPv6ND_NA(tgt=NS_ADDR), ICMPv6EchoRequest()):
        assert ndp.reply(CTX, *icmp6(NS_LL, "ff02::1", msg)) is None


def test_ndp_unsolicited_ra_to_all_nodes():
    msg, src, dst = ndp.unsolicited_ra(make_ctx(dhcp_dns=True))
    assert src == IP6(OUR_LL).packed and dst == IP6("ff02::1").packed
    assert msg == ndp.reply(make_ctx(dhcp_dns=True), *rs())[0]
    assert_ra(msg)


def test_ndp_next_deadline_random_200_to_600_seconds():
    rng = random.Random(4)
    gaps = [ndp.next_deadline(1000.0, rng) - 1000.0 for _ in range(2000)]
    assert all(200 <= g < 600 and g == int(g) for g in gaps)
    assert min(gaps) < 220 and max(gaps) > 580
    assert ndp.next_deadline(5.0, random.Random(1)) == ndp.next_deadline(5.0, random.Random(1))


def test_ndp_first_unsolicited_ra_not_before_200_seconds():
    # An RA before the namespace's link-local address is usable breaks dhclient -6 (issue 13):
    # the first one comes a whole interval after start, as pasta's.
    rng = random.Random(7)
    assert all(200 <= ndp.first_deadline(3.0, rng) - 3.0 < 600 for _ in range(500))


@pytest.mark.parametrize("payload", [
    b"",
    b"\x87\x00\x00",
    bytes([135, 0, 0, 0]) + bytes(19),                                # NS without full target
    bytes([133, 0, 0, 0, 0, 0, 0]),                                   # short RS
    bytes([133, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]),        # zero-length option
    bytes([133, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0]),        # option past the end
    bytes([135, 0, 0, 0]) + bytes(20) + b"\x01",                      # truncated option
])
def test_ndp_malformed_raises(payload):
    with pytest.raises(Malformed):
        ndp.reply(CTX, payload, IP6(NS_LL).packed, IP6("ff02::2").packed)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80), st.sampled_from([bytes(16), IP6(NS_LL).packed]),
       st.integers(133, 136))
def test_ndp_any_bytes_reply_or_malformed(data, src, mtype):
    for payload in (data, bytes([mtype]) + data):
        try:
            out = ndp.reply(CTX, payload, src, IP6("ff02::1").packed)
        except Malformed:
            continue
        if out is not None:
            msg, osrc, odst = out
            assert osrc == IP6(OUR_LL).packed and len(odst) == 16
            assert msg[0] in (134, 136) and msg[2:4] == b"\x00\x00"


