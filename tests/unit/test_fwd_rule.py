"""Tests for the forwarding table (pasta.core.fwd_rule) and its listeners (pasta.shell.fwd_listen), with
stand-in listener openers: rules made by -t/-u/-T/-U specs (the grammar itself: test_portspec.py),
validation and conflicts, the diff of two tables, all-or-nothing replace(), start-up failures and
auto-scan edits."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings, strategies as st

from pasta.util.errors import ConfigError, SetupError
from pasta.shell.fwd_listen import FwdListen, FwdListenError, fwd_listen_init
from pasta.core.fwd_rule import (ANY4, ANY6, FWD_CAP_ALL, FWD_CAP_IFNAME, FWD_CAP_IPV4,
                                 FWD_CAP_IPV6, FWD_CAP_SCAN, FWD_CAP_TCP, FWD_CAP_UDP,
                                 FWD_DUAL_STACK_ANY, FWD_SCAN, FWD_WEAK, IPPROTO_TCP, IPPROTO_UDP,
                                 LOOPBACK4, LOOPBACK6, PIF_HOST, PIF_SPLICE, FwdRule,
                                 FwdRuleError, FwdTable, Sock, fwd_caps, fwd_listen_diff,
                                 fwd_listen_wanted, fwd_parse_ephemeral, fwd_rule_add,
                                 fwd_rule_fmt, fwd_rule_parse, fwd_rules_for_caps, fwd_table,
                                 fwd_table_parse, inany_ntop)
from helpers.procnet import ProcNet

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address
CAPS4 = FWD_CAP_ALL & ~FWD_CAP_IPV6
TCP, UDP, HOST, SPLICE = IPPROTO_TCP, IPPROTO_UDP, PIF_HOST, PIF_SPLICE
DUAL = FWD_DUAL_STACK_ANY


def rules(text, pif=HOST, proto=TCP, caps=FWD_CAP_ALL, ephemeral=(49152, 65535)):
    return fwd_rule_parse(text, pif, proto, caps, ephemeral) or []


def table(*specs, caps=FWD_CAP_ALL, ephemeral=(49152, 65535)):
    """A table of (text, pif, proto) specs, parsed in order into one table as pasta does."""
    t = FwdTable(caps)
    for text, pif, proto in specs:
        t = fwd_table_parse(t, text, pif, proto, ephemeral)
    return t


# ---------------------------------------------------------------------------------- building
def test_single_port_no_address_both_families_is_dual_stack():
    assert rules("22") == [FwdRule(HOST, TCP, 22, 22, 22, ANY6, flags=DUAL)]


def test_one_family_gives_its_unspecified_address_not_dual():
    assert rules("22", caps=CAPS4) == [FwdRule(HOST, TCP, 22, 22, 22, ANY4)]
    v6only = FWD_CAP_ALL & ~FWD_CAP_IPV4
    assert rules("22", caps=v6only) == [FwdRule(HOST, TCP, 22, 22, 22, ANY6)]


def test_ranges_and_mapping():
    assert rules("80:8080,90-92:1090-1092", proto=UDP) == [
        FwdRule(HOST, UDP, 80, 80, 8080, ANY6, flags=DUAL),
        FwdRule(HOST, UDP, 90, 92, 1090, ANY6, flags=DUAL)]


def test_exclusions_split_a_range_into_runs():
    got = rules("1000-1010,~1003,~1005-1006")
    assert [(r.first, r.last, r.to) for r in got] == [(1000, 1002, 1000), (1004, 1004, 1004),
                                                       (1007, 1010, 1007)]
    got = rules("1000-1010:2000-2010,~1003")
    assert [(r.first, r.last, r.to) for r in got] == [(1000, 1002, 2000), (1004, 1010, 2004)]


def test_exclusion_only_is_weak_and_skips_the_ephemeral_range():
    got = rules("~22", ephemeral=(32768, 60999))
    assert [(r.first, r.last) for r in got] == [(1, 21), (23, 32767), (61000, 65535)]
    assert all(r.flags == FWD_WEAK | DUAL for r in got)


def test_address_and_interface():
    assert rules("192.0.2.1%eth0/80") == [FwdRule(HOST, TCP, 80, 80, 80, V4("192.0.2.1"),
                                                  ifname="eth0")]
    assert rules("[2001:db8::2]/22") == [FwdRule(HOST, TCP, 22, 22, 22, V6("2001:db8::2"))]
    assert rules("%lo/80") == [FwdRule(HOST, TCP, 80, 80, 80, ANY6, ifname="lo", flags=DUAL)]
    assert rules("0.0.0.0/80") == [FwdRule(HOST, TCP, 80, 80, 80, ANY4)]


def test_ns_side_rules_listen_on_interface_lo_or_each_loopback():
    assert rules("1025", SPLICE, UDP) == [FwdRule(SPLICE, UDP, 1025, 1025, 1025, ANY6,
                                                  ifname="lo", flags=DUAL)]
    assert rules("1025", SPLICE, UDP, caps=CAPS4) == [
        FwdRule(SPLICE, UDP, 1025, 1025, 1025, ANY4, ifname="lo")]
    no_if = FWD_CAP_ALL & ~FWD_CAP_IFNAME
    assert rules("1025", SPLICE, UDP, caps=no_if) == [
        FwdRule(SPLICE, UDP, 1025, 1025, 1025, LOOPBACK4),
        FwdRule(SPLICE, UDP, 1025, 1025, 1025, LOOPBACK6)]


def test_auto_is_weak_scan_rules_over_every_non_ephemeral_port():
    assert rules("auto", ephemeral=(32768, 60999)) == [
        FwdRule(HOST, TCP, 1, 32767, 1, ANY6, flags=DUAL | FWD_WEAK | FWD_SCAN),
        FwdRule(HOST, TCP, 61000, 65535, 61000, ANY6, flags=DUAL | FWD_WEAK | FWD_SCAN)]
    got = rules("auto,~22,~6000-6010", proto=UDP)
    assert [(r.first, r.last) for r in got] == [(1, 21), (23, 5999), (6011, 49151)]
    assert all(r.flags & FWD_SCAN for r in got)


def test_auto_without_scan_capability_is_refused_and_none_gives_nothing():
    with pytest.raises(ConfigError, match="^'auto' port forwarding is only allowed for pasta$"):
        rules("auto", caps=FWD_CAP_ALL & ~FWD_CAP_SCAN)
    assert fwd_rule_parse("none", HOST, TCP, FWD_CAP_ALL, (49152, 65535)) is None


def test_rules_for_caps_turn_dual_stack_into_the_family_left():
    both = table(("80", HOST, TCP), ("auto", SPLICE, UDP), ("127.0.0.1/22", HOST, TCP))
    got = fwd_rules_for_caps(both.rules, CAPS4)
    assert got[0] == FwdRule(HOST, TCP, 80, 80, 80, ANY4)
    assert {(r.addr, r.ifname, r.flags) for r in got[1:-1]} == {
        (ANY4, "lo", FWD_WEAK | FWD_SCAN)}
    assert got[-1] == both.rules[-1]
    # as parsing with that cap missing would have made them
    assert got == list(table(("80", HOST, TCP), ("auto", SPLICE, UDP),
                             ("127.0.0.1/22", HOST, TCP), caps=CAPS4).rules)
    assert fwd_rules_for_caps(both.rules, FWD_CAP_ALL & ~FWD_CAP_SCAN) == [
        both.rules[0], both.rules[-1]]
    with pytest.raises(FwdRuleError, match="^IPv4 forward, but IPv4 not enabled$"):
        fwd_table(FWD_CAP_ALL & ~FWD_CAP_IPV4,
                  fwd_rules_for_caps(both.rules, FWD_CAP_ALL & ~FWD_CAP_IPV4))


@pytest.mark.parametrize("text, expected", [
    ("32768\t60999\n", (32768, 60999)), ("1024\t65535", (1024, 65535)),
    ("32768 60999\n", None), ("32768\t65536\n", None), ("x", None), ("", None),
    ("32768\t60999 \n", None),
])
def test_ephemeral_range_text_is_read_as_pasta_reads_it(text, expected):
    assert fwd_parse_ephemeral(text) == expected


# -------------------------------------------------------------------------------- validation
def test_text_is_pastas():
    r = rules("22")[0]
    assert fwd_rule_fmt(r) == "TCP [*]:22  =>  22 "
    r = FwdRule(HOST, TCP, 8080, 8080, 80, ANY4, taddr=V4("10.89.0.2"))
    assert fwd_rule_fmt(r) == "TCP [0.0.0.0]:8080  =>  10.89.0.2:80 "
    r = FwdRule(HOST, TCP, 1, 32767, 1, ANY6, flags=FWD_DUAL_STACK_ANY | FWD_WEAK | FWD_SCAN)
    assert fwd_rule_fmt(r) == "TCP [*]:1-32767  =>  1-32767  (best effort) (auto-scan)"
    assert fwd_rule_fmt(FwdRule(HOST, UDP, 1025, 1025, 1025, ANY6, ifname="lo",
                                flags=FWD_DUAL_STACK_ANY)) == "UDP [*]%lo:1025  =>  1025 "


@pytest.mark.parametrize("specs", [
    [("80", HOST, TCP), ("80", HOST, TCP)],                     # exact duplicate
    [("70-90", HOST, TCP), ("85-100", HOST, TCP)],              # overlapping ranges
    [("80", HOST, TCP), ("127.0.0.1/80", HOST, TCP)],           # dual stack matches everything
    [("0.0.0.0/80", HOST, TCP), ("127.0.0.1/79-81", HOST, TCP)],  # 0.0.0.0: every IPv4
    [("[::]/80", HOST, TCP), ("::1/80", HOST, TCP)],            # :: (not dual): every IPv6
    [("127.0.0.1%lo/80", HOST, TCP), ("127.0.0.1%eth0/80", HOST, TCP)],  # ifname ignored
    [("~22", HOST, TCP), ("80", HOST, TCP)],
])
def test_conflicts_are_refused_with_both_rules_named(specs):
    with pytest.raises(FwdRuleError) as e:
        table(*specs)
    assert str(e.value).startswith("Forwarding configuration conflict: ")
    assert " versus " in str(e.value)
    assert isinstance(e.value, ConfigError)
    new = str(e.value).split(": ", 1)[1].split(" versus ")[0]
    assert e.value.lines == (str(e.value), f"Unable to add rule {new}")


def test_conflict_message_is_pastas_exactly():
    with pytest.raises(FwdRuleError) as e:
        table(("auto", HOST, TCP), ("80", HOST, TCP), ephemeral=(32768, 60999))
    assert e.value.lines == (
        "Forwarding configuration conflict: TCP [*]:80  =>  80  versus "
        "TCP [*]:1-32767  =>  1-32767  (best effort) (auto-scan)",
        "Unable to add rule TCP [*]:80  =>  80 ")


@pytest.mark.parametrize("specs", [
    [("80", HOST, TCP), ("80", HOST, UDP)],                     # other protocol
    [("80", HOST, TCP), ("80", SPLICE, TCP)],                   # other pif
    [("127.0.0.1/80", HOST, TCP), ("127.0.0.2/80", HOST, TCP)],
    [("0.0.0.0/80", HOST, TCP), ("[::]/80", HOST, TCP)],        # other families
    [("70-79", HOST, TCP), ("80-90", HOST, TCP)],
])
def test_non_conflicting_rules_are_kept_in_order(specs):
    t = table(*specs)
    assert t.rules == tuple(r for text, pif, proto in specs for r in rules(text, pif, proto))


@pytest.mark.parametrize("rule, caps, message", [
    (FwdRule(HOST, TCP, 9, 8, 9), FWD_CAP_ALL, "Rule has invalid port range 9-8"),
    (FwdRule(HOST, TCP, 0, 8, 1), FWD_CAP_ALL, "Forwarding rule attempts to map from port 0"),
    (FwdRule(HOST, TCP, 1, 8, 65530), FWD_CAP_ALL, "Forwarding rule attempts to map to port 0"),
    (FwdRule(HOST, TCP, 1, 1, 1, flags=8), FWD_CAP_ALL, "Rule has invalid flags 0x8"),
    (FwdRule(HOST, TCP, 1, 1, 1, ANY4, flags=FWD_DUAL_STACK_ANY), FWD_CAP_ALL,
     "Dual stack rule has non-wildcard address 0.0.0.0"),
    (FwdRule(HOST, TCP, 1, 1, 1, flags=FWD_DUAL_STACK_ANY), CAPS4,
     "Dual stack forward, but IPv6 not enabled"),
    (FwdRule(HOST, TCP, 1, 1, 1, V6("::1")), CAPS4, "IPv6 forward, but IPv6 not enabled"),
    (FwdRule(HOST, UDP, 1, 1, 1), FWD_CAP_ALL & ~FWD_CAP_UDP,
     "Can't add UDP forwarding rule, UDP not enabled"),
    (FwdRule(HOST, TCP, 1, 1, 1), FWD_CAP_ALL & ~FWD_CAP_TCP,
     "Can't add TCP forwarding rule, TCP not enabled"),
    (FwdRule(HOST, 1, 1, 1, 1), FWD_CAP_ALL,
     "Unsupported protocol 0x1 (ICMP) for forwarding rule"),
    (FwdRule(HOST, 132, 1, 1, 1), FWD_CAP_ALL,
     "Unsupported protocol 0x84 (<unknown protocol>) for forwarding rule"),
    (FwdRule(2, TCP, 1, 1, 1), FWD_CAP_ALL, "Received rules for non-existent table"),
    (FwdRule(HOST, TCP, 1, 1, 1, ifname="abcdefghijklmnop"), FWD_CAP_ALL,
     "Interface name was not NULL terminated"),
    (FwdRule(HOST, TCP, 1, 1, 1, flags=FWD_DUAL_STACK_ANY, taddr=V4("10.0.0.1")), FWD_CAP_ALL,
     "Dual stack forward to IPv4 address 10.0.0.1 unsupported"),
    (FwdRule(HOST, TCP, 1, 1, 1, ANY4, taddr=V4("224.0.0.1")), FWD_CAP_ALL,
     "Multicast target address 224.0.0.1 for forwarding rule"),
    (FwdRule(HOST, TCP, 1, 1, 1, ANY4, taddr=V4("255.255.255.255")), FWD_CAP_ALL,
     "Multicast target address 255.255.255.255 for forwarding rule"),
    (FwdRule(HOST, TCP, 1, 1, 1, ANY6, taddr=V6("ff02::1")), FWD_CAP_ALL,
     "Multicast target address ff02::1 for forwarding rule"),
    (FwdRule(HOST, TCP, 1, 1, 1, ANY4, taddr=V6("fd00::2")), FWD_CAP_ALL,
     "Forward from IPv4 (0.0.0.0) to IPv6 (fd00::2) unsupported"),
    (FwdRule(HOST, TCP, 1, 1, 1, V6("::1"), taddr=V4("10.0.0.1")), FWD_CAP_ALL,
     "Forward from IPv6 (::1) to IPv4 (10.0.0.1) unsupported"),
])
def test_invalid_rules_are_refused_with_pastas_message(rule, caps, message):
    with pytest.raises(FwdRuleError) as e:
        fwd_rule_add(FwdTable(caps), rule)
    assert str(e.value) == message


def test_dual_stack_target_refusal_carries_pastas_hint():
    rule = FwdRule(HOST, TCP, 1, 1, 1, flags=FWD_DUAL_STACK_ANY, taddr=V6("fd00::2"))
    with pytest.raises(FwdRuleError) as e:
        fwd_rule_add(FwdTable(FWD_CAP_ALL), rule)
    assert e.value.lines == ("Dual stack forward to IPv6 address fd00::2 unsupported",
                             "Did you mean [::]/... instead?")


def test_ifname_and_scan_flags_are_not_checked_against_caps_when_adding():
    # pasta's fwd_rule_add() leaves those to the parser (and to the listeners)
    caps = FWD_CAP_ALL & ~FWD_CAP_IFNAME & ~FWD_CAP_SCAN
    fwd_rule_add(FwdTable(caps), FwdRule(HOST, TCP, 1, 1, 1, ANY4, ifname="lo", flags=FWD_SCAN))


def test_rule_text_addresses_are_glibcs():
    assert inany_ntop(V6("::102:304")) == "::1.2.3.4"       # inet_ntop's IPv4-compatible form
    assert inany_ntop(V6("::1:0")) == "::0.1.0.0"
    assert inany_ntop(V6("::1")) == "::1" and inany_ntop(V6("::100")) == "::100"
    assert inany_ntop(V6("1::")) == "1::" and inany_ntop(V4("10.0.0.1")) == "10.0.0.1"
    assert fwd_rule_fmt(FwdRule(HOST, TCP, 80, 80, 80, V6("::102:304"))) == \
        "TCP [::1.2.3.4]:80  =>  80 "
    assert fwd_rule_fmt(FwdRule(HOST, TCP, 80, 80, 80, ANY4, taddr=V4("0.0.0.0"))) == \
        "TCP [0.0.0.0]:80  =>  80 "


def test_caps_follow_pastas_bits():
    assert fwd_caps(True, True, True, True, True) == FWD_CAP_ALL == 0x3F
    assert fwd_caps(True, False, True, False, False, False) == FWD_CAP_IPV4 | FWD_CAP_TCP


def test_without_removes_the_exact_rule_only():
    t = table(("80", HOST, TCP), ("81", HOST, TCP))
    assert t.without(t.rules[0]).rules == (t.rules[1],)
    with pytest.raises(KeyError):
        t.without(FwdRule(HOST, TCP, 80, 80, 81))


# -------------------------------------------------------------------------------------- diff
def test_diff_opens_closes_keeps_and_retargets():
    old = table(("80-81", HOST, TCP), ("90", HOST, TCP), caps=CAPS4)
    new = table(("81:8081", HOST, TCP), ("91", HOST, TCP), caps=CAPS4)
    opened = fwd_listen_wanted(old, {})
    diff = fwd_listen_diff(fwd_listen_wanted(new, {}), opened)
    sock = lambda port: Sock(HOST, TCP, False, None, "", port)  # noqa: E731
    assert [s for s, _ in diff.open] == [sock(91)]
    assert sorted(diff.close) == [sock(80), sock(90)]
    assert [s for s, _ in diff.keep] == [sock(81)]
    assert diff.retarget(opened) == [(sock(81), 8081)]


def test_wanted_sockets_of_scan_rules_follow_the_scan_state():
    t = table(("auto,~22,~53", HOST, UDP), ("53", HOST, UDP), caps=CAPS4)
    assert {s.port for s in fwd_listen_wanted(t, {})} == {53}
    scan = {(HOST, UDP): {22, 5000, 49151, 49152}}        # 49152: ephemeral, not forwarded
    assert {s.port for s in fwd_listen_wanted(t, scan)} == {53, 5000, 49151}
    assert {s.port for s in fwd_listen_wanted(t, scan, scan_only=True)} == {5000, 49151}


# ------------------------------------------------------------------- listeners: a stand-in
class Engine:
    def __init__(self):
        self.timers = []

    def call_later(self, delay, fn):
        self.timers.append(fn)
        return self

    def cancel(self):
        pass


class Lst:
    def __init__(self, sock, target):
        self.sock, self.target = sock, target


class Opener:
    """Listener entry points that record what is open and fail on chosen ports."""

    def __init__(self, fail=()):
        self.fail = set(fail)
        self.live: dict = {}
        self.calls: list = []

    def ops(self, *keys):
        return {key: (self.open, self.close) for key in keys}

    def open(self, sock, target):
        if sock.port in self.fail:
            raise OSError(98, "Address already in use")
        assert sock not in self.live
        lst = self.live[sock] = Lst(sock, target)
        self.calls.append((sock.v6, sock.port, target))
        return lst

    def close(self, lst):
        assert self.live.pop(lst.sock) is lst

    def view(self):
        return {(s.proto, s.v6, s.port): lst.target for s, lst in self.live.items()}


ALL_OPS = ((HOST, TCP), (HOST, UDP), (SPLICE, TCP), (SPLICE, UDP))


# -------------------------------------------------------------------------- start-up (init)
def test_startup_binds_every_port_and_family():
    o = Opener()
    fl = fwd_listen_init(Engine(), table(("80:8080,90-91", HOST, TCP)), o.ops(*ALL_OPS))
    assert len(fl.opened) == 6 and o.calls == [
        (False, 80, 8080), (True, 80, 8080), (False, 90, 90), (True, 90, 90), (False, 91, 91),
        (True, 91, 91)]


def test_startup_address_picks_its_family_only():
    o = Opener()
    fwd_listen_init(Engine(), table(("2001:db8::2/22", HOST, TCP)), o.ops(*ALL_OPS))
    assert o.calls == [(True, 22, 22)]


def test_startup_listed_port_failure_is_fatal_with_pastas_message():
    o = Opener(fail={81})
    with pytest.raises(SetupError) as e:
        fwd_listen_init(Engine(), table(("80-82", HOST, UDP), caps=CAPS4), o.ops(*ALL_OPS))
    assert str(e.value) == ("Failed to bind port 81 (Address already in use) for option '-u', "
                            "exiting")
    assert o.live == {}                         # what was opened is closed again


def test_startup_exclusion_only_tolerates_failures_but_not_all():
    o = Opener(fail={5})
    fwd_listen_init(Engine(), table(("~6-65535", HOST, TCP), caps=CAPS4,
                                    ephemeral=(60000, 60001)), o.ops(*ALL_OPS))
    assert [c[1] for c in o.calls] == [1, 2, 3, 4]
    o = Opener(fail=set(range(1, 7)))
    with pytest.raises(SetupError, match="Failed to bind any port for '-t'"):
        fwd_listen_init(Engine(), table(("~7-65535", HOST, TCP), caps=CAPS4), o.ops(*ALL_OPS))
    # -T/-U: nothing can be checked in advance
    fl = fwd_listen_init(Engine(), table(("~7-65535", SPLICE, TCP), caps=CAPS4),
                         o.ops(*ALL_OPS))
    assert len(fl.opened) == 0


# --------------------------------------------------------------------- replace (all or none)
def test_replace_opens_new_closes_old_and_keeps_common_sockets():
    o = Opener()
    fl = FwdListen(Engine(), table(("80,81", HOST, TCP), caps=CAPS4), o.ops(*ALL_OPS))
    kept = o.live[Sock(HOST, TCP, False, None, "", 81)]
    new = table(("81:8081,82", HOST, TCP), ("53", HOST, UDP), caps=CAPS4)
    fl.replace(new)
    assert fl.table is new
    assert o.view() == {(TCP, False, 81): 8081, (TCP, False, 82): 82, (UDP, False, 53): 53}
    assert o.live[Sock(HOST, TCP, False, None, "", 81)] is kept     # same socket, new target


@pytest.mark.parametrize("failing", [82, 53, 1053])
def test_replace_failure_keeps_the_old_table_and_its_listeners(failing):
    o = Opener()
    old = table(("80,81", HOST, TCP), ("1000", SPLICE, UDP), caps=CAPS4)
    fl = FwdListen(Engine(), old, o.ops(*ALL_OPS))
    before = dict(o.live)
    o.fail = {failing}
    new = table(("81,82", HOST, TCP), ("53", HOST, UDP), ("1053", SPLICE, UDP), caps=CAPS4)
    with pytest.raises(FwdListenError, match=f"Failed to bind port {failing} "):
        fl.replace(new)
    assert fl.table is old and o.live == before
    assert {s: lst for s, (lst, _) in fl.opened.items()} == before


def test_replace_tolerates_failures_of_best_effort_rules():
    o = Opener(fail={3})
    fl = FwdListen(Engine(), FwdTable(CAPS4), o.ops(*ALL_OPS))
    fl.replace(table(("~6-65535", HOST, TCP), caps=CAPS4, ephemeral=(60000, 60001)))
    assert sorted(p for _, _, p in o.view()) == [1, 2, 4, 5]


def test_replace_with_an_empty_table_closes_everything():
    o = Opener()
    fl = FwdListen(Engine(), table(("80-90", HOST, TCP), ("53", SPLICE, UDP)), o.ops(*ALL_OPS))
    assert len(o.live) == 11 * 2 + 2
    fl.replace(FwdTable(FWD_CAP_ALL))
    assert o.live == {} and fl.opened == {}


def test_replace_refuses_a_pif_it_cannot_serve():
    o = Opener()
    fl = FwdListen(Engine(), FwdTable(FWD_CAP_ALL), o.ops((HOST, TCP)))
    with pytest.raises(FwdListenError, match="option '-U'"):
        fl.replace(table(("53", SPLICE, UDP)))
    assert o.live == {}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sets(st.integers(1, 30), max_size=6), st.sets(st.integers(1, 30),
                                                                          max_size=2)),
                min_size=1, max_size=6))
def test_replace_is_all_or_nothing(rounds):
    o = Opener()
    fl = FwdListen(Engine(), FwdTable(CAPS4), o.ops(*ALL_OPS))
    for ports, fail in rounds:
        o.fail = fail
        new = fwd_table(CAPS4, [FwdRule(HOST, TCP, p, p, p + 100, ANY4) for p in sorted(ports)])
        old_view, old_table = o.view(), fl.table
        fresh = ports - {p for _, _, p in old_view}       # open already: nothing to fail
        try:
            fl.replace(new)
        except FwdListenError:
            assert fresh & fail and fl.table is old_table and o.view() == old_view
        else:
            assert not fresh & fail and fl.table is new
            assert o.view() == {(TCP, False, p): p + 100 for p in ports}


# ---------------------------------------------------------------------------------- auto scan
def test_scan_edits_the_scan_state_and_our_own_listeners_are_not_forwarded_back():
    o = Opener()
    sides = {True: ProcNet(), False: ProcNet()}
    t = table(("auto", HOST, TCP), ("auto", HOST, UDP), ("8000", SPLICE, TCP), caps=CAPS4)
    fl = FwdListen(Engine(), t, o.ops(*ALL_OPS), lambda in_ns: sides[in_ns])
    sides[True].tcp = {80, 8000}            # 8000 is our own -T listener in the namespace
    sides[True].udp = {53}
    fl.scan()
    assert fl.scan_state == {(HOST, TCP): {80}, (HOST, UDP): {80, 53}}
    assert o.view() == {(TCP, False, 80): 80, (UDP, False, 80): 80, (UDP, False, 53): 53,
                        (TCP, False, 8000): 8000}
    sides[True].tcp = set()
    fl.scan()
    assert o.view() == {(UDP, False, 53): 53, (TCP, False, 8000): 8000}


def test_replace_adds_scan_rules_that_follow_the_next_scan():
    o = Opener()
    ns, engine = ProcNet(), Engine()
    fl = FwdListen(engine, FwdTable(CAPS4), o.ops(*ALL_OPS), lambda in_ns: ns)
    fl.start()
    assert engine.timers == []               # nothing to scan for
    ns.tcp = {5201}
    fl.replace(table(("auto", HOST, TCP), caps=CAPS4))
    assert o.live == {} and len(engine.timers) == 1
    engine.timers.pop()()                    # the timer fires: one scan
    assert o.view() == {(TCP, False, 5201): 5201}
    fl.replace(FwdTable(CAPS4))              # and dropping them closes their sockets
    assert o.live == {}


def test_close_closes_every_listener():
    o = Opener()
    ns = ProcNet()
    ns.tcp = {22}
    fl = FwdListen(Engine(), table(("auto", HOST, TCP), ("80", HOST, UDP)), o.ops(*ALL_OPS),
                   lambda in_ns: ns)
    fl.scan()
    assert len(o.live) == 4
    fl.close()
    assert o.live == {}


# ------------------------------------------------------------------- slirp4netns API backend
class Translator:
    def __init__(self, opener):
        self.fwd = FwdListen(Engine(), FwdTable(CAPS4), opener.ops((HOST, TCP), (HOST, UDP)))


def test_slirp_backend_adds_and_removes_rules_of_the_table():
    from podman_compat.slirp4netns import Backend
    o = Opener()
    tr = Translator(o)
    b = Backend(tr, V4("10.0.2.100"))
    b.add_hostfwd("tcp", V4("0.0.0.0"), 8080, V4("10.0.2.100"), 80)
    b.add_hostfwd("udp", V4("127.0.0.1"), 5353, V4("10.0.2.100"), 53)
    assert [fwd_rule_fmt(r) for r in tr.fwd.table.rules] == [
        "TCP [0.0.0.0]:8080  =>  80 ", "UDP [127.0.0.1]:5353  =>  53 "]
    assert o.view() == {(TCP, False, 8080): 80, (UDP, False, 5353): 53}
    o.fail = {9090}
    with pytest.raises(FwdListenError):
        b.add_hostfwd("tcp", V4("0.0.0.0"), 9090, V4("10.0.2.100"), 90)
    with pytest.raises(FwdRuleError):       # 0.0.0.0 covers 127.0.0.1
        b.add_hostfwd("tcp", V4("127.0.0.1"), 8080, V4("10.0.2.100"), 81)
    assert len(tr.fwd.table.rules) == 2
    b.remove_hostfwd("tcp", V4("0.0.0.0"), 8080)
    assert o.view() == {(UDP, False, 5353): 53}


LOOPBACK4_ = V4("127.0.0.1")


def test_replace_passes_target_addresses_to_the_listeners():
    """-t ADDR/PORT:TADDR/TPORT: the listener gets the packed target address as a third
    argument (rules without one keep the two-argument call)."""
    got = []
    ops = {(HOST, TCP): (lambda s, t, ta=None: got.append((s.port, t, ta)) or object(),
                         lambda l: None)}
    fl = FwdListen(Engine(), FwdTable(FWD_CAP_ALL), ops)
    fl.replace(fwd_table(FWD_CAP_ALL, [FwdRule(HOST, TCP, 80, 80, 8080, ANY4,
                                               taddr=V4("10.89.0.2")),
                                       FwdRule(HOST, TCP, 81, 81, 81, ANY4)]))
    assert got == [(80, 8080, bytes((10, 89, 0, 2))), (81, 81, None)]


def test_replace_refuses_what_the_listeners_cannot_do_yet():
    o = Opener()
    fl = FwdListen(Engine(), FwdTable(FWD_CAP_ALL), o.ops(*ALL_OPS))
    for rule in (FwdRule(SPLICE, TCP, 80, 80, 80, LOOPBACK4_, taddr=V4("10.0.2.100")),
                 FwdRule(SPLICE, TCP, 80, 80, 80, ANY4)):
        with pytest.raises(FwdListenError, match="Not supported yet: "):
            fl.replace(fwd_table(FWD_CAP_ALL, [rule]))
    # pasta's own -U form with the IFNAME capability is what pypasta does anyway
    fl.replace(fwd_table(FWD_CAP_ALL, [FwdRule(SPLICE, UDP, 1025, 1025, 1025, ANY6, ifname="lo",
                                               flags=FWD_DUAL_STACK_ANY)]))
    assert o.view() == {(UDP, False, 1025): 1025, (UDP, True, 1025): 1025}
    assert fl.table.rules[0].flags == FWD_DUAL_STACK_ANY
