"""Tests for pasta 2026's -t/-u/-T/-U grammar: the parse.c primitives of pasta.plan.portspec and
pasta.core.fwd_rule.fwd_rule_parse() / fwd_table_parse() (pesto-protocol.md 6, pasta-2026.md 2).

Every expected message and rule text below was also checked against the real pasta 2026 binary
in parse-only runs (each run dies at a port option before any namespace exists)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import assume, given, settings, strategies as st

from pasta.util.errors import ConfigError
from pasta.core.fwd_rule import (ANY4, ANY6, FWD_CAP_ALL, FWD_CAP_IFNAME, FWD_CAP_IPV6,
                                 FWD_CAP_SCAN, FWD_CAP_TCP, FWD_CAP_UDP, FWD_DUAL_STACK_ANY, FWD_SCAN, FWD_WEAK, IPPROTO_TCP, IPPROTO_UDP,
                                 LOOPBACK4, LOOPBACK6, PIF_HOST, PIF_SPLICE, FwdRule, FwdRuleError,
                                 FwdTable, fwd_rule_add, fwd_rule_fmt, fwd_rule_parse,
                                 fwd_table_parse)
from pasta.plan.portspec import (Chunk, ChunkKind, PortRange, PortSpecError, inet_pton,
                                 parse_addrifname, parse_inany, parse_ifspec, parse_port_chunk,
                                 parse_port_range, parse_unsigned)

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address
TCP, UDP, HOST, SPLICE = IPPROTO_TCP, IPPROTO_UDP, PIF_HOST, PIF_SPLICE
DUAL, WEAK, SCAN = FWD_DUAL_STACK_ANY, FWD_WEAK, FWD_SCAN
EPH = (32768, 60999)                # the default Linux ip_local_port_range
OPTS = {"t": (HOST, TCP), "u": (HOST, UDP), "T": (SPLICE, TCP), "U": (SPLICE, UDP)}


def parse(opt, text, caps=FWD_CAP_ALL, ephemeral=EPH, warnings=None):
    return fwd_rule_parse(text, *OPTS[opt], caps, ephemeral, warnings=warnings)


def texts(opt, text, caps=FWD_CAP_ALL, ephemeral=EPH):
    return [fwd_rule_fmt(r) for r in parse(opt, text, caps, ephemeral)]


def command_line(*args, caps=FWD_CAP_ALL, ephemeral=EPH) -> FwdTable:
    """pasta's port pass over ("-t", SPEC) pairs: one table, arguments in order."""
    table = FwdTable(caps)
    for opt, text in zip(args[::2], args[1::2]):
        table = fwd_table_parse(table, text, *OPTS[opt[1]], ephemeral)
    return table


def failure(fn, *args, **kw):
    with pytest.raises(ConfigError) as e:
        fn(*args, **kw)
    return getattr(e.value, "lines", (str(e.value),))


# ------------------------------------------------------------------------- parse.c primitives
@pytest.mark.parametrize("text, expected", [
    ("80", (80, 2)), (" \t80x", (80, 4)), ("+80", (80, 3)), ("-0", (0, 2)),
    ("-1", (2**64 - 1, 2)), ("0x10", (0, 1)), ("007", (7, 3)),
    (str(2**64 - 1), (2**64 - 1, 20)), (str(2**64), None), ("", None), ("-", None), ("x", None),
    ("+ 1", None),
])
def test_portspec_unsigned_is_strtoul(text, expected):
    assert parse_unsigned(text, 0) == expected


@pytest.mark.parametrize("text, expected", [
    ("80", (PortRange(80, 80), 2)), ("80-90,", (PortRange(80, 90), 5)),
    ("0", (PortRange(0, 0), 1)), ("65535", (PortRange(65535, 65535), 5)),
    ("1- 2", (PortRange(1, 2), 4)), ("65536", None), ("90-80", None), ("80-", None),
    ("80-x", None), ("-1", None),
])
def test_portspec_port_range(text, expected):
    assert parse_port_range(text, 0) == expected


@pytest.mark.parametrize("text, expected", [
    ("::1/8087", (V6("::1"), 3)),
    ("8080:fd00::2/80", (V6("8080:fd00::2"), 12)),   # a bare IPv6 takes what looks like a port
    ("[::]/80", (V6("::"), 4)), ("10.0.0.1/80", (V4("10.0.0.1"), 8)),
    ("[10.0.0.1]/80", (V4("10.0.0.1"), 10)),
    ("::ffff:10.0.0.1", (V4("10.0.0.1"), 15)),           # IPv4-mapped is IPv4 (inany)
    ("[::ffff:0.0.0.0]", (V4("0.0.0.0"), 16)),
    ("80", None), ("10.0.0", None), ("010.0.0.1", None), ("[::1", None), ("[fe80::1%lo]", None),
    ("[ ::1]", None), ("", None), ("0000:0000:0000:0000:0000:0000:0000:0000:0", None),
])
def test_portspec_addresses_bare_or_bracketed(text, expected):
    assert parse_inany(text, 0) == expected


def test_portspec_inet_pton_refuses_zones_prefixes_and_blanks():
    assert inet_pton("192.0.2.1") == V4("192.0.2.1") and inet_pton("::1") == V6("::1")
    assert inet_pton("::ffff:1.2.3.4") == V6("::ffff:1.2.3.4")     # no inany mapping here
    for bad in ("fe80::1%eth0", "10.0.0.0/8", " ::1", "::1 ", "", "1.2.3.04"):
        assert inet_pton(bad) is None


@pytest.mark.parametrize("text, expected", [
    ("/80", ("", 0)), ("%lo/80", ("lo", 3)), ("%abcdefghijklmno/", ("abcdefghijklmno", 16)),
    ("%a,b:c/", ("a,b:c", 6)), ("%", None), ("%/80", None), ("%abcdefghijklmnop/", None),
    ("%ééééééé/", ("ééééééé", 8)), ("%éééééééé/", None),     # 16 bytes in UTF-8
])
def test_portspec_ifspec(text, expected):
    assert parse_ifspec(text, 0) == expected


@pytest.mark.parametrize("text, expected", [
    ("all", (Chunk(ChunkKind.ALL), 3)),
    ("all:10.0.0.1,", (Chunk(ChunkKind.ALL, taddr=V4("10.0.0.1")), 12)),
    ("all:[::]", (Chunk(ChunkKind.ALL), 8)),                 # `::` is no target
    ("all:x", (Chunk(ChunkKind.ALL), 3)),                    # left for the caller to refuse
    ("auto", (Chunk(ChunkKind.AUTO), 4)),
    ("~22-23", (Chunk(ChunkKind.EXCLUDE, PortRange(22, 23)), 6)),
    ("80", (Chunk(ChunkKind.INCLUDE, PortRange(80, 80), None, PortRange(80, 80)), 2)),
    ("80:90", (Chunk(ChunkKind.INCLUDE, PortRange(80, 80), None, PortRange(90, 90)), 5)),
    ("80:10.0.0.1", (Chunk(ChunkKind.INCLUDE, PortRange(80, 80), V4("10.0.0.1"),
                           PortRange(80, 80)), 11)),
    ("80:10.0.0.1/90", (Chunk(ChunkKind.INCLUDE, PortRange(80, 80), V4("10.0.0.1"),
                              PortRange(90, 90)), 14)),
    ("8080:fd00::2/80", (Chunk(ChunkKind.INCLUDE, PortRange(8080, 8080), V6("fd00::2"),
                               PortRange(80, 80)), 15)),
    ("80:0.0.0.0", (Chunk(ChunkKind.INCLUDE, PortRange(80, 80), V4("0.0.0.0"),
                          PortRange(80, 80)), 10)),
    ("80:x", (Chunk(ChunkKind.INCLUDE, PortRange(80, 80), None, PortRange(80, 80)), 2)),
    ("~x", None), ("x", None), ("", None), ("al", None),
])
def test_portspec_chunks(text, expected):
    assert parse_port_chunk(text, 0) == expected


@pytest.mark.parametrize("text, expected", [
    ("10.0.0.1/80", (V4("10.0.0.1"), "", 9)), ("10.0.0.1%eth0/80", (V4("10.0.0.1"), "eth0", 14)),
    ("[::1]%lo/80", (V6("::1"), "lo", 9)), ("*/80", (None, "", 2)), ("*%lo/80", (None, "lo", 5)),
    ("%lo/80", (None, "lo", 4)), ("/80", (None, "", 1)), ("::1/8087", (V6("::1"), "", 4)),
    ("80", None), ("80:10.0.0.1/90", None), ("**/80", None), ("x/80", None),
])
def test_portspec_address_part(text, expected):
    assert parse_addrifname(text, 0) == expected


# ------------------------------------------------------------- pesto-protocol.md 6.2 examples
def test_rule_parse_single_port_is_dual_stack():
    assert parse("t", "22") == [FwdRule(HOST, TCP, 22, 22, 22, ANY6, flags=DUAL)]
    assert texts("t", "22") == ["TCP [*]:22  =>  22 "]


def test_rule_parse_podman_target_address_form():
    assert parse("t", "0.0.0.0/8080:10.89.0.2/80") == [
        FwdRule(HOST, TCP, 8080, 8080, 80, ANY4, taddr=V4("10.89.0.2"))]
    assert texts("t", "0.0.0.0/8080:10.89.0.2/80") == ["TCP [0.0.0.0]:8080  =>  10.89.0.2:80 "]


def test_rule_parse_ipv6_wildcard_with_target_is_not_dual():
    assert parse("t", "[::]/8080:fd00::2/80") == [
        FwdRule(HOST, TCP, 8080, 8080, 80, ANY6, taddr=V6("fd00::2"))]
    assert texts("t", "[::]/8080:fd00::2/80") == ["TCP [::]:8080  =>  fd00::2:80 "]


def test_rule_parse_dual_stack_to_an_ipv4_target_is_refused():
    assert failure(parse, "t", "8080:10.0.0.1") == (
        "Dual stack forward to IPv4 address 10.0.0.1 unsupported",
        "Did you mean 0.0.0.0/... instead?",
        "Unable to add rule TCP [*]:8080  =>  10.0.0.1:8080 ")


def test_rule_parse_ipv4_only_target_address_without_ports():
    assert parse("t", "8080:10.0.2.100", caps=0x3D) == [
        FwdRule(HOST, TCP, 8080, 8080, 8080, ANY4, taddr=V4("10.0.2.100"))]


def test_rule_parse_auto_with_a_port_makes_it_scan():
    got = parse("u", "53,auto")
    assert got == [FwdRule(HOST, UDP, 53, 53, 53, ANY6, flags=DUAL | SCAN)]
    assert got[0].flags == 0x05


def test_rule_parse_outbound_binds_lo_or_each_loopback():
    assert parse("U", "1025") == [FwdRule(SPLICE, UDP, 1025, 1025, 1025, ANY6, ifname="lo",
                                          flags=DUAL)]
    assert texts("U", "1025") == ["UDP [*]%lo:1025  =>  1025 "]
    warnings: list = []
    no_ifname = FWD_CAP_ALL & ~FWD_CAP_IFNAME
    assert parse("U", "1025", caps=no_ifname, warnings=warnings) == [
        FwdRule(SPLICE, UDP, 1025, 1025, 1025, LOOPBACK4),
        FwdRule(SPLICE, UDP, 1025, 1025, 1025, LOOPBACK6)]
    assert warnings == ["SO_BINDTODEVICE unavailable, forwarding only 127.0.0.1 and ::1 for "
                        "'-U 1025'"]
    assert parse("T", "1025", caps=no_ifname & ~FWD_CAP_IPV6) == [
        FwdRule(SPLICE, TCP, 1025, 1025, 1025, LOOPBACK4)]


def test_rule_parse_exclusion_only_skips_the_ephemeral_range():
    assert texts("t", "~22") == ["TCP [*]:1-21  =>  1-21  (best effort)",
                                 "TCP [*]:23-32767  =>  23-32767  (best effort)",
                                 "TCP [*]:61000-65535  =>  61000-65535  (best effort)"]
    assert [(r.first, r.last) for r in parse("t", "~22", ephemeral=(49152, 65535))] == [
        (1, 21), (23, 49151)]


def test_rule_parse_all_and_auto_cover_every_non_ephemeral_port():
    assert parse("t", "all") == [FwdRule(HOST, TCP, 1, 32767, 1, ANY6, flags=DUAL | WEAK),
                                 FwdRule(HOST, TCP, 61000, 65535, 61000, ANY6,
                                         flags=DUAL | WEAK)]
    assert texts("t", "auto") == [
        "TCP [*]:1-32767  =>  1-32767  (best effort) (auto-scan)",
        "TCP [*]:61000-65535  =>  61000-65535  (best effort) (auto-scan)"]


def test_rule_parse_empty_ephemeral_range_gives_one_run():
    assert [(r.first, r.last) for r in parse("t", "all", ephemeral=(2, 1))] == [(1, 65535)]


# -------------------------------------------------------------- pasta-2026.md 2.1 differences
@pytest.mark.parametrize("opt, text, expected", [
    ("t", "0.0.0.0/all", ["TCP [0.0.0.0]:1-32767  =>  1-32767  (best effort)",
                          "TCP [0.0.0.0]:61000-65535  =>  61000-65535  (best effort)"]),
    ("t", "0.0.0.0/all:10.0.0.1", [
        "TCP [0.0.0.0]:1-32767  =>  10.0.0.1:1-32767  (best effort)",
        "TCP [0.0.0.0]:61000-65535  =>  10.0.0.1:61000-65535  (best effort)"]),
    ("T", "all", ["TCP [*]%lo:1-32767  =>  1-32767  (best effort)",
                  "TCP [*]%lo:61000-65535  =>  61000-65535  (best effort)"]),
    ("U", "all,~53", ["UDP [*]%lo:1-52  =>  1-52  (best effort)",
                      "UDP [*]%lo:54-32767  =>  54-32767  (best effort)",
                      "UDP [*]%lo:61000-65535  =>  61000-65535  (best effort)"]),
    ("t", "*/80", ["TCP [*]:80  =>  80 "]),
    ("t", "*%eth0/80", ["TCP [*]%eth0:80  =>  80 "]),
    ("t", "%eth0/80", ["TCP [*]%eth0:80  =>  80 "]),
    ("t", "/80", ["TCP [*]:80  =>  80 "]),
    ("t", "127.0.0.1/auto", ["TCP [127.0.0.1]:1-32767  =>  1-32767  (best effort) (auto-scan)",
                             "TCP [127.0.0.1]:61000-65535  =>  61000-65535  (best effort) "
                             "(auto-scan)"]),
    ("t", "8000-8010,auto", ["TCP [*]:8000-8010  =>  8000-8010  (auto-scan)"]),
    ("u", "auto,53", ["UDP [*]:53  =>  53  (auto-scan)"]),        # auto is read first
    ("t", "0.0.0.0/8000-8001:10.0.0.2/9000-9001", [
        "TCP [0.0.0.0]:8000-8001  =>  10.0.0.2:9000-9001 "]),
    ("t", "0.0.0.0/8000-8001:10.0.0.2", ["TCP [0.0.0.0]:8000-8001  =>  10.0.0.2:8000-8001 "]),
    ("t", "::1/8087", ["TCP [::1]:8087  =>  8087 "]),
    ("t", "8080:fd00::2/80", ["TCP [8080:fd00::2]:80  =>  80 "]),  # an address, not a target
    ("t", "[::ffff:10.0.0.1]/80", ["TCP [10.0.0.1]:80  =>  80 "]),
    ("t", "80:0.0.0.0", ["TCP [*]:80  =>  80 "]),                  # no target either
    ("t", "22,all", ["TCP [*]:22  =>  22 "]),                      # `all` is for lists without ports
    ("t", "22,~22", []),                                            # nothing left, no error
])
def test_rule_parse_2026_grammar(opt, text, expected):
    assert texts(opt, text) == expected


def test_rule_parse_strtoul_ports_and_port_zero():
    assert texts("t", " 80,+81") == ["TCP [*]:80  =>  80 ", "TCP [*]:81  =>  81 "]
    assert failure(parse, "t", "-0") == ("Forwarding rule attempts to map from port 0",
                                         "Unable to add rule TCP [*]:0  =>  0 ")
    assert failure(parse, "t", "80:0") == ("Forwarding rule attempts to map to port 0",
                                           "Unable to add rule TCP [*]:80  =>  0 ")


def test_command_line_conflicts_are_fatal_with_both_lines():
    assert failure(command_line, "-t", "80", "-t", "80") == (
        "Forwarding configuration conflict: TCP [*]:80  =>  80  versus TCP [*]:80  =>  80 ",
        "Unable to add rule TCP [*]:80  =>  80 ")
    assert failure(command_line, "-t", "auto", "-t", "80")[0] == (
        "Forwarding configuration conflict: TCP [*]:80  =>  80  versus "
        "TCP [*]:1-32767  =>  1-32767  (best effort) (auto-scan)")
    assert failure(command_line, "-t", "80", "-t", "auto")[0].startswith(
        "Forwarding configuration conflict: TCP [*]:1-32767  =>  1-32767  (best effort) "
        "(auto-scan) versus TCP [*]:80  =>  80 ")
    assert failure(parse, "t", "70-90,85")[0] == (
        "Forwarding configuration conflict: TCP [*]:85  =>  85  versus TCP [*]:70-90  =>  70-90 ")
    assert failure(command_line, "-t", "127.0.0.1/80", "-t", "0.0.0.0/80")[0] == (
        "Forwarding configuration conflict: TCP [0.0.0.0]:80  =>  80  versus "
        "TCP [127.0.0.1]:80  =>  80 ")
    assert failure(command_line, "-t", "%lo/80", "-t", "%eth0/80")[0].startswith(
        "Forwarding configuration conflict")                       # the interface is ignored


def test_command_line_keeps_non_conflicting_rules_in_order():
    t = command_line("-t", "127.0.0.1/80", "-u", "80", "-t", "127.0.0.2/80", "-t", "[::]/80",
                     "-T", "80", "-U", "auto")
    assert [fwd_rule_fmt(r) for r in t.rules_of(HOST)] == [
        "TCP [127.0.0.1]:80  =>  80 ", "UDP [*]:80  =>  80 ", "TCP [127.0.0.2]:80  =>  80 ",
        "TCP [::]:80  =>  80 "]
    assert [fwd_rule_fmt(r) for r in t.rules_of(SPLICE)][0] == "TCP [*]%lo:80  =>  80 "


def test_command_line_none_is_fatal_only_after_a_rule_of_its_table_and_protocol():
    assert command_line("-t", "none", "-t", "80").rules == command_line("-t", "80").rules
    assert failure(command_line, "-t", "80", "-t", "none") == (
        "-t none conflicts with previous options",)
    assert failure(command_line, "-U", "53", "-U", "none") == (
        "-U none conflicts with previous options",)
    command_line("-u", "80", "-t", "none")            # other protocol
    command_line("-t", "80", "-T", "none")            # other table
    command_line("-t", "none", "-t", "none")
    assert command_line("-t", "22,~22", "-t", "none").rules == ()     # made no rule
    assert parse("t", "none") is None and parse("T", "none") is None


def test_command_line_error_is_the_first_pasta_meets():
    # the include is added (and conflicts) before the bad target range is seen
    assert failure(command_line, "-t", "80", "-t", "80,81:90-91")[0].startswith(
        "Forwarding configuration conflict")
    # the first pass stops at the first bad chunk, before any rule is added
    assert failure(command_line, "-t", "80", "-t", "80,x") == ("Invalid port specifier '80,x'",)
    # trailing garbage is noticed after the includes are added
    assert failure(command_line, "-t", "80", "-t", "80 x")[0].startswith(
        "Forwarding configuration conflict")
    assert failure(parse, "t", "80 x") == ("Invalid port specifier '80 x'",)


# ---------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("opt, text, caps, lines", [
    ("t", "x", FWD_CAP_ALL, ("Invalid port specifier 'x'",)),
    ("t", "", FWD_CAP_ALL, ("Invalid port specifier ''",)),
    ("t", "80,", FWD_CAP_ALL, ("Invalid port specifier '80,'",)),
    ("t", "1.2.3.4/x", FWD_CAP_ALL, ("Invalid port specifier 'x'",)),    # the ports part only
    ("t", "80-90:100", FWD_CAP_ALL, ("Invalid port specifier '80-90:100'",)),
    ("t", "65536", FWD_CAP_ALL, ("Invalid port specifier '65536'",)),
    ("t", "2-3:65535-65536", FWD_CAP_ALL, ("Invalid port specifier '2-3:65535-65536'",)),
    ("t", "none,80", FWD_CAP_ALL, ("Invalid port specifier 'none,80'",)),
    ("t", "auto,x", FWD_CAP_ALL & ~FWD_CAP_SCAN,
     ("'auto' port forwarding is only allowed for pasta",)),
    ("t", "x,auto", FWD_CAP_ALL & ~FWD_CAP_SCAN, ("Invalid port specifier 'x,auto'",)),
    ("T", "0.0.0.0/80", FWD_CAP_ALL, ("Listening address not allowed for -T 0.0.0.0/80",)),
    ("U", "/80", FWD_CAP_ALL, ("Listening address not allowed for -U /80",)),
    ("U", "%lo/80", FWD_CAP_ALL, ("Listening address not allowed for -U %lo/80",)),
    ("T", "8080:fd00::2/80", FWD_CAP_ALL,
     ("Listening address not allowed for -T 8080:fd00::2/80",)),
    ("t", "%./80", FWD_CAP_ALL, ("Invalid interface name: .",)),
    ("t", "*%../80", FWD_CAP_ALL, ("Invalid interface name: ..",)),
    ("t", "%eth0/80", FWD_CAP_ALL & ~FWD_CAP_IFNAME,
     ("Device binding for '-t %eth0/80' unsupported (requires kernel 5.7+)",)),
    ("t", "[::1]/80", FWD_CAP_ALL & ~FWD_CAP_IPV6,
     ("IPv6 forward, but IPv6 not enabled", "Unable to add rule TCP [::1]:80  =>  80 ")),
    ("t", "80", FWD_CAP_ALL & ~FWD_CAP_TCP,
     ("Can't add TCP forwarding rule, TCP not enabled", "Unable to add rule TCP [*]:80  =>  80 ")),
    ("U", "53", FWD_CAP_ALL & ~FWD_CAP_UDP,
     ("Can't add UDP forwarding rule, UDP not enabled",
      "Unable to add rule UDP [*]%lo:53  =>  53 ")),
    ("t", "0.0.0.0/80:224.0.0.1", FWD_CAP_ALL,
     ("Multicast target address 224.0.0.1 for forwarding rule",
      "Unable to add rule TCP [0.0.0.0]:80  =>  224.0.0.1:80 ")),
    ("t", "80:[::1]/90", FWD_CAP_ALL,
     ("Dual stack forward to IPv6 address ::1 unsupported", "Did you mean [::]/... instead?",
      "Unable to add rule TCP [*]:80  =>  ::1:90 ")),
    ("t", "80:[::1]/90", FWD_CAP_ALL & ~FWD_CAP_IPV6,
     ("Forward from IPv4 (0.0.0.0) to IPv6 (::1) unsupported",
      "Unable to add rule TCP [0.0.0.0]:80  =>  ::1:90 ")),
    ("t", "all:10.0.0.1", FWD_CAP_ALL,
     ("Dual stack forward to IPv4 address 10.0.0.1 unsupported",
      "Did you mean 0.0.0.0/... instead?",
      "Unable to add rule TCP [*]:1-32767  =>  10.0.0.1:1-32767  (best effort)")),
])
def test_rule_parse_refusals_have_pastas_lines(opt, text, caps, lines):
    assert failure(parse, opt, text, caps=caps) == lines


def test_rule_parse_errors_are_config_errors_with_one_line_messages():
    for opt, text in (("t", "80,80"), ("t", "x"), ("T", "1.2.3.4/1")):
        with pytest.raises(ConfigError) as e:
            parse(opt, text)
        assert "\n" not in str(e.value)
        assert isinstance(e.value, (PortSpecError, FwdRuleError))


def test_rule_parse_text_ends_at_nul_and_echoes_control_characters_escaped():
    assert texts("t", "80\x00garbage") == ["TCP [*]:80  =>  80 "]
    assert failure(parse, "t", "8\x01") == ("Invalid port specifier '8\\x01'",)


# ---------------------------------------------------------------------------- model and fuzz
@st.composite
def include_lists(draw):
    """Disjoint include ranges with targets, plus exclusions: (text, expected (first, last, to))."""
    cuts = sorted(draw(st.sets(st.integers(1, 2000), min_size=2, max_size=10)))
    items, ranges = [], []
    for lo, hi in zip(cuts[::2], cuts[1::2]):
        hi = draw(st.integers(lo, hi - 1)) if hi > lo else lo
        shift = draw(st.integers(-lo + 1, 3000))
        form = draw(st.sampled_from(["plain", "range", "target"]))
        text = f"{lo}" if lo == hi else f"{lo}-{hi}"
        if form == "target":
            t0, t1 = lo + shift, hi + shift
            text += f":{t0}" if t0 == t1 else f":{t0}-{t1}"
        else:
            shift = 0
        items.append(text)
        ranges.append((lo, hi, shift))
    excl = draw(st.lists(st.tuples(st.integers(1, 2000), st.integers(0, 20)), max_size=3))
    excluded = set()
    for a, n in excl:
        items.insert(draw(st.integers(0, len(items))), f"~{a}-{min(a + n, 65535)}")
        excluded |= set(range(a, min(a + n, 65535) + 1))
    want = []
    for lo, hi, shift in ranges:
        port = lo
        while port <= hi:
            if port in excluded:
                port += 1
                continue
            end = port
            while end + 1 <= hi and end + 1 not in excluded:
                end += 1
            want.append((port, end, port + shift))
            port = end + 1
    return ",".join(items), want


@settings(max_examples=200, deadline=None)
@given(include_lists(), st.sampled_from("tuTU"))
def test_rule_parse_model_generated_lists_give_the_model_runs(case, opt):
    text, want = case
    got = parse(opt, text)
    assert [(r.first, r.last, r.to) for r in got] == want
    pif, proto = OPTS[opt]
    assert all(r.pif == pif and r.proto == proto and r.flags == DUAL for r in got)


ALPHABET = "0123456789-~,:/%*[].abcdefx lonuti"


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(alphabet=ALPHABET, max_size=30), st.text(max_size=20)),
       st.sampled_from("tuTU"), st.integers(0, FWD_CAP_ALL),
       st.tuples(st.integers(0, 65535), st.integers(0, 65535)))
def test_rule_parse_any_text_gives_valid_rules_or_a_config_error(text, opt, caps, eph):
    try:
        got = parse(opt, text, caps=caps, ephemeral=eph)
    except (PortSpecError, FwdRuleError) as e:
        assert str(e) and "\n" not in str(e)
        return
    if got is None:
        assert text.split("\x00")[0] == "none"
        return
    t = FwdTable(caps)
    for rule in got:                # every rule valid and free of conflicts: re-adding works
        t = fwd_rule_add(t, rule)
    assert list(t.rules) == got


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("tuTU"), st.text(alphabet=ALPHABET, max_size=16)),
                max_size=5), st.integers(0, FWD_CAP_ALL))
def test_command_line_any_sequence_gives_a_table_or_a_config_error(args, caps):
    flat = [x for opt, text in args for x in (f"-{opt}", text)]
    try:
        t = command_line(*flat, caps=caps)
    except ConfigError:
        return
    assume(t.rules)
    assert len(t.rules) == len(set(t.rules))
