"""pasta.core.arp: requests built and replies dissected with scapy (STYLE.md B7)."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings, strategies as st
from scapy.layers.l2 import ARP

from pasta.core import arp
from pasta.plan import config as C
from pasta.plan import netplan as NP
from pasta.util.errors import Malformed
from pasta.plan.linkctx import LinkCtx

OUR_MAC = "9a:55:9a:55:9a:55"
NS_MAC = "02:00:00:00:00:01"
NS_ADDR = "192.0.2.10"
GW = "192.0.2.1"


def make_ctx(**cfg_kw) -> LinkCtx:
    cfg = C.Config(**cfg_kw)
    plan = NP.NetPlan(ns_ifname="eth0", mtu=cfg.mtu, v4=NP.FamilyPlan(
        enabled=cfg.ipv4, addr=ipaddress.IPv4Address(NS_ADDR), prefix=24,
        gw=ipaddress.IPv4Address(GW)))
    return LinkCtx.from_config(cfg, plan, bytes.fromhex("020000000001"))


CTX = make_ctx()


def request(psrc=NS_ADDR, pdst=GW, hwsrc=NS_MAC, **kw) -> bytes:
    return bytes(ARP(op="who-has", hwsrc=hwsrc, psrc=psrc, hwdst="00:00:00:00:00:00",
                     pdst=pdst, **kw))


def test_arp_request_for_gateway_answered_with_our_mac():
    out = arp.reply(CTX, request())
    assert len(out) == 28
    rep = ARP(out)
    assert rep.hwtype == 1 and rep.ptype == 0x0800 and rep.hwlen == 6 and rep.plen == 4
    assert rep.op == 2
    assert rep.hwsrc == OUR_MAC and rep.psrc == GW
    assert rep.hwdst == NS_MAC and rep.pdst == NS_ADDR


def test_arp_request_for_any_other_address_answered():
    for target in ("192.0.2.77", "198.51.100.1", "8.8.8.8"):
        rep = ARP(arp.reply(CTX, request(pdst=target)))
        assert rep.psrc == target and rep.hwsrc == OUR_MAC


def test_arp_request_for_namespace_own_address_ignored():
    assert arp.reply(CTX, request(psrc="192.0.2.99", pdst=NS_ADDR)) is None


def test_arp_gratuitous_announcement_ignored():
    assert arp.reply(CTX, request(psrc="192.0.2.50", pdst="192.0.2.50")) is None


def test_arp_probe_from_zero_address_answered():
    rep = ARP(arp.reply(CTX, request(psrc="0.0.0.0", pdst="192.0.2.50")))
    assert rep.psrc == "192.0.2.50" and rep.pdst == "0.0.0.0" and rep.hwdst == NS_MAC


def test_arp_trailing_ethernet_padding_accepted():
    assert arp.reply(CTX, request() + bytes(18)) == arp.reply(CTX, request())


def test_arp_reply_and_non_ethernet_ipv4_ignored():
    assert arp.reply(CTX, bytes(ARP(op="is-at", psrc=GW, pdst=NS_ADDR))) is None
    assert arp.reply(CTX, bytes(ARP(op=3, psrc=NS_ADDR, pdst=GW))) is None
    bad_hw = bytearray(request())
    bad_hw[1] = 6                                  # htype IEEE 802
    assert arp.reply(CTX, bytes(bad_hw)) is None
    bad_pro = bytearray(request())
    bad_pro[2:4] = b"\x86\xdd"
    assert arp.reply(CTX, bytes(bad_pro)) is None


def test_arp_our_mac_option_respected():
    ctx = make_ctx(our_mac="02:aa:bb:cc:dd:ee")
    assert ARP(arp.reply(ctx, request())).hwsrc == "02:aa:bb:cc:dd:ee"


def test_arp_ipv4_disabled_ignored():
    assert arp.reply(make_ctx(ipv4=False), request()) is None


def test_arp_short_packet_malformed():
    try:
        arp.reply(CTX, request()[:27])
    except Malformed as exc:
        assert exc.reason.startswith("arp:")
    else:
        raise AssertionError("no Malformed")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_arp_any_bytes_reply_or_malformed(data):
    try:
        out = arp.reply(CTX, data)
    except Malformed:
        return
    assert out is None or (isinstance(out, bytes) and len(out) == 28 and out[6:8] == b"\x00\x02")


