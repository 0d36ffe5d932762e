"""pasta.core.dhcpv6: client messages built with scapy as dhclient -6, udhcpc6 and systemd-networkd
send them, replies dissected with scapy."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings, strategies as st
from scapy.layers.dhcp6 import (DHCP6_Advertise, DHCP6_Confirm, DHCP6_Decline,
                                DHCP6_InfoRequest, DHCP6_Rebind, DHCP6_Release, DHCP6_Renew,
                                DHCP6_Reply, DHCP6_Request, DHCP6_Solicit, DHCP6OptClientId,
                                DHCP6OptDNSDomains, DHCP6OptDNSServers, DHCP6OptElapsedTime,
                                DHCP6OptIA_NA, DHCP6OptIA_TA, DHCP6OptIAAddress,
                                DHCP6OptOptReq, DHCP6OptRapidCommit, DHCP6OptServerId,
                                DHCP6OptStatusCode, DUID_LL, DUID_LLT)

from pasta.plan import config as C
from pasta.core import dhcpv6
from pasta.plan import netplan as NP
from pasta.util.errors import Malformed
from pasta.plan.linkctx import LinkCtx, duid_time_from_unix

IP6 = ipaddress.IPv6Address
OUR_MAC = "9a:55:9a:55:9a:55"
NS_MAC = "02:00:00:00:00:01"
NS_LL = IP6("fe80::ff:fe00:1").packed
ALL_SERVERS = IP6("ff02::1:2").packed
NS_ADDR = "2001:db8::10"
TRID = 0xABCDEF
IAID = 0x0C0FFEE
DUID_TIME = 789012345
RESOLV = "nameserver 2001:db8::53\nsearch example.com lab.example.com\n"


def make_ctx(resolv=RESOLV, v6=True, **cfg_kw) -> LinkCtx:
    cfg = C.Config(**cfg_kw)
    p6 = NP.FamilyPlan(enabled=True, addr=IP6(NS_ADDR), prefix=64, gw=IP6("fe80::1"),
                       our_ll=IP6("fe80::1")) if v6 else NP.FamilyPlan()
    plan = NP.NetPlan(ns_ifname="eth0", mtu=cfg.mtu, v6=p6)
    return LinkCtx.from_config(cfg, plan, bytes.fromhex("020000000001"), resolv_conf=resolv,
                               duid_time=DUID_TIME)


CTX = make_ctx()
CLIENT = DHCP6OptClientId(duid=DUID_LLT(lladdr=NS_MAC, timeval=700000000))
SERVER = DHCP6OptServerId(duid=DUID_LLT(hwtype=1, lladdr=OUR_MAC, timeval=DUID_TIME))


def ia_na(addr=None, iaid=IAID):
    opts = [DHCP6OptIAAddress(addr=addr, preflft=0, validlft=0)] if addr else []
    return DHCP6OptIA_NA(iaid=iaid, T1=0, T2=0, ianaopts=opts)


def solicit(rapid=False, ia=True, client=CLIENT) -> bytes:
    """dhclient -6 / systemd-networkd style SOLICIT."""
    msg = DHCP6_Solicit(trid=TRID)
    if client is not None:
        msg /= client
    msg /= DHCP6OptElapsedTime(elapsedtime=0)
    if ia:
        msg /= ia_na()
    msg /= DHCP6OptOptReq(reqopts=[23, 24])
    if rapid:
        msg /= DHCP6OptRapidCommit()
    return bytes(msg)


def with_server(cls, ia=True, server=SERVER, addr=NS_ADDR) -> bytes:
    msg = cls(trid=TRID) / CLIENT
    if server is not None:
        msg /= server
    msg /= DHCP6OptElapsedTime(elapsedtime=0)
    if ia:
        msg /= ia_na(addr)
    return bytes(msg / DHCP6OptOptReq(reqopts=[23, 24]))


def answer(ctx, payload, cls):
    out = dhcpv6.reply(ctx, payload, NS_LL, ALL_SERVERS)
    assert out is not None
    data, dst = out
    assert dst == NS_LL
    pkt = cls(data)
    assert bytes(pkt) == data, "scapy did not dissect the whole reply"
    return pkt, data


def option_only(opt) -> bytes:
    """The bytes of one dissected option, without the options after it."""
    opt = opt.copy()
    opt.remove_payload()
    return bytes(opt)


def assert_reply(pkt, msgtype, with_ia=True, iaid=IAID, rapid=False):
    assert pkt.msgtype == msgtype and pkt.trid == TRID
    sid = pkt[DHCP6OptServerId].duid
    assert isinstance(sid, DUID_LLT)
    assert sid.type == 1 and sid.hwtype == 1 and sid.lladdr == OUR_MAC
    assert sid.getfieldval("timeval") == DUID_TIME
    assert option_only(pkt[DHCP6OptClientId]) == bytes(CLIENT)
    if with_ia:
        ia = pkt[DHCP6OptIA_NA]
        assert ia.iaid == iaid and ia.T1 == 0xFFFFFFFF and ia.T2 == 0xFFFFFFFF
        assert len(ia.ianaopts) == 1
        addr = ia.ianaopts[0]
        assert isinstance(addr, DHCP6OptIAAddress)
        assert addr.addr == NS_ADDR and addr.preflft == 0xFFFFFFFF
        assert addr.validlft == 0xFFFFFFFF
    else:
        assert DHCP6OptIA_NA not in pkt
    assert DHCP6OptStatusCode not in pkt
    if rapid:
        assert pkt[DHCP6OptRapidCommit].optlen == 0
    else:
        assert DHCP6OptRapidCommit not in pkt


def option_codes(data: bytes) -> list[int]:
    out, off = [], 4
    while off < len(data):
        out.append(int.from_bytes(data[off:off + 2], "big"))
        off += 4 + int.from_bytes(data[off + 2:off + 4], "big")
    return out


def test_dhcpv6_solicit_gets_advertise():
    pkt, data = answer(CTX, solicit(), DHCP6_Advertise)
    assert_reply(pkt, 2)
    assert option_codes(data) == [2, 3, 1]


def test_dhcpv6_solicit_with_rapid_commit_gets_reply_with_rapid_commit():
    # systemd-networkd and dhclient -6 --rapid-commit: RFC 8415 18.3.1, a REPLY at once
    pkt, data = answer(CTX, solicit(rapid=True), DHCP6_Reply)
    assert_reply(pkt, 7, rapid=True)
    assert option_codes(data) == [2, 3, 1, 14]
    assert data[-4:] == b"\x00\x0e\x00\x00"                 # empty (RFC 8415 21.14)


def test_dhcpv6_rapid_commit_reply_carries_what_advertise_carries():
    ctx = make_ctx(dhcp_dns=True, dhcp_search=True)
    adv, adv_data = answer(ctx, solicit(), DHCP6_Advertise)
    pkt, data = answer(ctx, solicit(rapid=True), DHCP6_Reply)
    assert_reply(pkt, 7, rapid=True)
    assert pkt[DHCP6OptDNSServers].dnsservers == ["2001:db8::53"]
    assert pkt[DHCP6OptDNSDomains].dnsdomains == ["example.com.", "lab.example.com."]
    assert option_codes(data) == [2, 3, 1, 14, 23, 24]
    # the ADVERTISE's bytes, with message type 7 and the rapid commit after the client id
    cut = adv_data.index(bytes(CLIENT)) + len(bytes(CLIENT))
    assert data == b"\x07" + adv_data[1:cut] + b"\x00\x0e\x00\x00" + adv_data[cut:]


def test_dhcpv6_rapid_commit_without_ia_na_gets_iaid_one():
    pkt, _ = answer(CTX, solicit(rapid=True, ia=False), DHCP6_Reply)
    assert_reply(pkt, 7, iaid=1, rapid=True)


def test_dhcpv6_rapid_commit_option_data_ignored():
    # a non-empty Rapid Commit is out of spec, but its presence is what counts
    pkt, _ = answer(CTX, solicit() + b"\x00\x0e\x00\x02xy", DHCP6_Reply)
    assert_reply(pkt, 7, rapid=True)


def test_dhcpv6_rapid_commit_solicit_with_server_id_or_without_client_id_ignored():
    msg = DHCP6_Solicit(trid=TRID) / CLIENT / SERVER / ia_na() / DHCP6OptRapidCommit()
    assert dhcpv6.reply(CTX, bytes(msg), NS_LL, ALL_SERVERS) is None
    assert dhcpv6.reply(CTX, solicit(rapid=True, client=None), NS_LL, ALL_SERVERS) is None
    assert dhcpv6.reply(make_ctx(no_dhcpv6=True), solicit(rapid=True), NS_LL) is None
    assert dhcpv6.reply(CTX, solicit(rapid=True), NS_LL, IP6("fe80::1").packed) is None


@pytest.mark.parametrize("cls", [DHCP6_Request, DHCP6_Renew, DHCP6_Rebind])
def test_dhcpv6_rapid_commit_outside_solicit_ignored(cls):
    pkt, data = answer(CTX, with_server(cls) + bytes(DHCP6OptRapidCommit()), DHCP6_Reply)
    assert_reply(pkt, 7)
    assert 14 not in option_codes(data)


def test_dhcpv6_rapid_commit_reply_server_id_accepted_in_renew():
    committed, _ = answer(CTX, solicit(rapid=True), DHCP6_Reply)
    payload = bytes(DHCP6_Renew(trid=TRID) / CLIENT / committed[DHCP6OptServerId] / ia_na(NS_ADDR))
    pkt, _ = answer(CTX, payload, DHCP6_Reply)
    assert_reply(pkt, 7)


def test_dhcpv6_solicit_without_ia_na_gets_iaid_one():
    pkt, _ = answer(CTX, solicit(ia=False), DHCP6_Advertise)
    assert_reply(pkt, 2, iaid=1)


def test_dhcpv6_solicit_with_server_id_ignored():
    assert dhcpv6.reply(CTX, bytes(DHCP6_Solicit(trid=TRID) / CLIENT / SERVER), NS_LL) is None


def test_dhcpv6_solicit_without_client_id_ignored():
    assert dhcpv6.reply(CTX, solicit(client=None), NS_LL) is None


def test_dhcpv6_server_duid_from_advertise_accepted_in_request():
    adv, _ = answer(CTX, solicit(), DHCP6_Advertise)
    payload = bytes(DHCP6_Request(trid=TRID) / CLIENT / adv[DHCP6OptServerId] / ia_na(NS_ADDR))
    pkt, _ = answer(CTX, payload, DHCP6_Reply)
    assert_reply(pkt, 7)


@pytest.mark.parametrize("cls", [DHCP6_Request, DHCP6_Renew, DHCP6_Rebind])
def test_dhcpv6_request_renew_rebind_with_our_server_id_get_reply(cls):
    for addr in (NS_ADDR, None):
        pkt, _ = answer(CTX, with_server(cls, addr=addr), DHCP6_Reply)
        assert_reply(pkt, 7)


@pytest.mark.parametrize("cls", [DHCP6_Request, DHCP6_Renew, DHCP6_Rebind])
def test_dhcpv6_request_renew_rebind_need_our_server_id(cls):
    other = DHCP6OptServerId(duid=DUID_LLT(lladdr="02:11:22:33:44:55", timeval=DUID_TIME))
    ll = DHCP6OptServerId(duid=DUID_LL(lladdr=OUR_MAC))
    for server in (None, other, ll):
        assert dhcpv6.reply(CTX, with_server(cls, server=server), NS_LL) is None


def test_dhcpv6_confirm_without_server_id_gets_reply():
    pkt, _ = answer(CTX, with_server(DHCP6_Confirm, server=None), DHCP6_Reply)
    assert_reply(pkt, 7)
    assert dhcpv6.reply(CTX, with_server(DHCP6_Confirm), NS_LL) is None


def assert_not_on_link(pkt, data, ia_cls=DHCP6OptIA_NA):
    assert pkt.msgtype == 7 and pkt.trid == TRID
    assert pkt[DHCP6OptServerId].duid.lladdr == OUR_MAC
    ia = pkt[ia_cls]
    assert ia.iaid == IAID
    opts = ia.ianaopts if ia_cls is DHCP6OptIA_NA else ia.iataopts
    assert len(opts) == 1 and isinstance(opts[0], DHCP6OptStatusCode)
    assert opts[0].statuscode == 4 and opts[0].statusmsg == b"Prefix not appropriate for link."
    assert bytes(pkt[DHCP6OptClientId]) == bytes(CLIENT)
    assert DHCP6OptIAAddress not in pkt
    assert option_codes(data) == [2, ia_cls().optcode, 1]


@pytest.mark.parametrize("cls,server", [(DHCP6_Confirm, None), (DHCP6_Request, SERVER),
                                        (DHCP6_Renew, SERVER)])
def test_dhcpv6_other_address_gets_not_on_link(cls, server):
    pkt, data = answer(CTX, with_server(cls, server=server, addr="2001:db8:9::1"), DHCP6_Reply)
    assert_not_on_link(pkt, data)


def test_dhcpv6_rebind_other_address_not_checked_as_pasta():
    pkt, _ = answer(CTX, with_server(DHCP6_Rebind, addr="2001:db8:9::1"), DHCP6_Reply)
    assert_reply(pkt, 7)


def test_dhcpv6_ia_ta_not_on_link():
    ta = DHCP6OptIA_TA(iaid=IAID, iataopts=[DHCP6OptIAAddress(addr="2001:db8:9::1")])
    payload = bytes(DHCP6_Confirm(trid=TRID) / CLIENT / ta)
    pkt, data = answer(CTX, payload, DHCP6_Reply)
    assert_not_on_link(pkt, data, DHCP6OptIA_TA)


def test_dhcpv6_information_request_gets_reply_without_ia():
    for server in (None, SERVER):
        msg = DHCP6_InfoRequest(trid=TRID) / CLIENT
        if server is not None:
            msg /= server
        pkt, _ = answer(CTX, bytes(msg / DHCP6OptOptReq(reqopts=[23, 24])), DHCP6_Reply)
        assert_reply(pkt, 7, with_ia=False)


def test_dhcpv6_information_request_with_ia_or_wrong_server_ignored():
    other = DHCP6OptServerId(duid=DUID_LL(lladdr="02:11:22:33:44:55"))
    assert dhcpv6.reply(CTX, bytes(DHCP6_InfoRequest(trid=TRID) / CLIENT / ia_na()),
                        NS_LL) is None
    assert dhcpv6.reply(CTX, bytes(DHCP6_InfoRequest(trid=TRID) / CLIENT / other), NS_LL) is None


@pytest.mark.parametrize("cls", [DHCP6_Release, DHCP6_Decline, DHCP6_Advertise, DHCP6_Reply])
def test_dhcpv6_release_decline_and_server_messages_ignored(cls):
    assert dhcpv6.reply(CTX, with_server(cls), NS_LL) is None


def test_dhcpv6_disabled_unicast_or_without_address_ignored():
    assert dhcpv6.reply(make_ctx(no_dhcpv6=True), solicit(), NS_LL) is None
    assert dhcpv6.reply(make_ctx(v6=False), solicit(), NS_LL) is None
    assert dhcpv6.reply(CTX, solicit(), NS_LL, IP6("fe80::1").packed) is None
    assert dhcpv6.reply(CTX, solicit(), NS_LL) is not None


def test_dhcpv6_dns_servers_only_with_dhcp_dns():
    pkt, data = answer(make_ctx(dhcp_dns=True), solicit(), DHCP6_Advertise)
    assert pkt[DHCP6OptDNSServers].dnsservers == ["2001:db8::53"]
    assert DHCP6OptDNSDomains not in pkt
    assert option_codes(data) == [2, 3, 1, 23]


def test_dhcpv6_domain_list_only_with_dhcp_search():
    ctx = make_ctx(dhcp_dns=True, dhcp_search=True, search=("example.com", ".", "lab.example."))
    pkt, data = answer(ctx, solicit(), DHCP6_Advertise)
    assert pkt[DHCP6OptDNSDomains].dnsdomains == ["example.com.", "lab.example."]
    assert option_codes(data) == [2, 3, 1, 23, 24]
    pkt, data = answer(make_ctx(dhcp_search=True), solicit(), DHCP6_Advertise)
    assert DHCP6OptDNSServers not in pkt and option_codes(data) == [2, 3, 1, 24]


def test_dhcpv6_duid_time_from_unix():
    assert duid_time_from_unix(946684800) == 0
    assert duid_time_from_unix(946684800 + 86400.7) == 86400
    assert dhcpv6.server_duid(CTX) == (b"\x00\x01\x00\x01" + DUID_TIME.to_bytes(4, "big")
                                       + bytes.fromhex("9a559a559a55"))


@pytest.mark.parametrize("payload", [
    b"",
    b"\x01\x00\x00",
    b"\x01\x00\x00\x01\x00\x01",                                  # truncated option header
    b"\x01\x00\x00\x01\x00\x01\x00\x08\x00\x01",                  # option past the end
    b"\x01\x00\x00\x01\x00\x01\x00\x81" + bytes(129),             # client DUID > 128 bytes
    bytes(DHCP6_Solicit() / CLIENT) + b"\x00\x03\x00\x08" + bytes(8),             # short IA_NA
    bytes(DHCP6_Solicit() / CLIENT) + b"\x00\x04\x00\x02" + bytes(2),             # short IA_TA
    bytes(DHCP6_Request() / CLIENT / SERVER) + b"\x00\x03\x00\x14" + bytes(12)
    + b"\x00\x05\x00\x04" + bytes(4),                                             # short IAADDR
    bytes(DHCP6_Request() / CLIENT / SERVER) + b"\x00\x03\x00\x10" + bytes(12)
    + b"\x00\x05\x00\x18",                                                        # IA overrun
])
def test_dhcpv6_malformed_raises(payload):
    with pytest.raises(Malformed):
        dhcpv6.reply(CTX, payload, NS_LL)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=120), st.integers(1, 13))
def test_dhcpv6_any_bytes_reply_or_malformed(data, mtype):
    prefix = bytes([mtype, 0, 0, 1]) + bytes(CLIENT)
    for payload in (data, prefix + data):
        try:
            out = dhcpv6.reply(CTX, payload, NS_LL)
        except Malformed:
            continue
        if out is not None:
            reply, dst = out
            assert dst == NS_LL and reply[0] in (2, 7)
            assert reply[4:8] == b"\x00\x02\x00\x0e"           # our server id first
            if 14 in option_codes(reply):                       # rapid commit: REPLY to SOLICIT
                assert reply[0] == 7 and payload[0] == 1


