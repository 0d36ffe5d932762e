"""Tests for the pesto control protocol (pasta.core.pesto) and the `pypasta-pesto` client
(pasta.front.pesto).

The codec is checked against the byte-exact examples of docs/pesto-protocol.md (sections 3.2 and
3.5), round trips, every error, every split of its input and random bytes (hypothesis). Then the
real pesto of passt 2026_07_16 (/opt/passt-2026/pesto, built by tests/install-deps.sh) talks to an
in-test UNIX-socket server built on the codec: what it sends must parse with our server-side
reader, and pypasta-pesto must send the same bytes and print the same text with the same exit
status for the same command line. A missing reference binary is a failure, never a skip.
"""

from __future__ import annotations

import ipaddress
import os
import struct
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pasta.core.fwd_rule import (FWD_CAP_ALL, FWD_CAP_IFNAME, FWD_CAP_IPV6, FWD_CAP_SCAN,
                                 FWD_DUAL_STACK_ANY, FWD_SCAN, FWD_WEAK, IPPROTO_TCP,
                                 IPPROTO_UDP, PIF_HOST, PIF_SPLICE, FwdRule, FwdTable,
                                 fwd_rule_add)
from pasta.core.pesto import (DUMP_MAX_BYTES, HELLO_SIZE, PIF_INFO_SIZE, RULE_SIZE,
                              TRANSACTION_MAX_BYTES, DumpReader, PestoError, PifTable,
                              Transaction, TransactionReader, WireRule, check_hello, dump,
                              encode_transaction, pack_hello, pack_pif_info, pack_rule,
                              pack_transaction, parse_hello, parse_pif_info, parse_rule,
                              show_lines, transaction_table)
from pasta.core.fwd_rule import PIF_NAMES, FwdRuleError
from pasta.util.errors import ConfigError
from pasta.front import pesto as front

from helpers.pesto_server import REAL_PESTO, BUILD_HINT, PestoServer, run_client

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address
TCP, UDP, HOST, SPLICE = IPPROTO_TCP, IPPROTO_UDP, PIF_HOST, PIF_SPLICE
CAPS_PASST = FWD_CAP_ALL & ~FWD_CAP_SCAN          # 0x2f
CAPS4 = FWD_CAP_ALL & ~FWD_CAP_IPV6               # 0x3d

HELLO_HEX = "62 61 73 69 6c 3a 73 00 00 00 00 02 00 00 00 80 00 00 00 10"
R_DUAL = FwdRule(HOST, TCP, 8080, 8080, 8080, flags=FWD_DUAL_STACK_ANY)
R_PODMAN = FwdRule(HOST, TCP, 8080, 8080, 80, addr=V4("0.0.0.0"), taddr=V4("10.89.0.2"))
R_LO = FwdRule(SPLICE, UDP, 1025, 1025, 1025, ifname="lo", flags=FWD_DUAL_STACK_ANY)
B_DUAL = bytes(48) + bytes.fromhex("1f901f901f900601")
B_PODMAN = (bytes(10) + b"\xff\xff" + bytes(4) + bytes(10) + b"\xff\xff\x0a\x59\x00\x02"
            + bytes(16) + bytes.fromhex("1f901f9000500600"))
B_LO = bytes(32) + b"lo" + bytes(14) + bytes.fromhex("0401040104011101")
DUMP_351 = (bytes.fromhex(HELLO_HEX) + b"\x01" + b"HOST" + bytes(124) + bytes.fromhex("0000003f")
            + bytes.fromhex("00000001") + B_DUAL + b"\x03" + b"SPLICE" + bytes(122)
            + bytes.fromhex("0000003f") + bytes.fromhex("00000000") + b"\x00")


def table(*rules, caps=FWD_CAP_ALL):
    t = FwdTable(caps)
    for r in rules:
        t = fwd_rule_add(t, r)
    return t


def splits(data: bytes):
    """The data whole, byte by byte, and cut in two at every offset."""
    yield [data]
    yield [data[i:i + 1] for i in range(len(data))]
    for i in range(1, len(data)):
        yield [data[:i], data[i:]]


def feed_all(reader, pieces):
    out = None
    for piece in pieces:
        out = reader.feed(piece)
    return out


# ------------------------------------------------------------------------------------ codec
def test_pesto_hello_bytes():
    assert pack_hello() == bytes.fromhex(HELLO_HEX)
    assert len(pack_hello()) == HELLO_SIZE == 20
    h = parse_hello(pack_hello())
    assert (h.magic, h.version, h.pif_name_size, h.ifnamsiz) == (b"basil:s\0", 2, 128, 16)
    check_hello(h)


@pytest.mark.parametrize("kw, message", [
    ({"magic": b"basil:c\0"}, "Bad magic number from server"),
    ({"version": 3}, "Unknown server protocol version 3 > 2"),
    ({"version": 0xFFFFFFFF}, "Unknown server protocol version 4294967295 > 2"),
    ({"version": 0}, "Unsupported experimental server protocol"),
    ({"version": 1}, "Unsupported server protocol version 1 < 2"),
    ({"pif_name_size": 64}, "Server has unexpected pif name size (64 not 128)"),
    ({"ifnamsiz": 32}, "Server has unexpected IFNAMSIZ (32 not 16)"),
    ({"magic": b"xxxxxxxx", "version": 9}, "Bad magic number from server"),
    ({"version": 7, "ifnamsiz": 1}, "Unknown server protocol version 7 > 2"),
])
def test_pesto_hello_checks_in_pestos_order(kw, message):
    with pytest.raises(PestoError, match=r"^" + message.replace("(", r"\(").replace(")", r"\)")
                       + "$"):
        check_hello(parse_hello(pack_hello(**kw)))


def test_pesto_pif_info_bytes():
    raw = pack_pif_info("SPLICE", 0x3F, 7)
    assert len(raw) == PIF_INFO_SIZE == 136
    assert raw == b"SPLICE" + bytes(122) + bytes.fromhex("0000003f00000007")
    assert parse_pif_info(raw) == ("SPLICE", 0x3F, 7, True)
    assert parse_pif_info(b"x" * 128 + bytes(8))[3] is False
    with pytest.raises(ValueError):
        pack_pif_info("x" * 128, 0, 0)


@pytest.mark.parametrize("rule, raw", [(R_DUAL, B_DUAL), (R_PODMAN, B_PODMAN), (R_LO, B_LO)],
                         ids=["dual", "podman", "lo"])
def test_pesto_rule_worked_bytes(rule, raw):
    assert len(raw) == RULE_SIZE == 56
    assert pack_rule(rule) == raw
    assert parse_rule(raw, 0, rule.pif) == rule


def test_pesto_rule_taddr_none_forms():
    """`::` is no target (None); `::ffff:0.0.0.0` is kept as 0.0.0.0 so it re-encodes the same."""
    zero4 = bytes(10) + b"\xff\xff" + bytes(4)
    raw = bytes(16) + zero4 + bytes(16) + struct.pack("!HHHBB", 1, 1, 1, 6, 1)
    r = parse_rule(raw)
    assert r.taddr == V4("0.0.0.0")
    assert pack_rule(r) == raw
    assert parse_rule(bytes(16) * 3 + struct.pack("!HHHBB", 1, 1, 1, 6, 1)).taddr is None
    assert pack_rule(FwdRule(HOST, TCP, 1, 1, 1, taddr=V6("::"))) == pack_rule(
        FwdRule(HOST, TCP, 1, 1, 1))


def test_pesto_rule_pack_refuses_what_does_not_fit():
    with pytest.raises(ValueError):
        pack_rule(FwdRule(HOST, TCP, 1, 1, 1, ifname="x" * 17))
    with pytest.raises(ValueError):
        pack_rule(FwdRule(HOST, TCP, 1, 70000, 1))


_addr = st.one_of(st.builds(V4, st.integers(0, 2**32 - 1)),
                  st.builds(V6, st.integers(0, 2**128 - 1)).filter(
                      lambda a: a.ipv4_mapped is None))
_rule = st.builds(
    FwdRule, pif=st.sampled_from([HOST, SPLICE]), proto=st.integers(0, 255),
    first=st.integers(0, 65535), last=st.integers(0, 65535), to=st.integers(0, 65535),
    addr=_addr, taddr=st.one_of(st.none(), _addr.filter(lambda a: a != V6("::"))),
    ifname=st.binary(max_size=16).filter(lambda b: 0 not in b).map(
        lambda b: b.decode("utf-8", "surrogateescape")),
    flags=st.integers(0, 255))


@given(_rule)
def test_pesto_rule_round_trip_from_rule(rule):
    assert parse_rule(pack_rule(rule), 0, rule.pif) == rule


@given(st.binary(min_size=56, max_size=56))
def test_pesto_rule_round_trip_from_bytes(raw):
    name = raw[32:48]
    if 0 in name:   # nothing survives after the first NUL of the interface name
        raw = raw[:32] + name[:name.index(0)].ljust(16, b"\0") + raw[48:]
    assert pack_rule(parse_rule(raw)) == raw


# ------------------------------------------------------------------------------ server side
def test_pesto_dump_351_bytes():
    d = dump(table(R_DUAL), 0x3F, [SPLICE, HOST])
    assert len(d) == 351
    assert d == DUMP_351


def test_pesto_dump_passt_has_host_only_and_empty_tables():
    d = dump(FwdTable(CAPS_PASST), CAPS_PASST, [HOST])
    assert d == pack_hello() + b"\x01" + pack_pif_info("HOST", 0x2F, 0) + b"\x00"


def full_table():
    rules = [FwdRule(pif, TCP, p, p, p, flags=FWD_DUAL_STACK_ANY)
             for pif in (HOST, SPLICE) for p in range(1, 256)]
    return FwdTable(FWD_CAP_ALL, tuple(rules))


def test_pesto_dump_largest_is_28855_bytes():
    d = dump(full_table(), FWD_CAP_ALL, [HOST, SPLICE])
    assert len(d) == 28855 <= DUMP_MAX_BYTES
    conf = DumpReader().feed(d)
    assert [len(t.rules) for t in conf.tables] == [255, 255]


TXN = encode_transaction([(HOST, [R_DUAL, R_PODMAN]), (SPLICE, [R_LO])])


def test_pesto_transaction_every_split():
    for pieces in splits(TXN):
        r = TransactionReader([HOST, SPLICE])
        for piece in pieces[:-1]:
            assert r.feed(piece) is None
        txn = r.feed(pieces[-1])
        assert txn == Transaction(((HOST, (R_DUAL, R_PODMAN)), (SPLICE, (R_LO,))), len(TXN))
        assert txn.tables == {HOST: [R_DUAL, R_PODMAN], SPLICE: [R_LO]}


def test_pesto_transaction_bytes():
    assert TXN[:5] == b"\x01\x00\x00\x00\x02"
    assert TXN[5 + 112:5 + 112 + 5] == b"\x03\x00\x00\x00\x01"
    assert TXN[-1:] == b"\x00" and len(TXN) == 5 + 112 + 5 + 56 + 1


def test_pesto_transaction_after_completion_ignores_more_and_reports_size():
    r = TransactionReader([HOST])
    txn = r.feed(b"\x01\x00\x00\x00\x00\x00trailing")
    assert txn.size == 6 and txn.tables == {HOST: []}
    assert r.feed(b"more") is txn


def test_pesto_transaction_lone_zero_empties_every_table():
    txn = TransactionReader([HOST, SPLICE]).feed(b"\x00")
    assert txn.sections == () and txn.size == 1
    assert transaction_table(txn, FWD_CAP_ALL) == FwdTable(FWD_CAP_ALL)


def test_pesto_transaction_table_unsent_pif_is_empty_and_rules_validated():
    txn = TransactionReader([HOST, SPLICE]).feed(encode_transaction([(SPLICE, [R_LO])]))
    t = transaction_table(txn, FWD_CAP_ALL)
    assert t.rules_of(HOST) == () and t.rules_of(SPLICE) == (R_LO,)
    assert t.caps == FWD_CAP_ALL


def test_pesto_transaction_duplicate_sections_accumulate():
    data = encode_transaction([(HOST, [R_DUAL]), (SPLICE, []), (HOST, [R_PODMAN])])
    txn = TransactionReader([HOST, SPLICE]).feed(data)
    assert txn.tables == {HOST: [R_DUAL, R_PODMAN], SPLICE: []}
    # R_DUAL (every address) and R_PODMAN (0.0.0.0) overlap on port 8080
    with pytest.raises(PestoError, match="^Forwarding configuration conflict: "):
        transaction_table(txn, FWD_CAP_ALL)


@pytest.mark.parametrize("rules, caps, message", [
    ([R_DUAL, R_DUAL], FWD_CAP_ALL, "Forwarding configuration conflict: TCP [*]:8080  =>  "
                                    "8080  versus TCP [*]:8080  =>  8080 "),
    ([R_DUAL], CAPS4, "Dual stack forward, but IPv6 not enabled"),
    ([FwdRule(HOST, TCP, 5, 5, 5, flags=FWD_DUAL_STACK_ANY, taddr=V4("10.0.0.1"))], FWD_CAP_ALL,
     "Dual stack forward to IPv4 address 10.0.0.1 unsupported\nDid you mean 0.0.0.0/... instead?"),
    ([FwdRule(HOST, TCP, 9, 8, 9)], FWD_CAP_ALL, "Rule has invalid port range 9-8"),
    ([FwdRule(HOST, TCP, 0, 0, 9)], FWD_CAP_ALL, "Forwarding rule attempts to map from port 0"),
    ([FwdRule(HOST, TCP, 1, 2, 65535)], FWD_CAP_ALL, "Forwarding rule attempts to map to port 0"),
    ([FwdRule(HOST, TCP, 1, 1, 1, flags=8)], FWD_CAP_ALL, "Rule has invalid flags 0x8"),
    ([FwdRule(HOST, UDP, 1, 1, 1)], FWD_CAP_ALL & ~8, "Can't add UDP forwarding rule, "
                                                      "UDP not enabled"),
])
def test_pesto_transaction_table_refuses_all_or_nothing(rules, caps, message):
    txn = TransactionReader([HOST]).feed(encode_transaction([(HOST, [R_PODMAN.__class__(
        HOST, UDP, 7, 7, 7, addr=V4("1.2.3.4"))] + rules)]))
    with pytest.raises(PestoError) as e:
        transaction_table(txn, caps)
    assert "\n".join(e.value.lines) == message and str(e.value) == message.split("\n")[0]


@pytest.mark.parametrize("pifs, data, message", [
    ([HOST], b"\x03", "Received rules for non-existent table"),
    ([HOST, SPLICE], b"\x02", "Received rules for non-existent table"),
    ([HOST, SPLICE], b"\xff", "Received rules for non-existent table"),
    ([HOST], b"\x01\x00\x00\x01\x00", "Received 256 rules (maximum 255)"),
    ([HOST], b"\x01\xff\xff\xff\xff", "Received 4294967295 rules (maximum 255)"),
    ([HOST], b"\x01\x00\x00\x00\x02" + B_DUAL + bytes(47) + b"x" + bytes(8),
     "Interface name was not NULL terminated"),
])
def test_pesto_transaction_errors(pifs, data, message):
    for pieces in splits(data):
        r = TransactionReader(pifs)
        with pytest.raises(PestoError) as e:
            feed_all(r, pieces)
        assert str(e.value) == message
        with pytest.raises(PestoError):     # the reader stays failed
            r.feed(b"\x00")


def test_pesto_transaction_is_bounded():
    r = TransactionReader([HOST])
    empty = b"\x01\x00\x00\x00\x00"
    with pytest.raises(PestoError, match=f"longer than {TRANSACTION_MAX_BYTES} bytes"):
        for _ in range(TRANSACTION_MAX_BYTES // len(empty) + 2):
            r.feed(empty)
    # the largest sensible transaction fits
    full = full_table()
    data = encode_transaction([(p, full.rules_of(p)) for p in (HOST, SPLICE)])
    assert TransactionReader([HOST, SPLICE]).feed(data).size == len(data)
    assert TransactionReader([HOST], max_bytes=10).feed(b"\x00" + bytes(100)).size == 1


def test_pesto_transaction_started_tells_a_show_only_client():
    r = TransactionReader([HOST])
    assert not r.started
    r.feed(b"\x01")
    assert r.started


# ------------------------------------------------------------------------------ client side
def test_pesto_dump_reader_every_split():
    for pieces in splits(DUMP_351):
        conf = feed_all(DumpReader(), pieces)
        assert [(t.pif, t.name, t.caps) for t in conf.tables] == [(HOST, "HOST", 0x3F),
                                                                  (SPLICE, "SPLICE", 0x3F)]
        assert conf.tables[0].rules == [WireRule(R_DUAL, B_DUAL)]
        assert conf.by_name("SPLICE").rules == [] and conf.by_pif(2) is None


def test_pesto_dump_reader_debug_lines_and_show():
    r = DumpReader()
    conf = r.feed(DUMP_351)
    assert r.debug == ["Receiving config for PIF 1",
                       "PIF 1: HOST, 1 rules, capabilities 0x3f: IPv4 IPv6 TCP UDP scan ifname",
                       "Receiving config for PIF 3",
                       "PIF 3: SPLICE, 0 rules, capabilities 0x3f: IPv4 IPv6 TCP UDP scan ifname"]
    assert show_lines(conf.tables) == ["  HOST", "    TCP [*]:8080  =>  8080 ", "  SPLICE"]


def test_pesto_dump_reader_keeps_unvalidated_rules_byte_for_byte():
    odd = bytes(16) + bytes(16) + b"lo\0junk" + bytes(9) + struct.pack("!HHHBB", 9, 3, 0, 99, 0xF0)
    d = pack_hello() + b"\x01" + pack_pif_info("HOST", 1, 1) + odd + b"\x00"
    conf = DumpReader().feed(d)
    w = conf.tables[0].rules[0]
    assert w.raw == odd and w.rule.first == 9 and w.rule.proto == 99 and w.rule.ifname == "lo"
    assert pack_transaction(conf.tables) == b"\x01\x00\x00\x00\x01" + odd + b"\x00"


def info(pif, name, caps=0x3F, count=0):
    return bytes([pif]) + pack_pif_info(name, caps, count)


@pytest.mark.parametrize("data, message", [
    (b"basil:x\0" + bytes(12), "Bad magic number from server"),
    (pack_hello(version=3), "Unknown server protocol version 3 > 2"),
    (pack_hello(version=0), "Unsupported experimental server protocol"),
    (pack_hello(pif_name_size=16), "Server has unexpected pif name size (16 not 128)"),
    (pack_hello(ifnamsiz=15), "Server has unexpected IFNAMSIZ (15 not 16)"),
    (pack_hello() + b"\x01" + b"H" * 128 + bytes(8), "Interface name was not NULL terminated"),
    (pack_hello() + info(1, "HOST", count=256), "Too many forwarding rules"),
    (pack_hello() + info(1, "HOST") + info(1, "OTHER"), "Received duplicate interface identifier"),
    (pack_hello() + info(1, "HOST") + info(3, "HOST"), "Received duplicate interface name"),
    (pack_hello() + info(1, "A") + info(2, "B") + info(3, "C") + b"\x04",
     "passt has more pifs than pesto can manage (max 3)"),
])
def test_pesto_dump_reader_errors(data, message):
    for pieces in splits(data):
        r = DumpReader()
        with pytest.raises(PestoError) as e:
            feed_all(r, pieces)
        assert str(e.value) == message
        with pytest.raises(PestoError):
            r.feed(b"")


def test_pesto_dump_reader_eof_messages():
    r = DumpReader()
    assert r.feed(DUMP_351[:19]) is None and not r.greeted
    assert r.eof_message() == "Couldn't read server greeting: No data available"
    assert r.feed(DUMP_351[19:100]) is None and r.greeted
    assert r.eof_message() == "Error reading from control socket"


def client_tables():
    host = PifTable(HOST, "HOST", FWD_CAP_ALL, [WireRule.of(R_DUAL),
                                                WireRule.of(FwdRule(HOST, UDP, 53, 53, 53,
                                                                    flags=FWD_DUAL_STACK_ANY))])
    return host, PifTable(SPLICE, "SPLICE", FWD_CAP_ALL, [WireRule.of(R_LO)])


def test_pesto_client_add_delete_clear():
    host, splice = client_tables()
    host.add(R_PODMAN.__class__(HOST, TCP, 9000, 9001, 9000, flags=FWD_DUAL_STACK_ANY))
    assert len(host.rules) == 3 and host.has_proto(UDP) and not splice.has_proto(TCP)
    with pytest.raises(FwdRuleError, match="^Forwarding configuration conflict: TCP "
                                           r"\[0\.0\.0\.0\]:8080  =>  10\.89\.0\.2:80  versus"):
        host.add(R_PODMAN)
    host.delete(R_DUAL)
    assert [w.rule.first for w in host.rules] == [53, 9000]
    with pytest.raises(FwdRuleError) as e:
        host.delete(FwdRule(HOST, TCP, 9000, 9000, 9000, flags=FWD_DUAL_STACK_ANY))
    assert str(e.value) == ("Specifier TCP [*]:9000  =>  9000  conflicts with rule "
                            "TCP [*]:9000-9001  =>  9000-9001 , but doesn't match it, can't delete")
    with pytest.raises(FwdRuleError) as e:
        host.delete(R_DUAL)
    assert str(e.value) == "Couldn't find forwarding rule to delete: TCP [*]:8080  =>  8080 "
    splice.clear()
    assert pack_transaction([host, splice]) == (
        b"\x01\x00\x00\x00\x02" + host.rules[0].raw + host.rules[1].raw
        + b"\x03\x00\x00\x00\x00" + b"\x00")


def test_pesto_client_delete_compares_bytes_not_meaning():
    """A server rule whose target is ::ffff:0.0.0.0 means "no target" but is not the same bytes
    as the spec's `::`: pesto refuses to delete it, and so do we."""
    odd = FwdRule(HOST, TCP, 22, 22, 22, flags=FWD_DUAL_STACK_ANY, taddr=V4("0.0.0.0"))
    host = PifTable(HOST, "HOST", FWD_CAP_ALL, [WireRule.of(odd)])
    with pytest.raises(FwdRuleError, match="conflicts with rule"):
        host.delete(FwdRule(HOST, TCP, 22, 22, 22, flags=FWD_DUAL_STACK_ANY))


# --------------------------------------------------------------------------- random inputs
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=6))
def test_pesto_readers_random_bytes_raise_only_pesto_error(data, cuts):
    cuts = sorted(set(c for c in cuts if c <= len(data)))
    pieces = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]
    for reader in (TransactionReader([HOST, SPLICE]), TransactionReader([HOST], max_bytes=64)):
        try:
            txn = feed_all(reader, pieces)
            if txn is not None:
                transaction_table(txn, FWD_CAP_ALL)
        except PestoError:
            pass
    # behind a valid greeting, so the tables are reached
    for reader in (DumpReader(), DumpReader(max_bytes=100)):
        try:
            conf = feed_all(reader, [pack_hello()] + pieces)
            if conf is not None:
                show_lines(conf.tables)
                pack_transaction(conf.tables)
        except PestoError:
            pass
        try:
            feed_all(DumpReader(), pieces)
        except PestoError:
            pass


@settings(max_examples=200)
@given(st.lists(_rule, max_size=6))
def test_pesto_transaction_of_random_rules_raises_only_pesto_error(rules):
    rules = [r for r in rules]
    data = encode_transaction([(HOST, [r for r in rules if r.pif == HOST]),
                               (SPLICE, [r for r in rules if r.pif == SPLICE])])
    try:
        transaction_table(TransactionReader([HOST, SPLICE]).feed(data), FWD_CAP_ALL)
    except PestoError:
        pass


# ----------------------------------------------------------------------- the front, unit
def test_pesto_front_probe_ephemeral_warnings(tmp_path):
    warned = []
    assert front.probe_ephemeral(warned.append, str(tmp_path / "nope")) == (49152, 65535)
    assert warned == [f"Unable to open {tmp_path}/nope: No such file or directory"]
    (tmp_path / "r").write_text("1 2\n")
    assert front.probe_ephemeral(warned.append, str(tmp_path / "r")) == (49152, 65535)
    assert warned[-1] == f"Unable to parse {tmp_path}/r"
    (tmp_path / "r").write_text("1000\t2000\nextra")
    assert front.probe_ephemeral(warned.append, str(tmp_path / "r")) == (1000, 2000)
    for bad in ("32768 60999", "32768\t60999x", "70000\t1", "1\t65536", "", "\t5"):
        (tmp_path / "r").write_text(bad + "\n")
        assert front.probe_ephemeral(warned.append, str(tmp_path / "r")) == (49152, 65535), bad
        assert warned[-1] == f"Unable to parse {tmp_path}/r"


_SPEC_ALPHABET = st.sampled_from(list("0123456789,-~:/%[]*.abcdefx") + ["auto", "all", "none",
                                                                          "lo", "::", "fd00::"])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_SPEC_ALPHABET, max_size=12).map("".join) | st.text(max_size=20),
       st.sampled_from([(HOST, TCP), (HOST, UDP), (SPLICE, TCP), (SPLICE, UDP)]),
       st.booleans(), st.sampled_from([FWD_CAP_ALL, CAPS_PASST, CAPS4, 0]))
def test_pesto_front_any_spec_is_applied_or_a_config_error(spec, pif_proto, delete, caps):
    """What pypasta-pesto does with any -t/-u/-T/-U text: changes the table or raises
    ConfigError (printed as one line per message), nothing else."""
    pif, proto = pif_proto
    table = PifTable(pif, PIF_NAMES[pif], caps, [WireRule.of(FwdRule(pif, proto, 80, 80, 80))])
    try:
        front.apply_spec(table, spec, pif, proto, delete, (32768, 60999), [])
    except ConfigError:
        pass
    pack_transaction([table])


# ------------------------------------------------------------- against the real pesto
@pytest.fixture(scope="module")
def real_pesto() -> str:
    if not os.access(REAL_PESTO, os.X_OK):
        pytest.fail(f"{REAL_PESTO} missing: {BUILD_HINT}", pytrace=False)
    return REAL_PESTO


class Outcome:
    def __init__(self, rc, out, err, sent):
        self.rc, self.out, self.err, self.sent = rc, out, err, sent

    def __repr__(self):
        return f"Outcome(rc={self.rc}, out={self.out!r}, err={self.err!r}, sent={self.sent!r})"

    def key(self):
        return (self.rc, self.out, self.err, self.sent)


def _serve(tmp_path, greeting, close_after):
    path = str(tmp_path / "ctl.sock")
    if os.path.exists(path):
        os.unlink(path)
    srv = PestoServer(path, greeting, close_after_greeting=close_after)
    srv.serve_one()
    return srv, path


def run_real(tmp_path, greeting, args, close_after=False) -> Outcome:
    srv, path = _serve(tmp_path, greeting, close_after)
    try:
        res = run_client([REAL_PESTO, *[path if a == "PATH" else a for a in args]])
        srv.wait()
    finally:
        srv.close()
    return Outcome(res.returncode, res.stdout, res.stderr, srv.received[-1] if srv.received
                   else None)


def run_ours(tmp_path, capfd, greeting, args, close_after=False) -> Outcome:
    srv, path = _serve(tmp_path, greeting, close_after)
    capfd.readouterr()
    try:
        rc = front.main([path if a == "PATH" else a for a in args], prog=REAL_PESTO)
        sys.stdout.flush()
        sys.stderr.flush()
        srv.wait()
    finally:
        srv.close()
    out, err = capfd.readouterr()
    return Outcome(rc, out, err, srv.received[-1] if srv.received else None)


def compare(tmp_path, capfd, greeting, args, close_after=False) -> Outcome:
    real = run_real(tmp_path, greeting, args, close_after)
    ours = run_ours(tmp_path, capfd, greeting, args, close_after)
    assert ours.key() == real.key(), f"\nreal: {real}\nours: {ours}"
    return real


def greet(host=(), splice=(), caps=FWD_CAP_ALL, pifs=(HOST, SPLICE)):
    return dump(FwdTable(caps, tuple(host) + tuple(splice)), caps, pifs)


EXISTING = greet(host=[R_DUAL, FwdRule(HOST, UDP, 53, 53, 53, flags=FWD_DUAL_STACK_ANY),
                       R_PODMAN.__class__(HOST, TCP, 9000, 9000, 90, addr=V4("0.0.0.0"),
                                          taddr=V4("10.89.0.2")),
                       FwdRule(HOST, TCP, 10000, 20000, 10000, flags=FWD_DUAL_STACK_ANY | FWD_WEAK
                               | FWD_SCAN)],
                 splice=[R_LO, FwdRule(SPLICE, TCP, 443, 443, 8443, addr=V6("::1"))])


def test_pesto_real_show_only_matches_codec(real_pesto, tmp_path):
    out = run_real(tmp_path, EXISTING, ["PATH"])
    conf = DumpReader().feed(EXISTING)
    path = str(tmp_path / "ctl.sock")
    assert out.rc == 0 and out.err == "" and out.sent == b""
    assert out.out == "".join(line + "\n" for line in
                              [f"passt/pasta configuration ({path})"] + show_lines(conf.tables))


def test_pesto_real_sends_every_table_as_received(real_pesto, tmp_path):
    out = run_real(tmp_path, EXISTING, ["-C", "SPLICE", "PATH"])
    conf = DumpReader().feed(EXISTING)
    conf.by_name("SPLICE").clear()
    assert out.rc == 0 and out.sent == pack_transaction(conf.tables)
    txn = TransactionReader([HOST, SPLICE]).feed(out.sent)
    assert txn.size == len(out.sent)
    new = transaction_table(txn, FWD_CAP_ALL)
    assert new.rules_of(HOST) == conf.by_name("HOST").fwd_rules() and not new.rules_of(SPLICE)


def test_pesto_real_spec_rules_parse_on_our_server(real_pesto, tmp_path):
    """What the real pesto makes of docs/pesto-protocol.md 6.2's specs, read by our server."""
    out = run_real(tmp_path, greet(), ["-t", "0.0.0.0/8080:10.89.0.2/80", "-t",
                                       "[::]/8080:fd00::2/80", "-u", "53,auto", "-U", "1025",
                                       "PATH"])
    assert out.rc == 0, out
    t = transaction_table(TransactionReader([HOST, SPLICE]).feed(out.sent), FWD_CAP_ALL)
    assert t.rules_of(HOST) == (
        R_PODMAN, FwdRule(HOST, TCP, 8080, 8080, 80, addr=V6("::"), taddr=V6("fd00::2")),
        FwdRule(HOST, UDP, 53, 53, 53, flags=FWD_DUAL_STACK_ANY | FWD_SCAN))
    assert t.rules_of(SPLICE) == (FwdRule(SPLICE, UDP, 1025, 1025, 1025, ifname="lo",
                                          flags=FWD_DUAL_STACK_ANY),)


# Command lines run by both clients against the same server; stdout, stderr, exit status and
# the bytes sent must be identical. (greeting, args, close after greeting)
SAME = {
    "show": (EXISTING, ["PATH"]),
    "show-passt": (greet(caps=CAPS_PASST, pifs=(HOST,)), ["PATH"]),
    "show-path-first": (EXISTING, ["PATH", "-d"]),
    "clear-host": (EXISTING, ["-s", "-C", "HOST", "PATH"]),
    "clear-both-debug": (EXISTING, ["-d", "-s", "--clear=SPLICE", "-C", "HOST", "PATH"]),
    "clear-unknown": (EXISTING, ["-C", "TAP", "PATH"]),
    "replace-t": (EXISTING, ["-s", "-t", "22", "PATH"]),
    "replace-drops-udp": (EXISTING, ["-t", "1024", "PATH"]),
    "replace-T": (EXISTING, ["-s", "-T", "3000", "PATH"]),
    "podman-add": (EXISTING, ["--add", "-t", "0.0.0.0/8081:10.89.0.2/80", "-t",
                              "[::]/8081:fd00::2/80", "PATH"]),
    "podman-delete": (EXISTING, ["--delete", "-t", "0.0.0.0/9000:10.89.0.2/90", "PATH"]),
    "podman-readd-conflicts": (EXISTING, ["-A", "-t", "0.0.0.0/9000:10.89.0.2/90", "PATH"]),
    "rootlesskit-add": (EXISTING, ["-A", "--tcp-ports=0.0.0.0/8082:80", "PATH"]),
    "rootlesskit-add-v6": (EXISTING, ["-A", "--tcp-ports=::/8083:80", "PATH"]),
    "rootlesskit-remove": (EXISTING, ["-D", "--tcp-ports=0.0.0.0/9000:10.89.0.2/90", "PATH"]),
    "sequential-modes": (EXISTING, ["-s", "-A", "-t", "2000", "-C", "HOST", "-A", "-T", "3000",
                                    "-t", "2001", "-D", "-u", "53", "PATH"]),
    "delete-missing": (EXISTING, ["-D", "-u", "5000", "PATH"]),
    "delete-overlap": (EXISTING, ["-s", "-D", "-t", "8080-8081", "PATH"]),
    "delete-exact": (EXISTING, ["-s", "-D", "-t", "8080", "-U", "1025", "PATH"]),
    "dual-v4-target": (EXISTING, ["-t", "8080:10.0.0.1", "PATH"]),
    "v4-only-target": (greet(caps=CAPS4), ["-s", "-t", "8080:10.0.2.100", "PATH"]),
    "udp-auto": (greet(), ["-s", "-u", "53,auto", "PATH"]),
    "auto-on-passt": (greet(caps=CAPS_PASST, pifs=(HOST,)), ["-t", "auto", "PATH"]),
    "T-on-passt": (greet(caps=CAPS_PASST, pifs=(HOST,)), ["-T", "80", "PATH"]),
    "U-no-ifname": (greet(caps=FWD_CAP_ALL & ~FWD_CAP_IFNAME), ["-s", "-U", "1025", "PATH"]),
    "exclude": (greet(), ["-s", "-t", "~22", "PATH"]),
    "all": (greet(), ["-s", "-t", "all", "-u", "auto", "PATH"]),
    "none-first": (greet(), ["-A", "-t", "none", "-t", "80", "PATH"]),
    "none-after": (greet(), ["-t", "80", "-t", "none", "PATH"]),
    "invalid-spec": (EXISTING, ["-s", "-t", "x", "PATH"]),
    "address-on-T": (EXISTING, ["-T", "127.0.0.1/80", "PATH"]),
    "ifname": (greet(), ["-s", "-t", "%lo/80", "-t", "127.0.0.1%lo/81", "PATH"]),
    "double-dash": (EXISTING, ["-A", "--", "PATH"]),
}

def _odd_dump(*extra: bytes) -> bytes:
    """Rules no pasta would hold (pesto shows them unvalidated): unknown protocol, an
    IPv4-compatible address, `::ffff:0.0.0.0` as target, unknown flags, first > last."""
    return _odd_dump_of([_odd_rule(*r) for r in (
        (bytes(12) + b"\1\2\3\4", bytes(16), b"", 1, 1, 1, 99, 0),
        (ZERO4, ZERO4, b"eth0", 5, 6, 7, 6, 0xF0),
        (bytes(16), V6("fd00::1").packed, b"", 9, 3, 65535, 17, 7),
        (bytes(16), bytes(16), b"", 100, 200, 500, 58, 2))] + list(extra))


ZERO4 = bytes(10) + b"\xff\xff" + bytes(4)


def _odd_rule(addr, taddr, ifname, first, last, to, proto, flags) -> bytes:
    return (addr + taddr + ifname.ljust(16, b"\0")
            + struct.pack("!HHHBB", first, last, to, proto, flags))


def _odd_dump_of(rules) -> bytes:
    return (pack_hello() + b"\x01" + pack_pif_info("HOST", 0x3F, len(rules)) + b"".join(rules)
            + b"\x03" + pack_pif_info("SPLICE", 0x3F, 0) + b"\x00")


SAME.update({
    "full-show": (dump(full_table(), FWD_CAP_ALL, [HOST, SPLICE]), ["PATH"]),
    "full-add": (dump(full_table(), FWD_CAP_ALL, [HOST, SPLICE]), ["-A", "-t", "300", "PATH"]),
    "full-replace": (dump(full_table(), FWD_CAP_ALL, [HOST, SPLICE]), ["-T", "7", "PATH"]),
    "odd-rules-show": (_odd_dump(), ["-s", "-A", "-T", "80", "PATH"]),
    "odd-rules-conflict": (_odd_dump(), ["-A", "-t", "0.0.0.0/5", "PATH"]),
})

BAD_GREETINGS = {
    "bad-magic": b"basil:x\0" + bytes(12),
    "version-3": pack_hello(version=3),
    "version-0": pack_hello(version=0),
    "pif-name-size": pack_hello(pif_name_size=64),
    "ifnamsiz": pack_hello(ifnamsiz=32),
    "short-greeting": pack_hello()[:10],
    "eof-mid-dump": DUMP_351[:100],
    "eof-before-terminator": DUMP_351[:-1],
    "name-not-terminated": pack_hello() + b"\x01" + b"H" * 128 + bytes(8),
    "too-many-rules": pack_hello() + info(1, "HOST", count=256),
    "duplicate-id": pack_hello() + info(1, "HOST") + info(1, "X"),
    "duplicate-name": pack_hello() + info(1, "HOST") + info(3, "HOST"),
    "four-pifs": pack_hello() + info(1, "A") + info(2, "B") + info(3, "C") + b"\x04",
    "odd-pif-names": pack_hello() + info(7, "HOST", 1) + info(9, "Weird") + b"\x00",
}

USAGE_ERRORS = [["-x", "PATH"], ["--tcp", "80", "PATH"], ["--bogus", "PATH"], ["-t"],
                ["--clear"], ["--show=1", "PATH"], [], ["PATH", "PATH"], ["-s"]]


@pytest.mark.parametrize("name", sorted(SAME))
def test_pesto_real_and_ours_agree(real_pesto, tmp_path, capfd, name):
    greeting, args = SAME[name]
    compare(tmp_path, capfd, greeting, args)


def test_pesto_real_and_ours_agree_on_a_wrapping_target_range(real_pesto, tmp_path, capfd):
    compare(tmp_path, capfd, _odd_dump_of([_odd_rule(bytes(16), bytes(16), b"", 100, 200, 65500,
                                                     6, 0)]), ["PATH"])


@pytest.mark.parametrize("name", sorted(BAD_GREETINGS))
@pytest.mark.parametrize("args", [["PATH"], ["-d", "-A", "-t", "1", "PATH"]], ids=["show", "add"])
def test_pesto_real_and_ours_agree_on_bad_servers(real_pesto, tmp_path, capfd, name, args):
    out = compare(tmp_path, capfd, BAD_GREETINGS[name], args, close_after=True)
    assert out.rc == (0 if name == "odd-pif-names" and args == ["PATH"] else 1)


def test_pesto_version_1_server_refused_where_pesto_goes_on(real_pesto, tmp_path, capfd):
    """docs/pesto-protocol.md section 1: pesto accepts a version-1 greeting (and would misread
    40-byte rules as 56-byte ones); pypasta-pesto requires version 2."""
    v1 = pack_hello(version=1) + info(1, "HOST") + b"\x00"
    real = run_real(tmp_path, v1, ["PATH"], close_after=True)
    assert real.rc == 0 and real.err == "" and "  HOST" in real.out
    ours = run_ours(tmp_path, capfd, v1, ["PATH"], close_after=True)
    assert (ours.rc, ours.out, ours.err) == (1, "", "Unsupported server protocol version 1 < 2\n")


@pytest.mark.parametrize("args", USAGE_ERRORS, ids=lambda a: " ".join(a) or "none")
def test_pesto_real_and_ours_agree_on_usage_errors(real_pesto, tmp_path, capfd, args):
    """Nothing connects: no server."""
    args = [str(tmp_path / "ctl.sock") if a == "PATH" else a for a in args]
    res = run_client([REAL_PESTO, *args])
    capfd.readouterr()
    rc = front.main(args, prog=REAL_PESTO)
    out, err = capfd.readouterr()
    assert (rc, out, err) == (res.returncode, res.stdout, res.stderr)
    assert rc == 1 and "Usage: " in err


def test_pesto_real_and_ours_agree_on_connect_errors(real_pesto, tmp_path, capfd):
    for args in (["/nonexistent/ctl"], [""], ["x" * 108], [str(tmp_path)]):
        res = run_client([REAL_PESTO, *args])
        capfd.readouterr()
        rc = front.main(args, prog=REAL_PESTO)
        out, err = capfd.readouterr()
        assert (rc, out, err) == (res.returncode, res.stdout, res.stderr), args


def test_pesto_real_and_ours_agree_on_help(real_pesto, capfd):
    res = run_client([REAL_PESTO, "-s", "--help", "-x"])
    capfd.readouterr()
    rc = front.main(["-s", "--help", "-x"], prog=REAL_PESTO)
    out, err = capfd.readouterr()
    assert (rc, out, err) == (res.returncode, res.stdout, res.stderr) == (0, out, "")


def test_pesto_version_is_ours_and_succeeds(real_pesto):
    real = run_client([REAL_PESTO, "--version"])
    ours = run_client(["pypasta-pesto", "--version"])
    assert real.returncode == ours.returncode == 0
    assert real.stdout.startswith("pesto 2026_07_16")
    from pasta import __version__
    assert ours.stdout.splitlines()[0] == f"pypasta-pesto {__version__}"
    assert ours.stdout.splitlines()[1:] == real.stdout.splitlines()[2:]     # licence lines


def test_pesto_console_script_runs_against_a_server(real_pesto, tmp_path):
    """The installed entry point (not main() in-process): exit status and output."""
    srv, path = _serve(tmp_path, EXISTING, False)
    try:
        res = run_client(["pypasta-pesto", "-A", "-t", "7000", path])
        srv.wait()
    finally:
        srv.close()
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    t = transaction_table(TransactionReader([HOST, SPLICE]).feed(srv.received[-1]), FWD_CAP_ALL)
    assert FwdRule(HOST, TCP, 7000, 7000, 7000, flags=FWD_DUAL_STACK_ANY) in t.rules_of(HOST)
    res = run_client(["pypasta-pesto", "-t", "x"])
    assert res.returncode == 1 and "Traceback" not in res.stderr
