"""Tests for pasta.core.wire.l4: TCP (and options), UDP, ICMP and ICMPv6 headers, against scapy."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS,
                                ICMPv6ND_RS, IPv6)
from scapy.packet import raw

from pasta.util.errors import Malformed
from pasta.core.wire.csum import fill_csum
from pasta.core.wire.ip import IPPROTO_ICMPV6, IPPROTO_TCP, pack_ipv4_into, pseudo_sum_ipv4
from pasta.core.wire.l4 import (ICMP_ECHO, ICMP_ECHOREPLY, ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST,
                           ND_NEIGHBOR_ADVERT, ND_NEIGHBOR_SOLICIT, ND_ROUTER_SOLICIT, TCP_ACK,
                           TCP_FIN, TCP_HLEN, TCP_PSH, TCP_RST, TCP_SYN, TcpOpts,
                           pack_icmp6_into, pack_icmp_echo_into, pack_tcp_into, pack_udp_into,
                           parse_icmp, parse_icmp6, parse_icmp6_echo, parse_tcp, parse_tcp_opts,
                           parse_udp)

FAST = settings(max_examples=100, deadline=None)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


# --- TCP fixed header -------------------------------------------------------------------------

@FAST
@given(u16, u16, u32, u32, st.integers(0, 255), u16, u16, st.binary(max_size=30))
def test_tcp_parse_scapy_segment(sport, dport, seq, ack, flags, window, urg, payload):
    seg = TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, window=window,
              urgptr=urg) / payload
    b = raw(seg)
    h = parse_tcp(b, 0)
    q = TCP(b)
    assert (h.sport, h.dport, h.seq, h.ack, h.flags, h.window, h.urg) == \
        (sport, dport, seq, ack, flags, window, urg)
    assert (h.csum, h.hdr_len, h.payload_off, h.end) == (q.chksum, 20, 20, len(b))


@pytest.mark.parametrize("doff", [0, 4])
def test_tcp_data_offset_below_five(doff):
    with pytest.raises(Malformed, match="bad tcp data offset"):
        parse_tcp(raw(TCP(dataofs=doff)) + bytes(40), 0)


def test_tcp_data_offset_beyond_segment():
    b = raw(TCP(dataofs=15)) + bytes(39)                # needs 60 bytes, has 59
    with pytest.raises(Malformed, match="bad tcp data offset"):
        parse_tcp(b, 0)
    assert parse_tcp(b + b"x", 0).hdr_len == 60
    with pytest.raises(Malformed, match="bad tcp data offset"):
        parse_tcp(b + b"x", 0, end=59)


def test_tcp_short_header():
    with pytest.raises(Malformed, match="short tcp header"):
        parse_tcp(bytes(19), 0)
    with pytest.raises(Malformed, match="short tcp header"):
        parse_tcp(bytes(30), 5, end=24)


# --- TCP options ------------------------------------------------------------------------------

OPT_LEN = {"MSS": 4, "WScale": 3, "SAckOK": 2, "Timestamp": 10, "NOP": 1, "EOL": 1}

tcp_option = st.one_of(
    st.tuples(st.just("MSS"), u16),
    st.tuples(st.just("WScale"), st.integers(0, 14)),
    st.tuples(st.just("SAckOK"), st.just(b"")),
    st.tuples(st.just("Timestamp"), st.tuples(u32, u32)),
    st.tuples(st.just("NOP"), st.none()),
    st.tuples(st.just("EOL"), st.none()),
    st.tuples(st.just("SAck"), st.lists(u32, min_size=2, max_size=4).map(tuple)
              .filter(lambda t: len(t) % 2 == 0)),
)


def opt_len(opt) -> int:
    return 2 + 4 * len(opt[1]) if opt[0] == "SAck" else OPT_LEN[opt[0]]


def expected_opts(opts) -> TcpOpts:
    mss = ws = None
    sack = False
    for name, value in opts:
        if name == "EOL":
            break
        if name == "MSS":
            mss = value
        elif name == "WScale":
            ws = value
        elif name == "SAckOK":
            sack = True
    return TcpOpts(mss, ws, sack)


@settings(max_examples=200, deadline=None)
@given(st.lists(tcp_option, max_size=8).filter(lambda o: sum(map(opt_len, o)) <= 40),
       st.binary(max_size=8))
def test_tcp_options_from_scapy(opts, payload):
    b = raw(TCP(flags="S", options=opts) / payload)
    h = parse_tcp(b, 0)
    assert (h.mss, h.wscale, h.sack_ok) == expected_opts(opts)
    assert h.hdr_len == TCP(b).dataofs * 4 and h.payload_off == h.hdr_len
    assert b[h.payload_off:] == payload


@pytest.mark.parametrize("opts,expect", [
    ([("MSS", 1460)], (1460, None, False)),
    ([("MSS", 1460), ("NOP", None), ("WScale", 7)], (1460, 7, False)),
    ([("MSS", 65495), ("SAckOK", b""), ("Timestamp", (1, 2)), ("NOP", None), ("WScale", 14)],
     (65495, 14, True)),
    ([("NOP", None), ("NOP", None), ("Timestamp", (5, 6))], (None, None, False)),
    ([("EOL", None), ("MSS", 1000)], (None, None, False)),
    ([("WScale", 0)], (None, 0, False)),
])
def test_tcp_option_combinations_linux_style(opts, expect):
    assert tuple(parse_tcp(raw(TCP(flags="S", options=opts)), 0)[-3:]) == expect


def test_tcp_options_walked_only_on_syn_by_default():
    b = raw(TCP(flags="A", options=[("MSS", 1000), ("WScale", 3)]))
    assert parse_tcp(b, 0)[-3:] == (None, None, False)
    assert parse_tcp(b, 0, opts=True)[-3:] == (1000, 3, False)
    syn = raw(TCP(flags="S", options=[("MSS", 1000)]))
    assert parse_tcp(syn, 0, opts=False).mss is None


def tcp_with_raw_opts(opts: bytes, flags: str = "S") -> bytes:
    assert len(opts) % 4 == 0
    return raw(TCP(flags=flags, dataofs=5 + len(opts) // 4)) + opts


@pytest.mark.parametrize("opts", [
    b"\x02\x03\x05\x00",                                 # MSS with length 3
    b"\x02\x05\x05\xb4",                                 # MSS length beyond the option area
    b"\x02\x02\x00\x00",                                 # MSS with length 2
    b"\x03\x02\x01\x01",                                 # window scale with length 2
    b"\x03\x04\x07\x00",                                 # window scale with length 4
    b"\x04\x03\x00\x00",                                 # SACK-permitted with length 3
    b"\x08\x08\x00\x00\x00\x00\x00\x00",                 # timestamps with length 8
    b"\x05\x03\x00\x00",                                 # SACK block of 1 byte
    b"\x1e\x00\x00\x00",                                 # unknown kind, length 0
    b"\x1e\x01\x00\x00",                                 # unknown kind, length 1
    b"\x1e\x09\x00\x00\x00\x00\x00\x00",                 # unknown kind beyond the area
    b"\x01\x01\x01\x1e",                                 # no room for the length byte
    b"\x01\x01\x01\x02",                                 # MSS kind as the last byte
])
def test_tcp_malformed_option_lengths(opts):
    with pytest.raises(Malformed, match="bad tcp option length"):
        parse_tcp(tcp_with_raw_opts(opts), 0)
    with pytest.raises(Malformed, match="bad tcp option length"):
        parse_tcp_opts(opts, 0, len(opts))


@pytest.mark.parametrize("opts,expect", [
    (b"\x1e\x04\xff\xff", (None, None, False)),          # unknown kind skipped by its length
    (b"\x00\xff\xff\xff", (None, None, False)),          # EOL: garbage after it is padding
    (b"\x1e\x02\x03\x03\x09\x00\x00\x00", (None, 9, False)),
    (b"\x02\x04\x01\x00\x02\x04\x02\x00", (512, None, False)),     # the last one wins
])
def test_tcp_options_skipped_and_ended(opts, expect):
    assert parse_tcp(tcp_with_raw_opts(opts), 0)[-3:] == expect


# --- TCP pack ---------------------------------------------------------------------------------

@FAST
@given(u16, u16, st.integers(0, (1 << 33) - 1), st.integers(0, (1 << 33) - 1),
       st.sampled_from([TCP_SYN, TCP_SYN | TCP_ACK, TCP_ACK, TCP_ACK | TCP_PSH, TCP_FIN | TCP_ACK,
                        TCP_RST]),
       u16, st.one_of(st.none(), u16), st.one_of(st.none(), st.integers(0, 14)),
       st.binary(max_size=40))
def test_tcp_pack_scapy_dissects_and_checksum_verifies(sport, dport, seq, ack, flags, window, mss,
                                                       wscale, payload):
    src, dst = bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])
    buf = bytearray(200)
    l4 = pack_ipv4_into(buf, 0, src, dst, IPPROTO_TCP, 0)    # tot_len fixed below
    pay = pack_tcp_into(buf, l4, sport, dport, seq, ack, flags, window, mss, wscale)
    end = pay + len(payload)
    buf[pay:end] = payload
    pack_ipv4_into(buf, 0, src, dst, IPPROTO_TCP, end)
    fill_csum(buf, l4, end, l4 + 16, pseudo_sum_ipv4(src, dst, IPPROTO_TCP, end - l4))
    p = IP(bytes(buf[:end]))
    t = p[TCP]
    assert (t.sport, t.dport, t.seq, t.ack, int(t.flags), t.window) == \
        (sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, flags, window)
    want = ([("MSS", mss)] if mss is not None else []) + \
        ([("NOP", None), ("WScale", wscale)] if wscale is not None else [])
    assert t.options == want
    assert bytes(t.payload) == payload
    q = p.copy()
    del q[TCP].chksum
    assert IP(raw(q))[TCP].chksum == t.chksum
    h = parse_tcp(buf, l4, end, opts=True)
    assert (h.mss, h.wscale, h.payload_off) == (mss, wscale, pay)


def test_tcp_pack_option_layout_is_passt_syn_layout():
    buf = bytearray(28)
    assert pack_tcp_into(buf, 0, 1, 2, 3, 4, TCP_SYN, 65535, 65480, 7) == 28
    assert buf[12] >> 4 == 7 and buf[TCP_HLEN:] == b"\x02\x04\xff\xc8\x01\x03\x03\x07"


# --- UDP --------------------------------------------------------------------------------------

@FAST
@given(u16, u16, st.binary(max_size=60), st.binary(max_size=10))
def test_udp_parse_scapy_datagram(sport, dport, payload, trailer):
    b = raw(UDP(sport=sport, dport=dport) / payload)
    h = parse_udp(b + trailer, 0)
    q = UDP(b)
    assert (h.sport, h.dport, h.length, h.csum) == (sport, dport, q.len, q.chksum)
    assert (h.payload_off, h.end) == (8, len(b))


@pytest.mark.parametrize("length", [0, 7, 19])
def test_udp_bad_length(length):
    b = bytearray(raw(UDP() / bytes(10)))
    b[4:6] = length.to_bytes(2, "big")
    with pytest.raises(Malformed, match="bad udp length"):
        parse_udp(bytes(b), 0)


def test_udp_short_header():
    with pytest.raises(Malformed, match="short udp header"):
        parse_udp(bytes(20), 0, end=7)


@FAST
@given(u16, u16, st.binary(max_size=40))
def test_udp_pack_scapy_dissects(sport, dport, payload):
    buf = bytearray(8 + len(payload))
    assert pack_udp_into(buf, 0, sport, dport, len(buf), 0x1234) == 8
    buf[8:] = payload
    u = UDP(bytes(buf))
    assert (u.sport, u.dport, u.len, u.chksum, bytes(u.payload)) == \
        (sport, dport, len(buf), 0x1234, payload)


# --- ICMP / ICMPv6 ----------------------------------------------------------------------------

@FAST
@given(st.sampled_from([ICMP_ECHO, ICMP_ECHOREPLY]), u16, u16, st.binary(max_size=40))
def test_icmp_echo_parse_scapy(itype, ident, seq, data):
    b = raw(ICMP(type=itype, id=ident, seq=seq) / data)
    h = parse_icmp(b, 0)
    assert (h.type, h.code, h.csum, h.ident, h.seq) == (itype, 0, ICMP(b).chksum, ident, seq)
    assert b[h.data_off:h.end] == data


def test_icmp_other_type_parses_type_and_code():
    h = parse_icmp(raw(ICMP(type=3, code=4)), 0)
    assert (h.type, h.code) == (3, 4)


@FAST
@given(st.sampled_from([ICMPv6EchoRequest, ICMPv6EchoReply]), u16, u16, st.binary(max_size=40))
def test_icmp6_echo_parse_scapy(cls, ident, seq, data):
    p = IPv6(src="fe80::1", dst="fe80::2") / cls(id=ident, seq=seq, data=data)
    b = raw(p)
    h = parse_icmp6_echo(b, 40)
    g = parse_icmp6(b, 40)
    want = ICMPV6_ECHO_REQUEST if cls is ICMPv6EchoRequest else ICMPV6_ECHO_REPLY
    assert (h.type, h.code, h.ident, h.seq, h.csum) == (want, 0, ident, seq, IPv6(b)[cls].cksum)
    assert (g.type, g.code, g.csum, g.body_off) == (want, 0, h.csum, 44)
    assert b[h.data_off:h.end] == data


@pytest.mark.parametrize("msg,itype", [(ICMPv6ND_NS(tgt="fe80::2"), ND_NEIGHBOR_SOLICIT),
                                       (ICMPv6ND_NA(tgt="fe80::2"), ND_NEIGHBOR_ADVERT),
                                       (ICMPv6ND_RS(), ND_ROUTER_SOLICIT)])
def test_icmp6_ndp_dispatch_type(msg, itype):
    b = raw(IPv6(src="fe80::1", dst="ff02::1") / msg)
    g = parse_icmp6(b, 40)
    assert (g.type, g.code, g.body_off, g.end) == (itype, 0, 44, len(b))


def test_icmp_short_headers():
    with pytest.raises(Malformed, match="short icmp header"):
        parse_icmp(bytes(7), 0)
    with pytest.raises(Malformed, match="short icmpv6 header"):
        parse_icmp6_echo(bytes(7), 0)
    with pytest.raises(Malformed, match="short icmpv6 header"):
        parse_icmp6(bytes(3), 0)
    assert parse_icmp6(bytes(4), 0).body_off == 4


@FAST
@given(st.sampled_from([ICMP_ECHO, ICMP_ECHOREPLY]), u16, u16)
def test_icmp_echo_pack_scapy_dissects(itype, ident, seq):
    buf = bytearray(8)
    assert pack_icmp_echo_into(buf, 0, itype, ident, seq, csum=0xBEEF) == 8
    p = ICMP(bytes(buf))
    assert (p.type, p.code, p.chksum, p.id, p.seq) == (itype, 0, 0xBEEF, ident, seq)


def test_icmp6_pack_ndp_scapy_dissects():
    body = bytes(4) + bytes.fromhex("fe800000000000000000000000000002")
    msg = bytearray(4 + len(body))
    assert pack_icmp6_into(msg, 0, ND_NEIGHBOR_SOLICIT, 0) == 4
    msg[4:] = body
    p = IPv6(raw(IPv6(src="fe80::1", dst="fe80::2", nh=IPPROTO_ICMPV6, plen=len(msg))) + msg)
    assert p[ICMPv6ND_NS].tgt == "fe80::2"


# --- fuzz -------------------------------------------------------------------------------------

@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80), st.integers(0, 10), st.one_of(st.none(), st.integers(0, 90)),
       st.sampled_from([None, True, False]))
def test_l4_parsers_raise_only_malformed(data, off, end, opts):
    for parse in (lambda: parse_tcp(data, off, end, opts), lambda: parse_udp(data, off, end),
                  lambda: parse_icmp(data, off, end), lambda: parse_icmp6(data, off, end),
                  lambda: parse_icmp6_echo(data, off, end),
                  lambda: parse_tcp_opts(data, off, len(data) if end is None else end)):
        try:
            parse()
        except Malformed:
            pass


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=40))
def test_tcp_random_option_area_raises_only_malformed(opts):
    opts = opts + bytes(-len(opts) % 4)
    try:
        h = parse_tcp(tcp_with_raw_opts(opts), 0)
    except Malformed:
        return
    assert h.mss is None or 0 <= h.mss <= 0xFFFF
    assert h.wscale is None or 0 <= h.wscale <= 255
