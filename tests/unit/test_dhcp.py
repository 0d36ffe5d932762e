"""pasta.core.dhcp and pasta.plan.linkctx (LinkCtx, dns_offer): requests as udhcpc, dhclient and
systemd-networkd send them, built and dissected with scapy (STYLE.md B7)."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings, strategies as st
from scapy.layers.dhcp import BOOTP, DHCP, DHCPOptions
from scapy.layers.dns import dns_get_str

from pasta.plan import config as C
from pasta.core import dhcp
from pasta.plan import netplan as NP
from pasta.util.errors import Malformed
from pasta.plan.linkctx import LinkCtx, dns_match, dns_offer, encode_name, parse_resolv_conf

IP4 = ipaddress.IPv4Address
IP6 = ipaddress.IPv6Address
NS_MAC = bytes.fromhex("020000000001")
NS_ADDR = "192.0.2.10"
GW = "192.0.2.1"
XID = 0x1A2B3C4D
RESOLV = "nameserver 198.51.100.53\nnameserver 2001:db8::53\nsearch example.com lab.example.com\n"


def make_plan(addr=NS_ADDR, prefix=24, gw=GW, v6=True, mtu=C.MTU_DEFAULT) -> NP.NetPlan:
    v4 = NP.FamilyPlan(enabled=True, addr=IP4(addr), prefix=prefix,
                       gw=IP4(gw) if gw else None)
    p6 = NP.FamilyPlan(enabled=True, addr=IP6("2001:db8::10"), prefix=64, gw=IP6("fe80::1"),
                       our_ll=IP6("fe80::1")) if v6 else NP.FamilyPlan()
    return NP.NetPlan(ns_ifname="eth0", mtu=mtu, v4=v4, v6=p6)


def make_ctx(resolv=RESOLV, plan_kw=None, **cfg_kw) -> LinkCtx:
    cfg = C.Config(**cfg_kw)
    plan = make_plan(mtu=cfg.mtu, **(plan_kw or {}))
    return LinkCtx.from_config(cfg, plan, NS_MAC, resolv_conf=resolv)


CTX = make_ctx()
UDHCPC_PRL = [1, 3, 6, 12, 15, 28, 42]
DHCLIENT_PRL = [1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42]


def bootp(options, flags=0, ciaddr="0.0.0.0", giaddr="0.0.0.0", secs=3, **kw) -> bytes:
    return bytes(BOOTP(op=1, htype=1, hlen=6, hops=0, xid=XID, secs=secs, flags=flags,
                       ciaddr=ciaddr, giaddr=giaddr, chaddr=NS_MAC + bytes(10), **kw)
                 / DHCP(options=options))


def udhcpc(kind, **kw) -> bytes:
    """BusyBox udhcpc 1.36: client id, max size, PRL, vendor class (and, for REQUEST, the
    requested address and server id)."""
    opts = [("message-type", kind), ("client_id", b"\x01" + NS_MAC), ("max_dhcp_size", 576)]
    if kind == "request":
        opts += [("requested_addr", NS_ADDR), ("server_id", GW)]
    opts += [("param_req_list", UDHCPC_PRL), ("vendor_class_id", b"udhcp 1.36.1"), "end"]
    return bootp(opts, **kw)


def dhclient(kind, requested=NS_ADDR, **kw) -> bytes:
    """ISC dhclient 4.4 with Debian's dhclient.conf: hostname and a long PRL, no client id."""
    opts = [("message-type", kind)]
    if kind == "request":
        opts += [("server_id", GW), ("requested_addr", requested)]
    opts += [("hostname", b"ns"), ("param_req_list", DHCLIENT_PRL), "end"]
    return bootp(opts, **kw)


def networkd_discover() -> bytes:
    """systemd-networkd 255: client id (IAID+DUID), max size, PRL, rapid commit."""
    return bootp([("message-type", "discover"),
                  ("client_id", b"\xff" + bytes(4) + b"\x00\x04" + bytes(16)),
                  ("max_dhcp_size", 1472), ("param_req_list", [1, 3, 6, 15, 26, 119, 121]),
                  ("rapid_commit", b""), "end"])


def answer(ctx, payload):
    out = dhcp.reply(ctx, payload)
    assert out is not None
    data, dst = out
    pkt = BOOTP(data)
    opts = {o[0]: o[1:] for o in pkt[DHCP].options if isinstance(o, tuple)}
    return pkt, opts, dst, data


def raw_options(data: bytes) -> list[tuple[int, bytes]]:
    """Independent TLV walk of the reply's options area (code, value), up to END."""
    out, off = [], 240
    while data[off] != 255:
        code, olen = data[off], data[off + 1]
        out.append((code, data[off + 2:off + 2 + olen]))
        off += 2 + olen
    return out


def assert_common_reply(pkt, opts, msg_type):
    assert pkt.op == 2 and pkt.htype == 1 and pkt.hlen == 6 and pkt.hops == 0
    assert pkt.xid == XID and pkt.secs == 0
    assert pkt.yiaddr == NS_ADDR and pkt.siaddr == "0.0.0.0"
    assert pkt.chaddr[:6] == NS_MAC
    assert pkt.sname == bytes(64) and pkt.file == bytes(128)
    assert opts["message-type"] == (msg_type,)
    assert opts["subnet_mask"] == ("255.255.255.0",)
    assert opts["router"] == (GW,)
    assert opts["server_id"] == (GW,)
    assert opts["lease_time"] == (0xFFFFFFFF,)
    assert opts["interface-mtu"] == (65520,)


def test_dhcp_udhcpc_discover_gets_offer():
    pkt, opts, dst, data = answer(CTX, udhcpc("discover"))
    assert_common_reply(pkt, opts, 2)
    assert dst == IP4(NS_ADDR).packed
    assert "name_server" not in opts and 119 not in dict(raw_options(data))
    assert "rapid_commit" not in opts and "classless_static_routes" not in opts


def test_dhcp_udhcpc_request_gets_ack_unicast():
    pkt, opts, dst, _ = answer(CTX, udhcpc("request"))
    assert_common_reply(pkt, opts, 5)
    assert dst == IP4(NS_ADDR).packed
    assert pkt.flags == 0


def test_dhcp_broadcast_flag_sends_to_broadcast_and_is_echoed():
    pkt, _, dst, _ = answer(CTX, udhcpc("discover", flags=0x8000))
    assert dst == b"\xff\xff\xff\xff"
    assert pkt.flags == 0x8000


def test_dhcp_ciaddr_and_giaddr_echoed():
    pkt, _, _, _ = answer(CTX, dhclient("request", ciaddr=NS_ADDR, giaddr="192.0.2.254"))
    assert pkt.ciaddr == NS_ADDR and pkt.giaddr == "192.0.2.254"


def test_dhcp_dhclient_options_follow_parameter_request_list():
    for kind, mtype in (("discover", 2), ("request", 5)):
        pkt, opts, _, data = answer(CTX, dhclient(kind))
        assert_common_reply(pkt, opts, mtype)
        codes = [c for c, _ in raw_options(data)]
        # 53 is not requested, so it comes first; then PRL order; then the rest by number
        assert codes == [53, 1, 3, 26, 51, 54]


def test_dhcp_message_type_in_request_list_keeps_its_place():
    data = dhcp.reply(CTX, bootp([("message-type", "discover"),
                                  ("param_req_list", [3, 53, 1]), "end"]))[0]
    assert [c for c, _ in raw_options(data)] == [3, 53, 1, 26, 51, 54]


def test_dhcp_duplicate_request_list_entries_sent_once():
    data = dhcp.reply(CTX, bootp([("message-type", "discover"),
                                  ("param_req_list", [1, 1, 3]), "end"]))[0]
    assert [c for c, _ in raw_options(data)] == [53, 1, 3, 26, 51, 54]


def test_dhcp_plain_bootp_without_message_type_gets_ack():
    pkt, opts, _, data = answer(CTX, bootp(["end"]))
    assert_common_reply(pkt, opts, 5)
    assert raw_options(data)[0][0] == 53


def test_dhcp_rapid_commit_discover_gets_ack_with_rapid_commit():
    pkt, opts, _, data = answer(CTX, networkd_discover())
    assert opts["message-type"] == (5,)
    assert dict(raw_options(data))[80] == b""
    assert pkt.yiaddr == NS_ADDR


def test_dhcp_request_for_other_address_still_acks_assigned_one():
    pkt, opts, _, _ = answer(CTX, dhclient("request", requested="192.0.2.200"))
    assert opts["message-type"] == (5,) and pkt.yiaddr == NS_ADDR


@pytest.mark.parametrize("kind", ["release", "decline", "offer", "ack", "nak"])
def test_dhcp_other_message_types_ignored(kind):
    assert dhcp.reply(CTX, bootp([("message-type", kind), ("server_id", GW), "end"])) is None


def dhclient_release(kind) -> bytes:
    """RELEASE / DECLINE as dhclient sends them: ciaddr (RELEASE) or requested address
    (DECLINE), server id, client id."""
    opts = [("message-type", kind), ("server_id", GW), ("client_id", b"\x01" + NS_MAC)]
    if kind == "decline":
        return bootp(opts + [("requested_addr", NS_ADDR), "end"])
    return bootp(opts + ["end"], ciaddr=NS_ADDR)


@pytest.mark.parametrize("kind", ["release", "decline"])
def test_dhcp_release_and_decline_ignored_without_lease_table(kind):
    assert dhcp.reply(CTX, dhclient_release(kind)) is None
    # and nothing changed: the next request still gets the one assigned address
    pkt, opts, _, _ = answer(CTX, udhcpc("request"))
    assert opts["message-type"] == (5,) and pkt.yiaddr == NS_ADDR


# ---------------------------------------------------------------- INFORM (RFC 2131 4.3.5)


def inform(ciaddr=NS_ADDR, prl=DHCLIENT_PRL, extra=(), **kw) -> bytes:
    """DHCPINFORM as dhcpcd --inform sends it: ciaddr set, client id, PRL, no requested address."""
    opts = [("message-type", "inform"), ("client_id", b"\x01" + NS_MAC), *extra]
    if prl is not None:
        opts.append(("param_req_list", prl))
    return bootp(opts + ["end"], ciaddr=ciaddr, **kw)


def assert_inform_ack(pkt, opts, dst, ciaddr=NS_ADDR):
    assert pkt.op == 2 and pkt.htype == 1 and pkt.hlen == 6 and pkt.hops == 0
    assert pkt.xid == XID and pkt.secs == 0
    assert pkt.ciaddr == ciaddr and pkt.yiaddr == "0.0.0.0" and pkt.siaddr == "0.0.0.0"
    assert pkt.chaddr[:6] == NS_MAC
    assert pkt.sname == bytes(64) and pkt.file == bytes(128)
    assert opts["message-type"] == (5,)
    assert opts["subnet_mask"] == ("255.255.255.0",)
    assert opts["router"] == (GW,)
    assert opts["server_id"] == (GW,)
    assert opts["interface-mtu"] == (65520,)
    assert "lease_time" not in opts and "rapid_commit" not in opts
    assert dst == IP4(ciaddr).packed


def test_dhcp_inform_gets_ack_to_ciaddr_without_lease():
    pkt, opts, dst, data = answer(CTX, inform())
    assert_inform_ack(pkt, opts, dst)
    # 53 is not requested, so first; then PRL order (1, 3, 26); then 54; never 51
    assert [c for c, _ in raw_options(data)] == [53, 1, 3, 26, 54]


def test_dhcp_inform_without_request_list_sorted_by_number():
    pkt, opts, dst, data = answer(CTX, inform(prl=None))
    assert_inform_ack(pkt, opts, dst)
    assert [c for c, _ in raw_options(data)] == [53, 1, 3, 26, 54]


def test_dhcp_inform_message_type_in_request_list_keeps_its_place():
    data = dhcp.reply(CTX, inform(prl=[3, 53, 1]))[0]
    assert [c for c, _ in raw_options(data)] == [3, 53, 1, 26, 54]


def test_dhcp_inform_dns_and_search_as_for_ack():
    ctx = make_ctx(dhcp_dns=True, dhcp_search=True)
    pkt, opts, dst, data = answer(ctx, inform())
    assert_inform_ack(pkt, opts, dst)
    assert opts["name_server"] == ("198.51.100.53",)
    raw = dict(raw_options(data))
    assert decode_search(raw[119]) == ["example.com", "lab.example.com"]
    assert [c for c, _ in raw_options(data)] == [53, 1, 3, 6, 119, 26, 54]
    # the same options, in the same places, as the ACK to a REQUEST, minus the lease time
    ack = dhcp.reply(ctx, dhclient("request"))[0]
    assert [o for o in raw_options(ack) if o[0] != 51] == raw_options(data)
    assert data[:12] == ack[:12] and data[16:20] == bytes(4) and ack[16:20] == IP4(NS_ADDR).packed


def test_dhcp_inform_no_dns_or_search_without_the_switches():
    _, opts, _, data = answer(make_ctx(), inform())
    assert "name_server" not in opts and 119 not in dict(raw_options(data))


def test_dhcp_inform_mtu_zero_leaves_mtu_out():
    _, opts, _, _ = answer(make_ctx(mtu=0), inform())
    assert "interface-mtu" not in opts and "lease_time" not in opts


def test_dhcp_inform_from_other_address_answered_there_broadcast_flag_echoed():
    # the client's address came from elsewhere: unicast to it, even with the broadcast flag
    pkt, opts, dst, _ = answer(CTX, inform(ciaddr="192.0.2.77", flags=0x8000))
    assert_inform_ack(pkt, opts, dst, ciaddr="192.0.2.77")
    assert pkt.flags == 0x8000 and dst != b"\xff\xff\xff\xff"


def test_dhcp_inform_ignores_requested_address_and_rapid_commit():
    extra = [("requested_addr", "192.0.2.200"), ("rapid_commit", b"")]
    pkt, opts, dst, data = answer(CTX, inform(extra=extra))
    assert_inform_ack(pkt, opts, dst)
    assert 80 not in dict(raw_options(data)) and 51 not in dict(raw_options(data))


def test_dhcp_inform_gateway_outside_subnet_keeps_classless_routes():
    ctx = make_ctx(plan_kw={"prefix": 32})
    _, opts, _, _ = answer(ctx, inform())
    assert opts["classless_static_routes"] == (["192.0.2.1/32:0.0.0.0", "0.0.0.0/0:192.0.2.1"],)
    assert "lease_time" not in opts


def test_dhcp_inform_without_ciaddr_is_malformed():
    with pytest.raises(Malformed):
        dhcp.reply(CTX, inform(ciaddr="0.0.0.0"))
    with pytest.raises(Malformed):
        dhcp.reply(CTX, bootp([("message-type", "inform"), ("server_id", GW), "end"]))


def test_dhcp_inform_disabled_ignored():
    assert dhcp.reply(make_ctx(no_dhcp=True), inform()) is None


def test_dhcp_bootreply_op_ignored():
    payload = bytearray(udhcpc("discover"))
    payload[0] = 2
    assert dhcp.reply(CTX, bytes(payload)) is None


def test_dhcp_disabled_or_without_gateway_ignored():
    assert dhcp.reply(make_ctx(no_dhcp=True), udhcpc("discover")) is None
    assert dhcp.reply(make_ctx(plan_kw={"gw": None}), udhcpc("discover")) is None
    no_v4 = NP.NetPlan(ns_ifname="eth0", mtu=C.MTU_DEFAULT, v6=make_plan().v6)
    assert dhcp.reply(LinkCtx.from_config(C.Config(), no_v4, NS_MAC), udhcpc("discover")) is None


def test_dhcp_dns_sent_only_with_dhcp_dns():
    _, opts, _, _ = answer(make_ctx(dhcp_dns=True), dhclient("discover"))
    assert opts["name_server"] == ("198.51.100.53",)
    _, opts, _, _ = answer(make_ctx(dhcp_dns=True, dns=(IP4("192.0.2.53"), IP4("203.0.113.1"))),
                           dhclient("discover"))
    assert opts["name_server"] == ("192.0.2.53", "203.0.113.1")
    _, opts, _, _ = answer(make_ctx(dhcp_dns=True, resolv=""), dhclient("discover"))
    assert "name_server" not in opts


def decode_search(value: bytes) -> list[str]:
    names, rest = [], value
    while rest:
        name, rest = dns_get_str(rest, full=value)[:2]
        names.append(name.decode().rstrip("."))
    return names


def test_dhcp_search_sent_only_with_dhcp_search_and_compressed():
    data = dhcp.reply(make_ctx(dhcp_search=True), dhclient("discover"))[0]
    raw = dict(raw_options(data))
    assert decode_search(raw[119]) == ["example.com", "lab.example.com"]
    assert b"\xc0" in raw[119]                     # second name points at the first
    assert [c for c, _ in raw_options(data)] == [53, 1, 3, 119, 26, 51, 54]
    data = dhcp.reply(make_ctx(dhcp_dns=True), dhclient("discover"))[0]
    assert 119 not in dict(raw_options(data))


def test_dhcp_search_option_respects_length_limit():
    long = tuple(f"{'x' * 60}.{'y' * 60}.d{i}.example" for i in range(6))
    data = dhcp.reply(make_ctx(dhcp_search=True, search=long), dhclient("discover"))[0]
    raw = dict(raw_options(data))
    assert len(raw[119]) <= 255
    assert decode_search(raw[119]) == list(long[:len(decode_search(raw[119]))])
    assert len(data) - 240 <= 308


def test_dhcp_mtu_option():
    _, opts, _, _ = answer(make_ctx(mtu=1500), udhcpc("discover"))
    assert opts["interface-mtu"] == (1500,)
    _, opts, _, _ = answer(make_ctx(mtu=0), udhcpc("discover"))
    assert "interface-mtu" not in opts


def test_dhcp_gateway_outside_subnet_adds_classless_routes():
    ctx = make_ctx(plan_kw={"prefix": 32})
    _, opts, _, _ = answer(ctx, dhclient("discover"))
    assert opts["subnet_mask"] == ("255.255.255.255",)
    assert opts["classless_static_routes"] == (["192.0.2.1/32:0.0.0.0", "0.0.0.0/0:192.0.2.1"],)


def test_dhcp_options_area_padded_and_terminated():
    _, _, _, data = answer(CTX, bootp(["end"]))
    area = data[240:]
    assert len(area) >= 60
    walked = 0
    while area[walked] != 255:
        walked += 2 + area[walked + 1]
    assert set(area[walked + 1:]) <= {0}


def test_dhcp_overloaded_file_field_is_read():
    # message type DISCOVER only in the file field, announced by option 52 = 1
    file_field = bytes([53, 1, 1, 255]) + bytes(124)
    payload = bootp([("dhcp-option-overload", 1), "end"], file=file_field)
    _, opts, _, _ = answer(CTX, payload)
    assert opts["message-type"] == (2,)


def test_dhcp_pad_options_skipped():
    payload = bootp(["pad", "pad", ("message-type", "discover"), "pad", "end"])
    _, opts, _, _ = answer(CTX, payload)
    assert opts["message-type"] == (2,)


@pytest.mark.parametrize("payload", [
    b"",
    bytes(239),
    bytes(236) + b"\x63\x82\x53\x64",                           # wrong magic cookie
    bytes([1]) + bytes(235) + b"\x63\x82\x53\x63" + b"\x35\x05\x01",   # option past the end
    bytes([1]) + bytes(235) + b"\x63\x82\x53\x63" + b"\x35",           # truncated header
    bytes([1]) + bytes(235) + b"\x63\x82\x53\x63" + b"\x34\x01\x07\xff",  # bad overload
])
def test_dhcp_malformed_raises(payload):
    with pytest.raises(Malformed):
        dhcp.reply(CTX, payload)


HEADER = bytes([1, 1, 6, 0]) + bytes(232) + b"\x63\x82\x53\x63"
CIADDR = IP4("198.51.100.9").packed
# with a ciaddr and a message type in front, so that INFORM (8) and the others are reached too
HEADER_CI = bytes([1, 1, 6, 0]) + bytes(8) + CIADDR + bytes(220) + b"\x63\x82\x53\x63"


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.binary(max_size=80).map(lambda b: HEADER + b),
                 st.tuples(st.integers(0, 9), st.booleans(), st.binary(max_size=60))
                 .map(lambda t: HEADER_CI + bytes([53, 1, t[0]]) + b"\xff" * t[1] + t[2])))
def test_dhcp_any_bytes_reply_or_malformed(data):
    try:
        out = dhcp.reply(CTX, data)
    except Malformed:
        return
    if out is not None:
        payload, dst = out
        assert 300 <= len(payload) <= 240 + 308
        pkt = BOOTP(payload)
        opts = {o[0]: o[1:] for o in pkt[DHCP].options if isinstance(o, tuple)}
        if pkt.yiaddr == "0.0.0.0":                     # the ACK to an INFORM
            assert opts["message-type"] == (5,) and "lease_time" not in opts
            assert dst == data[12:16] != bytes(4)
        else:
            assert pkt.yiaddr == NS_ADDR and opts["lease_time"] == (0xFFFFFFFF,)
            assert dst in (b"\xff" * 4, IP4(NS_ADDR).packed)



def test_dhcp_option_codes_match_scapy_names():
    names = {1: "subnet_mask", 3: "router", 6: "name_server", 26: "interface-mtu",
             51: "lease_time", 53: "message-type", 54: "server_id", 80: "rapid_commit"}
    for code, name in names.items():
        opt = DHCPOptions[code]
        assert (opt if isinstance(opt, str) else opt.name) == name
        assert code in {int(o) for o in dhcp.DhcpOpt}


# ---------------------------------------------------------------- LinkCtx and dns_offer


def test_linkctx_from_config_packs_addresses_and_flags():
    ctx = make_ctx(dhcp_dns=True, dhcp_search=True)
    assert ctx.our_mac == bytes.fromhex("9a559a559a55") and ctx.guest_mac == NS_MAC
    assert ctx.v4.addr == IP4(NS_ADDR).packed and ctx.v4.gw == IP4(GW).packed
    assert ctx.v4.prefix_len == 24 and ctx.v4.dns == (IP4("198.51.100.53").packed,)
    assert ctx.v6.addr == IP6("2001:db8::10").packed and ctx.v6.our_ll == IP6("fe80::1").packed
    assert ctx.v6.dns == (IP6("2001:db8::53").packed,)
    assert ctx.search == ("example.com", "lab.example.com") and ctx.mtu == 65520
    assert not (ctx.no_dhcp or ctx.no_ndp or ctx.no_dhcpv6 or ctx.no_ra)
    assert ctx.dhcp_dns and ctx.dhcp_search
    assert make_ctx(mtu=0).mtu is None
    assert make_ctx(config_net=True).no_ra
    assert make_ctx(plan_kw={"v6": False}).no_ndp and make_ctx(plan_kw={"v6": False}).no_dhcpv6
    assert ctx.with_guest_mac(bytes(6)).guest_mac == bytes(6)


def offer(resolv, plan=None, **cfg_kw):
    return dns_offer(C.Config(**cfg_kw), plan or make_plan(), resolv)


DNS_TABLE = [
    # (resolv.conf, config, expected dns4, dns6, host4, host6)
    ("nameserver 127.0.0.53\n", {}, ["192.0.2.1"], [], "127.0.0.53", None),
    ("nameserver 127.0.0.53\n", {"no_map_gw": True}, [], [], "127.0.0.53", None),
    ("nameserver 127.0.0.53\n", {"map_host_loopback_none": True}, [], [], "127.0.0.53", None),
    ("nameserver 127.0.0.53\n", {"map_host_loopback4": IP4("192.0.2.2")}, ["192.0.2.2"], [],
     "127.0.0.53", None),
    ("nameserver 127.0.0.53\n", {"no_map_gw": True, "dns_forward4": IP4("192.0.2.3")},
     ["192.0.2.3"], [], "127.0.0.53", None),
    ("nameserver 198.51.100.1\nnameserver 127.0.0.1\nnameserver 127.0.0.53\n", {},
     ["198.51.100.1", "192.0.2.1"], [], "198.51.100.1", None),
    ("nameserver 192.0.2.1\n", {}, ["192.0.2.1"], [], "192.0.2.1", None),
    ("nameserver ::1\nnameserver 2001:db8::53\n", {}, [], ["fe80::1", "2001:db8::53"], None,
     "::1"),
    ("nameserver fe80::53%eth0\n", {}, [], ["fe80::53"], None, "fe80::53"),
    ("nameserver 1.1.1.1\nnameserver 1.0.0.1\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n", {},
     ["1.1.1.1", "1.0.0.1", "8.8.8.8"], [], "1.1.1.1", None),
    (RESOLV, {"dns": (IP4("192.0.2.53"),)}, ["192.0.2.53"], ["2001:db8::53"], None,
     "2001:db8::53"),
    (RESOLV, {"dns": (IP4("192.0.2.53"), IP6("2001:db8::99")), "dns_host4": IP4("10.0.0.1")},
     ["192.0.2.53"], ["2001:db8::99"], "10.0.0.1", None),
    (RESOLV, {"dns_none": True}, [], [], None, None),
    (RESOLV, {"dns_none": True, "dns_host4": IP4("10.0.0.1")}, [], [], None, None),
    ("nameserver  bogus\nnameserver 198.51.100.7 # comment\nnameserver\t9.9.9.9\n", {},
     [], [], None, None),
    ("", {}, [], [], None, None),
]


@pytest.mark.parametrize("resolv,cfg,dns4,dns6,host4,host6", DNS_TABLE)
def test_dns_offer_table(resolv, cfg, dns4, dns6, host4, host6):
    res = offer(resolv, **cfg)
    assert [str(a) for a in res.dns4] == dns4
    assert [str(a) for a in res.dns6] == dns6
    assert (str(res.dns_host4) if res.dns_host4 else None) == host4
    assert (str(res.dns_host6) if res.dns_host6 else None) == host6


def test_dns_offer_ipv6_disabled_in_plan_skips_v6_nameservers():
    res = offer(RESOLV, plan=make_plan(v6=False))
    assert res.dns6 == () and res.dns_host6 is None and len(res.dns4) == 1


def test_dns_offer_no_gateway_means_no_mapping():
    res = offer("nameserver 127.0.0.53\n", plan=make_plan(gw=None))
    assert res.dns4 == () and res.dns_host4 == IP4("127.0.0.53")


def test_dns_match_follows_loopback_mapping_and_forward():
    assert dns_match(C.Config(), make_plan(), "nameserver 127.0.0.53\n").match4 == IP4(GW)
    assert dns_match(C.Config(), make_plan(), "nameserver 1.1.1.1\n").match4 is None
    fwd = C.Config(dns_forward4=IP4("192.0.2.3"))
    assert dns_match(fwd, make_plan(), "nameserver 1.1.1.1\n").match4 == IP4("192.0.2.3")
    assert dns_match(C.Config(), make_plan(), "nameserver ::1\n").match6 == IP6("fe80::1")


@pytest.mark.parametrize("resolv,cfg,search", [
    ("search a.example b.example\n", {}, ("a.example", "b.example")),
    ("search\ta.example\tb.example\n", {}, ()),                  # pasta wants "search "
    ("search a.example\t b.example  c.example\n", {}, ("a.example", "b.example", "c.example")),
    ("search a b c d e f g\n", {}, ("a", "b", "c", "d", "e")),
    ("search first.example\nsearch second.example\n", {}, ("first.example",)),
    ("domain x.example\n", {}, ()),
    ("search a.example\n", {"search": ("s.example",)}, ("s.example",)),
    ("search a.example\n", {"search_none": True}, ()),
    ("search a.example\n", {"dns_none": True}, ("a.example",)),
])
def test_dns_offer_search_list(resolv, cfg, search):
    assert offer(resolv, **cfg).search == search


def test_parse_resolv_conf_cuts_zone_and_skips_garbage():
    text = "nameserver fe80::1%eth0\nnameserver x\n#nameserver 1.2.3.4\n"
    servers, search = parse_resolv_conf(text)
    assert servers == [IP6("fe80::1")] and search == []


def test_encode_name_wire_form():
    assert encode_name("example.com") == b"\x07example\x03com\x00"
    assert encode_name("example.com.") == b"\x07example\x03com\x00"
    assert encode_name(".") is None and encode_name("") is None
    assert encode_name("a" * 64 + ".com") is None
    assert encode_name("a..b") is None
    assert struct.unpack("!B", encode_name("x")[:1]) == (1,)



def test_linkctx_direct_construction_keeps_invariants():
    bare = LinkCtx(our_mac=bytes(6), guest_mac=bytes(6))
    assert bare.no_dhcp and bare.no_ndp and bare.no_dhcpv6
    assert dhcp.reply(bare, udhcpc("discover")) is None
    with pytest.raises(ValueError):
        LinkCtx(our_mac=b"\x00", guest_mac=bytes(6))
