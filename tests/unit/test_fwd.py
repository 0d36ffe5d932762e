"""Address translation rules (pasta-reference.md section 9) on packed addresses."""

from __future__ import annotations

import ipaddress

import pytest

from pasta.core import fwd
from pasta.front import conf as cli
from pasta.plan import netplan as NP


def P(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def rules(*argv: str, resolv: str = "nameserver 198.18.0.53\n") -> fwd.Rules:
    cfg = cli.parse_args(["--config-net", *argv, "true"])
    snap = NP.HostSnapshot(
        links=(NP.HostLink(2, "eth0", 1500),),
        addrs=(NP.HostAddr(2, 2, "198.51.100.2", 24), NP.HostAddr(10, 2, "2001:db8::2", 64)),
        routes=(NP.HostRoute(2, None, 0, oif=2, gateway="198.51.100.1"),
                NP.HostRoute(10, None, 0, oif=2, gateway="fe80::1")))
    return fwd.Rules.from_config(cfg, NP.plan(cfg, snap), resolv)


def test_defaults_map_gateway_to_host_loopback():
    r = rules()
    assert fwd.from_tap(r, False, 17, P("198.51.100.1"), 9) == fwd.LOOPBACK4
    assert fwd.from_tap(r, True, 17, P("fe80::1"), 9) == fwd.LOOPBACK6
    assert fwd.from_tap(r, False, 17, P("198.18.0.1"), 9) == P("198.18.0.1")
    assert fwd.from_tap(r, True, 58, P("2001:db8:ffff::1"), 0) == P("2001:db8:ffff::1")


def test_no_map_gw_keeps_gateway_remote():
    r = rules("--no-map-gw")
    assert fwd.from_tap(r, False, 17, P("198.51.100.1"), 9) == P("198.51.100.1")


def test_map_host_loopback_option_and_none():
    r = rules("--map-host-loopback", "198.51.100.9")
    assert fwd.from_tap(r, False, 17, P("198.51.100.9"), 9) == fwd.LOOPBACK4
    assert fwd.from_tap(r, False, 17, P("198.51.100.1"), 9) == P("198.51.100.1")
    r = rules("--map-host-loopback", "none")
    assert fwd.from_tap(r, False, 17, P("198.51.100.1"), 9) == P("198.51.100.1")


def test_dns_forward_only_ports_53_and_853():
    r = rules("--dns-forward", "169.254.0.1", "--dns-host", "127.0.0.1")
    for port in (53, 853):
        assert fwd.from_tap(r, False, 17, P("169.254.0.1"), port) == P("127.0.0.1")
        assert fwd.from_tap(r, False, 6, P("169.254.0.1"), port) == P("127.0.0.1")
    assert fwd.from_tap(r, False, 17, P("169.254.0.1"), 54) == P("169.254.0.1")
    assert fwd.from_tap(r, False, 1, P("169.254.0.1"), 53) == P("169.254.0.1")


def test_dns_host_from_resolv_conf():
    r = rules("--dns-forward", "169.254.0.1")
    assert fwd.from_tap(r, False, 17, P("169.254.0.1"), 53) == P("198.18.0.53")
    r6 = rules("--dns-forward", "fd00::53", resolv="nameserver 2001:db8::53\n")
    assert fwd.from_tap(r6, True, 17, P("fd00::53"), 53) == P("2001:db8::53")


def test_loopback_resolver_is_reached_through_the_gateway():
    r = rules(resolv="nameserver 127.0.0.53\n")
    # dns_match = the gateway: its port 53 goes to the resolver, other ports to 127.0.0.1.
    assert fwd.from_tap(r, False, 17, P("198.51.100.1"), 53) == P("127.0.0.53")
    assert fwd.from_tap(r, False, 17, P("198.51.100.1"), 80) == fwd.LOOPBACK4


def test_map_guest_addr():
    r = rules("--map-guest-addr", "198.51.100.200")
    assert fwd.from_tap(r, False, 17, P("198.51.100.200"), 9) == P("198.51.100.2")
    assert fwd.to_tap_src(r, False, P("198.51.100.2"), P("198.51.100.2")) == P("198.51.100.200")


def test_to_tap_src_rules():
    r = rules()
    seen = P("198.51.100.2")
    assert fwd.to_tap_src(r, False, P("127.0.0.1"), seen) == P("198.51.100.1")
    assert fwd.to_tap_src(r, False, P("127.0.0.2"), seen) == P("198.51.100.1")   # our_tap_addr
    assert fwd.to_tap_src(r, False, seen, seen) == P("198.51.100.1")
    assert fwd.to_tap_src(r, False, P("198.18.0.1"), seen) == P("198.18.0.1")
    assert fwd.to_tap_src(r, True, fwd.LOOPBACK6, P("2001:db8::2")) == P("fe80::1")
    assert fwd.to_tap_src(r, True, P("2001:db8::2"), P("2001:db8::2")) == r.our_tap_ll6
    assert fwd.to_tap_src(r, True, P("2001:db8::1"), P("2001:db8::2")) == P("2001:db8::1")


def test_host_bind_outbound_not_for_loopback():
    r = rules("-o", "198.51.100.2", "--outbound-if4", "eth0")
    assert fwd.host_bind(r, False, P("198.18.0.1")) == (P("198.51.100.2"), "eth0")
    assert fwd.host_bind(r, False, fwd.LOOPBACK4) == (P("198.51.100.2"), None)
    assert fwd.host_bind(r, True, P("2001:db8::1")) == (None, None)


def test_sockaddr_scopes_link_local_to_the_template():
    r = rules()
    assert fwd.sockaddr(r, True, P("fe80::1"), 53) == ("fe80::1", 53, 0, 2)
    assert fwd.sockaddr(r, True, P("2001:db8::1"), 53) == ("2001:db8::1", 53, 0, 0)
    assert fwd.sockaddr(r, False, P("198.18.0.1"), 7) == ("198.18.0.1", 7)


@pytest.mark.parametrize("addr,ok", [("198.18.0.1", True), ("0.0.0.0", False),
                                     ("224.0.0.251", False), ("255.255.255.255", False),
                                     ("127.0.0.1", False), ("2001:db8::1", True), ("::", False),
                                     ("ff02::1", False), ("::1", False), ("fe80::1", True),
                                     ("::ffff:127.0.0.1", False), ("::ffff:198.18.0.1", False)])
def test_is_unicast(addr, ok):
    assert fwd.is_unicast(P(addr)) is ok


def test_tap_side_ok():
    assert not fwd.tap_side_ok(False, P("127.0.0.1"), P("198.18.0.1"))
    assert not fwd.tap_side_ok(True, P("2001:db8::2"), P("::1"))
    assert fwd.tap_side_ok(False, P("198.51.100.2"), P("198.18.0.1"))


def test_slirp_aliases_of_the_virtual_network():
    """pypasta-slirp4netns's Config: like libslirp, the DNS address is the host's resolver on
    any port and every other address of the virtual network the host's loopback."""
    from podman_compat import slirp4netns, slirp4netns_cli
    opts = slirp4netns_cli.parse(["-c", "1", "tap0"])
    cfg = slirp4netns.to_config(opts, "nameserver 198.18.0.53\n")
    snap = NP.HostSnapshot(
        links=(NP.HostLink(2, "eth0", 1500),),
        addrs=(NP.HostAddr(2, 2, "198.51.100.2", 24),),
        routes=(NP.HostRoute(2, None, 0, oif=2, gateway="198.51.100.1"),))
    r = fwd.Rules.from_config(cfg, NP.plan(cfg, snap), "nameserver 198.18.0.53\n")
    assert fwd.from_tap(r, False, 17, P("10.0.2.3"), 53) == P("198.18.0.53")
    assert fwd.from_tap(r, False, 6, P("10.0.2.3"), 853) == P("198.18.0.53")
    assert fwd.from_tap(r, False, 6, P("10.0.2.2"), 80) == fwd.LOOPBACK4
    assert fwd.from_tap(r, False, 6, P("10.0.2.77"), 80) == fwd.LOOPBACK4
    assert fwd.from_tap(r, False, 6, P("10.0.3.77"), 80) == P("10.0.3.77")
    assert r.unreachable_net4 is None
    off = slirp4netns.to_config(slirp4netns_cli.parse(["-c", "--disable-host-loopback", "1",
                                                       "tap0"]), "nameserver 198.18.0.53\n")
    r = fwd.Rules.from_config(off, NP.plan(off, snap), "nameserver 198.18.0.53\n")
    assert r.alias_net4 is None and fwd.in_net4(P("10.0.2.77"), r.unreachable_net4)
    assert fwd.from_tap(r, False, 17, P("10.0.2.3"), 53) == P("198.18.0.53")
