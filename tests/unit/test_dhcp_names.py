"""-H/--hostname and --fqdn in pasta.core.dhcp (options 12 and 81) and pasta.core.dhcpv6 (option
39), and how pasta.plan.linkctx carries them: requests built with scapy, replies dissected with
scapy's DHCP and DHCP6 layers (STYLE.md B7), names at the limits and with odd characters."""

from __future__ import annotations

import dataclasses
import ipaddress
import types

import pytest
from hypothesis import assume, given, settings, strategies as st
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dhcp6 import (DHCP6_Advertise, DHCP6_Confirm, DHCP6_InfoRequest,
                                DHCP6_Rebind, DHCP6_Renew, DHCP6_Reply, DHCP6_Request,
                                DHCP6_Solicit, DHCP6OptClientFQDN, DHCP6OptClientId,
                                DHCP6OptElapsedTime, DHCP6OptIA_NA, DHCP6OptIAAddress,
                                DHCP6OptOptReq, DHCP6OptRapidCommit, DHCP6OptServerId,
                                DHCP6OptStatusCode, DUID_LLT)
from scapy.layers.dns import dns_get_str

from pasta.core import dhcp, dhcpv6
from pasta.plan import config as C
from pasta.plan import netplan as NP
from pasta.plan.linkctx import (HOSTNAME_MAX, LinkCtx, encode_domain_name, name_bytes)

IP4 = ipaddress.IPv4Address
IP6 = ipaddress.IPv6Address
NS_MAC = bytes.fromhex("020000000001")
NS_ADDR4 = "192.0.2.10"
GW4 = "192.0.2.1"
NS_ADDR6 = "2001:db8::10"
NS_LL = IP6("fe80::ff:fe00:1").packed
ALL_SERVERS = IP6("ff02::1:2").packed
XID = 0x1A2B3C4D
TRID = 0xABCDEF
DUID_TIME = 789012345
OUR_MAC = "9a:55:9a:55:9a:55"
RESOLV = ("nameserver 198.51.100.53\nnameserver 2001:db8::53\n"
          "search example.com lab.example.com\n")

ODD_NAMES = ["h\u00f4te-\u00e9t\u00e9", "Host_Name 1", "UPPER.lower.MiXeD",
             "xn--bcher-kva.example", "a-b_c.d~e.f"]


def make_plan(mtu=C.MTU_DEFAULT) -> NP.NetPlan:
    v4 = NP.FamilyPlan(enabled=True, addr=IP4(NS_ADDR4), prefix=24, gw=IP4(GW4))
    v6 = NP.FamilyPlan(enabled=True, addr=IP6(NS_ADDR6), prefix=64, gw=IP6("fe80::1"),
                       our_ll=IP6("fe80::1"))
    return NP.NetPlan(ns_ifname="eth0", mtu=mtu, v4=v4, v6=v6)


def make_ctx(hostname=None, fqdn=None, resolv=RESOLV, **cfg_kw) -> LinkCtx:
    cfg = C.Config(**cfg_kw)
    ctx = LinkCtx.from_config(cfg, make_plan(cfg.mtu), NS_MAC, resolv_conf=resolv,
                              duid_time=DUID_TIME)
    return dataclasses.replace(ctx, hostname=hostname, fqdn=fqdn)


def cfg_with(**extra):
    """A Config-like object with extra attributes (hostname/fqdn), whatever Config has today."""
    return types.SimpleNamespace(**{**vars(C.Config()), **extra})


def long_name(n: int) -> str:
    """A valid domain name of exactly n characters (labels of at most 63)."""
    labels, left = [], n
    while left > 0:
        take = min(63, left)
        if left - take == 1:               # never leave a dangling one-character remainder
            take -= 1
        labels.append(chr(ord("a") + len(labels) % 26) * take)
        left -= take + 1                   # + the dot
    name = ".".join(labels)
    assert len(name) == n, (len(name), n)
    return name


# --- linkctx ----------------------------------------------------------------------------------

def test_linkctx_from_config_reads_hostname_and_fqdn():
    ctx = LinkCtx.from_config(cfg_with(hostname="box", fqdn="box.example.org"), make_plan(),
                              NS_MAC)
    assert ctx.hostname == "box" and ctx.fqdn == "box.example.org"


def test_linkctx_from_config_without_fields_or_empty_gives_none():
    bare = types.SimpleNamespace(**{k: v for k, v in vars(C.Config()).items()
                                    if k not in ("hostname", "fqdn")})
    ctx = LinkCtx.from_config(bare, make_plan(), NS_MAC)
    assert ctx.hostname is None and ctx.fqdn is None
    ctx = LinkCtx.from_config(cfg_with(hostname="", fqdn=""), make_plan(), NS_MAC)
    assert ctx.hostname is None and ctx.fqdn is None


def test_linkctx_direct_construction_still_defaults_to_no_names():
    ctx = LinkCtx(our_mac=bytes(6), guest_mac=NS_MAC)
    assert ctx.hostname is None and ctx.fqdn is None


def test_linkctx_name_bytes_undo_argv_surrogates():
    # what Python makes of the argv bytes b"h\xe9te" (Latin-1, not UTF-8) on a UTF-8 locale
    assert name_bytes(b"h\xe9te".decode("utf-8", "surrogateescape")) == b"h\xe9te"
    assert name_bytes("h\u00f4te") == "h\u00f4te".encode()


@pytest.mark.parametrize("name, wire", [
    (b"foo.example.com", b"\x03foo\x07example\x03com\x00"),
    (b"a.", b"\x01a\x00\x00"),                # trailing dot: an empty label, as util.c
    (b"a..b", b"\x01a\x00\x01b\x00"),
    (b".a", b"\x00\x01a\x00"),
    (b"x" * 70, b"\x46" + b"x" * 70 + b"\x00"),  # no 63-byte label limit in util.c
])
def test_linkctx_encode_domain_name_as_pasta_util_c(name, wire):
    assert encode_domain_name(name) == wire
    assert len(encode_domain_name(name)) == len(name) + 2


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=63).filter(lambda b: b"." not in b),
                min_size=1, max_size=4))
def test_linkctx_encode_domain_name_dissected_by_scapy(labels):
    name = b".".join(labels)
    decoded, rest = dns_get_str(encode_domain_name(name))
    assert decoded == name + b"." and rest == b""


# --- DHCP -------------------------------------------------------------------------------------

def bootp(options, ciaddr="0.0.0.0") -> bytes:
    return bytes(BOOTP(op=1, htype=1, hlen=6, xid=XID, ciaddr=ciaddr, chaddr=NS_MAC + bytes(10))
                 / DHCP(options=options))


def udhcpc(kind) -> bytes:
    """udhcpc: PRL with 12 (hostname), no 81."""
    return bootp([("message-type", kind), ("param_req_list", [1, 3, 6, 12, 15, 28, 42]), "end"])


def networkd(kind, rapid=False) -> bytes:
    """systemd-networkd: PRL without 12 or 81; sends its own hostname and FQDN options."""
    opts = [("message-type", kind), ("param_req_list", [1, 3, 6, 15, 26, 119, 121]),
            ("hostname", b"client"), ("client_FQDN", b"\x01\x00\x00\x06client\x00")]
    if rapid:
        opts.append(("rapid_commit", b""))
    return bootp(opts + ["end"])


def dhcp_answer(ctx, payload):
    out = dhcp.reply(ctx, payload)
    assert out is not None
    data = out[0]
    pkt = BOOTP(data)
    assert len(data) - 240 <= 308                          # RFC 2131 576-byte message
    opts = {o[0]: o[1:] for o in pkt[DHCP].options if isinstance(o, tuple)}
    codes = []
    off = 240
    while data[off] != 255:
        codes.append(data[off])
        off += 2 + data[off + 1]
    return opts, codes


def fqdn_of(opts) -> tuple[int, int, int, bytes]:
    """(flags, rcode1, rcode2, name) of scapy's client_FQDN option value."""
    raw = opts["client_FQDN"][0]
    name, rest = dns_get_str(raw[3:])
    assert rest == b""
    return raw[0], raw[1], raw[2], name


def test_dhcp_no_names_by_default():
    opts, codes = dhcp_answer(make_ctx(), udhcpc("discover"))
    assert 12 not in codes and 81 not in codes and "hostname" not in opts


@pytest.mark.parametrize("payload", [udhcpc("discover"), udhcpc("request"), networkd("discover"),
                                     networkd("discover", rapid=True), networkd("request"),
                                     bootp(["end"]),
                                     bootp([("message-type", "inform"), "end"],
                                           ciaddr=NS_ADDR4)],
                         ids=["offer", "ack", "offer-unasked", "rapid", "ack-unasked", "bootp",
                              "inform"])
def test_dhcp_hostname_and_fqdn_in_every_reply_asked_or_not(payload):
    opts, codes = dhcp_answer(make_ctx("ns-host", "ns-host.example.org"), payload)
    assert opts["hostname"] == (b"ns-host",)
    assert fqdn_of(opts) == (0x04, 0xFF, 0xFF, b"ns-host.example.org.")


def test_dhcp_client_fqdn_flags_ignored_server_sends_e_only():
    # the client asks with S set (0x01); pasta answers with E only and RCODEs 255 regardless
    opts, _ = dhcp_answer(make_ctx(fqdn="a.example"), networkd("request"))
    assert fqdn_of(opts)[:3] == (dhcp.FQDN_FLAG_E, dhcp.FQDN_RCODE, dhcp.FQDN_RCODE)


def test_dhcp_hostname_follows_parameter_request_list_order():
    ctx = make_ctx("ns-host", "ns-host.example.org")
    _, codes = dhcp_answer(ctx, udhcpc("request"))
    # 53 first, then PRL order (1, 3, 12; 6 is not sent), then the rest by number
    assert codes == [53, 1, 3, 12, 26, 51, 54, 81]
    _, codes = dhcp_answer(ctx, networkd("request"))
    assert codes == [53, 1, 3, 26, 12, 51, 54, 81]


@pytest.mark.parametrize("name", ODD_NAMES + ["h" * HOSTNAME_MAX, "x"])
def test_dhcp_hostname_bytes_verbatim(name):
    opts, _ = dhcp_answer(make_ctx(hostname=name), udhcpc("discover"))
    assert opts["hostname"] == (name.encode(),)


@pytest.mark.parametrize("name", ODD_NAMES)
def test_dhcp_fqdn_odd_characters_in_wire_format(name):
    opts, _ = dhcp_answer(make_ctx(fqdn=name), udhcpc("discover"))
    assert fqdn_of(opts)[3] == name.encode() + b"."


def test_dhcp_fqdn_250_bytes_fits_251_does_not():
    # 3 (flags, RCODEs) + 1 (first length) + name + 1 (root) <= 255
    opts, codes = dhcp_answer(make_ctx(fqdn=long_name(250)), udhcpc("discover"))
    assert fqdn_of(opts)[3] == long_name(250).encode() + b"."
    assert len(opts["client_FQDN"][0]) == 255
    for n in (251, HOSTNAME_MAX):
        _, codes = dhcp_answer(make_ctx(fqdn=long_name(n)), udhcpc("discover"))
        assert 81 not in codes


def test_dhcp_long_names_skip_what_does_not_fit_the_options_area():
    # 53 (3) 1 (6) 3 (6) 12 (255): 270 bytes; 26, 51, 54 fit (286); 81 (257) does not
    ctx = make_ctx(long_name(HOSTNAME_MAX), long_name(250))
    opts, codes = dhcp_answer(ctx, udhcpc("discover"))
    assert codes == [53, 1, 3, 12, 26, 51, 54]
    assert opts["hostname"] == (long_name(HOSTNAME_MAX).encode(),)
    # without the hostname the FQDN fits
    _, codes = dhcp_answer(make_ctx(fqdn=long_name(250)), udhcpc("discover"))
    assert 81 in codes


def test_dhcp_fqdn_pasta_encoding_of_odd_dots():
    opts, _ = dhcp_answer(make_ctx(fqdn="host.example."), udhcpc("discover"))
    assert opts["client_FQDN"][0] == b"\x04\xff\xff\x04host\x07example\x00\x00"


@settings(max_examples=100, deadline=None)
@given(hostname=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1,
                        max_size=60),
       labels=st.lists(st.text("abcXYZ019-_ \u00e9", min_size=1, max_size=30), min_size=1,
                       max_size=5))
def test_dhcp_any_names_dissected_by_scapy(hostname, labels):
    fqdn = ".".join(labels)
    # Both names must fit the 308-byte options area with the other options of an ACK
    # (31 bytes, plus 2 + hostname and 2 + 3 + fqdn + 2): 4-byte characters make a 60-character
    # hostname 240 bytes, and a name that does not fit is left out by design
    # (test_dhcp_long_names_skip_what_does_not_fit_the_options_area).
    assume(len(hostname.encode()) + len(fqdn.encode()) <= 250)
    opts, _ = dhcp_answer(make_ctx(hostname, fqdn), udhcpc("request"))
    assert opts["hostname"] == (hostname.encode(),)
    assert fqdn_of(opts) == (4, 255, 255, fqdn.encode() + b".")


# --- DHCPv6 -----------------------------------------------------------------------------------

CLIENT = DHCP6OptClientId(duid=DUID_LLT(lladdr="02:00:00:00:00:01", timeval=700000000))
SERVER = DHCP6OptServerId(duid=DUID_LLT(hwtype=1, lladdr=OUR_MAC, timeval=DUID_TIME))


def v6_msg(cls, server=False, addr=None, fqdn_flags=None, rapid=False, ia=True) -> bytes:
    msg = cls(trid=TRID) / CLIENT
    if server:
        msg /= SERVER
    msg /= DHCP6OptElapsedTime(elapsedtime=0)
    if ia:
        opts = [DHCP6OptIAAddress(addr=addr, preflft=0, validlft=0)] if addr else []
        msg /= DHCP6OptIA_NA(iaid=7, T1=0, T2=0, ianaopts=opts)
    if fqdn_flags is not None:
        msg /= DHCP6OptClientFQDN(flags=fqdn_flags, fqdn=b"client.")
    if rapid:
        msg /= DHCP6OptRapidCommit()
    return bytes(msg / DHCP6OptOptReq(reqopts=[23, 24]))


def v6_answer(ctx, payload, cls):
    out = dhcpv6.reply(ctx, payload, NS_LL, ALL_SERVERS)
    assert out is not None
    data = out[0]
    pkt = cls(data)
    assert bytes(pkt) == data, "scapy did not dissect the whole reply"
    return pkt, data


def v6_codes(data: bytes) -> list[int]:
    out, off = [], 4
    while off < len(data):
        out.append(int.from_bytes(data[off:off + 2], "big"))
        off += 4 + int.from_bytes(data[off + 2:off + 4], "big")
    return out


def test_dhcpv6_no_fqdn_by_default():
    pkt, _ = v6_answer(make_ctx(), v6_msg(DHCP6_Solicit), DHCP6_Advertise)
    assert DHCP6OptClientFQDN not in pkt


@pytest.mark.parametrize("payload, cls", [
    (v6_msg(DHCP6_Solicit), DHCP6_Advertise),
    (v6_msg(DHCP6_Solicit, rapid=True), DHCP6_Reply),
    (v6_msg(DHCP6_Request, server=True, addr=NS_ADDR6), DHCP6_Reply),
    (v6_msg(DHCP6_Renew, server=True, addr=NS_ADDR6), DHCP6_Reply),
    (v6_msg(DHCP6_Rebind, server=True), DHCP6_Reply),
    (v6_msg(DHCP6_Confirm, addr=NS_ADDR6), DHCP6_Reply),
    (v6_msg(DHCP6_InfoRequest, ia=False), DHCP6_Reply),
], ids=["advertise", "rapid", "request", "renew", "rebind", "confirm", "info-request"])
def test_dhcpv6_fqdn_last_in_every_reply_asked_or_not(payload, cls):
    ctx = make_ctx(fqdn="ns-host.example.org", dhcp_dns=True, dhcp_search=True)
    pkt, data = v6_answer(ctx, payload, cls)
    opt = pkt[DHCP6OptClientFQDN]
    assert opt.optlen == 1 + len("ns-host.example.org") + 2
    assert int(opt.flags) == 0 and opt.res == 0
    assert opt.fqdn == b"ns-host.example.org."
    assert v6_codes(data)[-1] == dhcpv6.Dhcp6Opt.CLIENT_FQDN
    assert v6_codes(data).count(39) == 1


def test_dhcpv6_fqdn_not_in_not_on_link_reply():
    ctx = make_ctx(fqdn="ns-host.example.org")
    pkt, _ = v6_answer(ctx, v6_msg(DHCP6_Request, server=True, addr="2001:db8::99"),
                       DHCP6_Reply)
    assert DHCP6OptStatusCode in pkt and DHCP6OptClientFQDN not in pkt


@pytest.mark.parametrize("client_flags, sent", [
    (None, 0), (0, 0), (1, 2), (1 | 4, 2), (4, 0), (2, 0), (0xFF, 2)])
def test_dhcpv6_fqdn_o_flag_when_client_sets_s(client_flags, sent):
    ctx = make_ctx(fqdn="ns-host.example.org")
    pkt, _ = v6_answer(ctx, v6_msg(DHCP6_Solicit, fqdn_flags=client_flags), DHCP6_Advertise)
    opts = [o for o in pkt.iterpayloads() if isinstance(o, DHCP6OptClientFQDN)]
    assert len(opts) == 1 and int(opts[0].flags) == sent
    assert opts[0].fqdn == b"ns-host.example.org."


def test_dhcpv6_empty_client_fqdn_option_counts_as_s_clear():
    base = v6_msg(DHCP6_Solicit)
    payload = base + b"\x00\x27\x00\x00"      # option 39, length 0, at the end
    pkt, _ = v6_answer(make_ctx(fqdn="a.example"), payload, DHCP6_Advertise)
    assert int(pkt[DHCP6OptClientFQDN].flags) == 0


@pytest.mark.parametrize("name", ODD_NAMES + [long_name(HOSTNAME_MAX)])
def test_dhcpv6_fqdn_names_dissected_by_scapy(name):
    pkt, _ = v6_answer(make_ctx(fqdn=name), v6_msg(DHCP6_Solicit), DHCP6_Advertise)
    assert pkt[DHCP6OptClientFQDN].fqdn == name.encode() + b"."


def test_dhcpv6_fqdn_trailing_dot_encoded_as_pasta():
    _, data = v6_answer(make_ctx(fqdn="host.example."), v6_msg(DHCP6_Solicit), DHCP6_Advertise)
    # 1 (flags) + 13 + 2: the trailing dot gives an empty label before the terminator
    assert data.endswith(b"\x00\x27\x00\x10\x00\x04host\x07example\x00\x00")


def search_ctx(fqdn, n_names):
    names = tuple(long_name(253)[:-4] + f".s{i:02d}" for i in range(n_names))
    return make_ctx(fqdn=fqdn, search=names, dhcp_search=True, resolv="")


def test_dhcpv6_fqdn_left_out_past_pasta_budget():
    # find the reply length without the FQDN, then pick names on each side of the limit
    _, base = v6_answer(search_ctx(None, 4), v6_msg(DHCP6_Solicit), DHCP6_Advertise)
    room = dhcpv6.OPT_MAX_SIZE - (len(base) + 4 + 1)     # for len(name) + 2
    assert 2 < room <= HOSTNAME_MAX + 2
    fits = long_name(room - 2)
    pkt, data = v6_answer(search_ctx(fits, 4), v6_msg(DHCP6_Solicit), DHCP6_Advertise)
    assert pkt[DHCP6OptClientFQDN].fqdn == fits.encode() + b"."
    # pasta subtracts the 4-byte message header twice: the message ends at 1228 bytes
    assert len(data) == dhcpv6.OPT_MAX_SIZE
    too_long = long_name(room - 1)
    pkt, data = v6_answer(search_ctx(too_long, 4), v6_msg(DHCP6_Solicit), DHCP6_Advertise)
    assert DHCP6OptClientFQDN not in pkt and data == base


def test_dhcpv6_max_fqdn_fits_a_plain_reply():
    pkt, data = v6_answer(make_ctx(fqdn=long_name(HOSTNAME_MAX)), v6_msg(DHCP6_Solicit),
                          DHCP6_Advertise)
    assert pkt[DHCP6OptClientFQDN].optlen == 1 + HOSTNAME_MAX + 2
