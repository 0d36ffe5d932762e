"""Tests for `auto`: parsing /proc/net tables (pasta.shell.autofwd), choosing the ports each `auto`
rule forwards (pasta.core.fwd_rule) and reconciling listeners (pasta.shell.fwd_listen, with stand-in
open/close callables and /proc/net tables).

The parser is checked against the kernel's real output in tests/kernel/test_procnet.py; here
against lines in the kernel's documented format (seq_printf in net/ipv4/tcp_ipv4.c,
net/ipv6/tcp_ipv6.c, net/ipv4/udp.c), including IPv6 rows and headers.
"""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from pasta.shell.autofwd import TCP_LISTEN, UDP_BOUND, bound_ports
from pasta.shell.fwd_listen import FwdListen
from pasta.core.fwd_rule import (FWD_CAP_ALL, IPPROTO_TCP, IPPROTO_UDP, PIF_HOST, fwd_listen_wanted,
                            fwd_rule_parse, fwd_scan_wanted, fwd_table)
from helpers.procnet import ProcNet

EPH = (49152, 65535)

TCP4 = (b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
        b"timeout inode\n"
        b"   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0"
        b"        0 1234 1 0000000000000000 100 0 0 10 0\n"
        b"   1: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0"
        b"        0 1235 1 0000000000000000 100 0 0 10 0\n"
        b"   2: 0200A8C0:D431 0100A8C0:0050 01 00000000:00000000 00:00000000 00000000  1000"
        b"        0 1236 1 0000000000000000 20 4 30 10 -1\n")
TCP6 = (b"  sl  local_address                         remote_address                        st"
        b" tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        b"   0: 00000000000000000000000000000000:0277 00000000000000000000000000000000:0000 0A"
        b" 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 100 0 0"
        b" 10 0\n"
        b"   1: 00000000000000000000000001000000:A000 00000000000000000000000001000000:0050 06"
        b" 00000000:00000000 03:00000F9C 00000000     0        0 0 3 0000000000000000\n")
UDP4 = (b"   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
        b"timeout inode ref pointer drops\n"
        b" 1234: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101"
        b"        0 555 2 0000000000000000 0\n"
        b" 2000: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0"
        b"        0 556 2 0000000000000000 0\n"
        b" 2001: 0200A8C0:E2C1 08080808:0035 01 00000000:00000000 00:00000000 00000000  1000"
        b"        0 557 2 0000000000000000 0\n")


def test_listening_tcp_ports_v4_and_v6():
    assert bound_ports(TCP4, TCP_LISTEN) == {8080, 22}
    assert bound_ports(TCP6, TCP_LISTEN) == {631}


def test_bound_udp_ports_skip_connected_sockets():
    assert bound_ports(UDP4, UDP_BOUND) == {53, 68}


def test_other_states_and_garbage_give_nothing():
    assert bound_ports(TCP4, UDP_BOUND) == set()
    assert bound_ports(b"", TCP_LISTEN) == set()
    assert bound_ports(b"garbage\n\x00\xff 0: zz:zz\n", TCP_LISTEN) == set()


def test_port_zero_is_never_reported():
    line = (b"   0: 00000000:0000 00000000:0000 0A 00000000:00000000 00:00000000 00000000"
            b"     0        0 1 1 0 100 0 0 10 0\n")
    assert bound_ports(line, TCP_LISTEN) == set()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 65535), st.sampled_from([1, 6, 7, 10])), max_size=40))
def test_generated_tables(rows):
    text = b"  sl  local_address rem_address   st\n" + b"".join(
        b"%4d: 0100007F:%04X 00000000:0000 %02X 00000000:00000000 00:00000000 00000000 0 0 1\n"
        % (i, port, state) for i, (port, state) in enumerate(rows))
    for state in (1, 6, 7, 10):
        assert bound_ports(text, state) == {p for p, s in rows if s == state}


# ------------------------------------------------------------------------ fwd_scan_wanted()
def test_tcp_direction_forwards_others_tcp_listeners_only():
    assert fwd_scan_wanted(IPPROTO_TCP, {80, 443, 9000}, {53}, {9000}, set()) == {80, 443}


def test_udp_direction_mirrors_tcp_listeners():
    # UDP bound ports plus TCP listeners (iperf3: TCP control port, UDP data on the same port),
    # minus our own listeners of each protocol.
    assert fwd_scan_wanted(IPPROTO_UDP, {5201, 9000}, {53, 7000}, {9000}, {7000}) == {5201, 53}


def test_exclusions_apply_to_everything():
    table = fwd_table(FWD_CAP_ALL, fwd_rule_parse("auto,~50-60,~5201", PIF_HOST, IPPROTO_UDP,
                                                  FWD_CAP_ALL, EPH))
    scan = {(PIF_HOST, IPPROTO_UDP): fwd_scan_wanted(IPPROTO_UDP, {5201, 80}, {53, 61}, set(),
                                                     set())}
    assert {s.port for s in fwd_listen_wanted(table, scan)} == {80, 61}


# ----------------------------------------------------------------------------- FwdListen.scan()
class Engine:
    def call_later(self, _delay, _fn):
        return self

    def cancel(self):
        pass


class Fake:
    def __init__(self, refuse=()):
        self.refuse = set(refuse)
        self.open: dict = {}
        self.log: list = []

    def add(self, sock, target):
        if sock.port in self.refuse:
            raise OSError(98, "Address already in use")
        handle = (sock.port, 6 if sock.v6 else 4)
        self.open[handle] = True
        self.log.append(("add", sock.port))
        return handle

    def remove(self, handle):
        del self.open[handle]
        self.log.append(("remove", handle[0]))


def auto(f, proto=IPPROTO_TCP):
    """-t auto (or -u auto) with both families, scanning a stand-in namespace."""
    ns = ProcNet()
    table = fwd_table(FWD_CAP_ALL, fwd_rule_parse("auto", PIF_HOST, proto, FWD_CAP_ALL, EPH))
    fl = FwdListen(Engine(), table, {(PIF_HOST, proto): (f.add, f.remove)}, lambda in_ns: ns)
    return fl, ns


def forwarded(fl) -> set:
    return {s.port for s in fl.opened}


def failed(fl) -> set:
    return {key[2] for key in fl.failed}


def test_reconcile_opens_new_ports_and_closes_gone_ones():
    f = Fake()
    fl, ns = auto(f)
    ns.tcp = {80, 443}
    fl.scan()
    assert forwarded(fl) == {80, 443} and len(f.open) == 4
    ns.tcp = {443, 8080}
    fl.scan()
    assert forwarded(fl) == {443, 8080}
    assert ("remove", 80) in f.log and ("add", 8080) in f.log
    assert sorted(f.open) == [(443, 4), (443, 6), (8080, 4), (8080, 6)]
    ns.tcp = set()
    fl.scan()
    assert fl.opened == {} and f.open == {}


def test_reconcile_retries_a_refused_port():
    f = Fake(refuse={22})
    fl, ns = auto(f)
    ns.tcp = {22}
    fl.scan()
    fl.scan()
    assert fl.opened == {} and failed(fl) == {22}
    f.refuse.clear()
    fl.scan()
    assert 22 in forwarded(fl) and failed(fl) == set()


def test_reconcile_forgets_failures_of_ports_no_longer_wanted():
    f = Fake(refuse={22})
    fl, ns = auto(f)
    ns.tcp = {22}
    fl.scan()
    ns.tcp = set()
    fl.scan()
    assert failed(fl) == set()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sets(st.integers(1, 40), max_size=10), min_size=1, max_size=8),
       st.sets(st.integers(1, 40), max_size=5))
def test_reconcile_converges_to_the_wanted_set(rounds, refused):
    f = Fake(refuse=refused)
    fl, ns = auto(f, IPPROTO_UDP)
    for want in rounds:
        ns.udp = want
        fl.scan()
        assert forwarded(fl) == want - refused
        assert {h[0] for h in f.open} == want - refused      # nothing leaks, nothing stale
