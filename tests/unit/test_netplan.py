"""netplan: template choice and address/route copying rules (pasta-reference.md sections 5, 6.3)."""

from __future__ import annotations

import ipaddress

import pytest

from pasta.plan import netplan as P
from pasta.front.conf import parse_args
from pasta.util.errors import ConfigError

A4, A6 = P.AF_INET, P.AF_INET6
LINKS = (P.HostLink(1, "lo"), P.HostLink(2, "eth0"), P.HostLink(3, "wlan0"))


def snap(addrs=(), routes=(), links=LINKS):
    return P.HostSnapshot(links=tuple(links), addrs=tuple(addrs), routes=tuple(routes))


def cfg(*argv):
    return parse_args([*argv, "true"])


BASE = snap(
    addrs=[P.HostAddr(A4, 2, "198.51.100.2", 24), P.HostAddr(A4, 2, "198.51.100.9", 28),
           P.HostAddr(A4, 2, "198.51.100.10", 16, flags=P.IFA_F_DEPRECATED),
           P.HostAddr(A6, 2, "2001:db8::2", 64), P.HostAddr(A6, 2, "2001:db8:1::2", 56),
           P.HostAddr(A6, 2, "fe80::2", 64, scope=P.RT_SCOPE_LINK),
           P.HostAddr(A4, 3, "198.18.5.5", 24)],
    routes=[P.HostRoute(A4, "198.51.100.0", 24, oif=2, scope=P.RT_SCOPE_LINK, proto=2),
            P.HostRoute(A4, None, 0, oif=2, gateway="198.51.100.1"),
            P.HostRoute(A4, "198.19.0.0", 16, oif=2, gateway="198.51.100.1"),
            P.HostRoute(A4, "198.18.5.0", 24, oif=3, scope=P.RT_SCOPE_LINK),
            P.HostRoute(A6, None, 0, oif=2, gateway="fe80::1"),
            P.HostRoute(A6, "2001:db8:5::", 64, oif=2, gateway="fe80::1")])


def test_netplan_default_route_interface_is_template():
    p = P.plan(cfg(), BASE)
    assert (p.v4.template, p.v6.template, p.ns_ifname) == ("eth0", "eth0", "eth0")
    assert p.v4.addr == ipaddress.IPv4Address("198.51.100.9") and p.v4.prefix == 28
    assert p.v4.gw == ipaddress.IPv4Address("198.51.100.1")
    # longest-prefix global IPv6 address; gateway link-local, so it is our link-local
    assert p.v6.addr == ipaddress.IPv6Address("2001:db8::2") and p.v6.prefix == 64
    assert p.v6.our_ll == ipaddress.IPv6Address("fe80::1")
    assert not p.local_mode


def test_netplan_copies_non_deprecated_addresses_and_template_routes():
    p = P.plan(cfg(), BASE)
    assert {a.address for a in p.v4.copy_addrs} == {"198.51.100.2", "198.51.100.9"}
    assert {a.address for a in p.v6.copy_addrs} == {"2001:db8::2", "2001:db8:1::2"}
    assert all(r.oif == 2 for r in p.v4.copy_routes) and len(p.v4.copy_routes) == 3
    assert len(p.v6.copy_routes) == 2


def test_netplan_address_option_disables_address_copying_and_is_classful():
    p = P.plan(cfg("-a", "10.0.2.100"), BASE)
    assert p.v4.addr == ipaddress.IPv4Address("10.0.2.100") and p.v4.prefix == 8
    assert not p.v4.copying_addrs and p.v4.copy_addrs == ()
    assert P.plan(cfg("-a", "172.16.0.5"), BASE).v4.prefix == 16
    assert P.plan(cfg("-a", "198.51.100.7"), BASE).v4.prefix == 24
    assert P.plan(cfg("-a", "10.0.2.100", "-n", "24"), BASE).v4.prefix == 24
    assert P.plan(cfg("-n", "255.255.255.0"), BASE).v4.prefix == 24


def test_netplan_gateway_option_disables_route_copying():
    p = P.plan(cfg("-g", "198.51.100.254"), BASE)
    assert p.v4.gw == ipaddress.IPv4Address("198.51.100.254")
    assert not p.v4.copying_routes and p.v4.copy_routes == ()
    assert p.v6.copying_routes                  # the other family is unaffected


def test_netplan_interface_option_and_unknown_interface():
    p = P.plan(cfg("-i", "wlan0"), BASE)
    assert p.v4.template == "wlan0" and p.ns_ifname == "wlan0"
    assert p.v4.addr == ipaddress.IPv4Address("198.18.5.5") and p.v4.gw is None
    assert p.v6.enabled and p.v6.template is None       # no IPv6 address on wlan0: local mode
    assert (p.v6.addr, str(p.v6.gw), str(p.v6.our_ll)) == (None, "fe80::1", "fe80::1")
    with pytest.raises(ConfigError, match="nosuch"):
        P.plan(cfg("-i", "nosuch"), BASE)


def test_netplan_falls_back_to_any_route_then_local_mode():
    s = snap(addrs=[P.HostAddr(A4, 3, "198.18.5.5", 24)],
             routes=[P.HostRoute(A4, "198.18.5.0", 24, oif=3, scope=P.RT_SCOPE_LINK)])
    p = P.plan(cfg(), s)
    assert p.v4.template == "wlan0" and p.v4.gw is None
    p = P.plan(cfg(), snap())
    assert p.local_mode and p.ns_ifname == "tap0"
    assert (str(p.v4.addr), p.v4.prefix, str(p.v4.gw)) == ("169.254.2.1", 16, "169.254.2.2")
    assert str(p.v6.gw) == "fe80::1"
    assert any("local mode" in n for n in p.notes)


def test_netplan_ignores_link_local_routes_for_template():
    s = snap(addrs=[P.HostAddr(A4, 3, "169.254.9.9", 16)],
             routes=[P.HostRoute(A4, "169.254.0.0", 16, oif=3, scope=P.RT_SCOPE_LINK)])
    assert P.plan(cfg(), s).local_mode


def test_netplan_multipath_gateway_with_most_hops():
    s = snap(addrs=[P.HostAddr(A4, 2, "198.51.100.2", 24)],
             routes=[P.HostRoute(A4, None, 0, multipath=(
                 P.Nexthop(2, "198.51.100.1", 0), P.Nexthop(2, "198.51.100.3", 4)))])
    assert str(P.plan(cfg(), s).v4.gw) == "198.51.100.3"


def test_netplan_family_switches_and_name_option():
    p = P.plan(cfg("-4"), BASE)
    assert p.v4.enabled and not p.v6.enabled
    p = P.plan(cfg("-6"), BASE)
    assert p.v6.enabled and not p.v4.enabled and p.ns_ifname == "eth0"
    assert P.plan(cfg("-I", "ppt0"), BASE).ns_ifname == "ppt0"


def test_netplan_ipv6_needs_global_address_and_link_local():
    s = snap(addrs=[P.HostAddr(A4, 2, "198.51.100.2", 24), P.HostAddr(A6, 2, "2001:db8::2", 64)],
             routes=[P.HostRoute(A4, None, 0, oif=2, gateway="198.51.100.1"),
                     P.HostRoute(A6, None, 0, oif=2, gateway="2001:db8::1")])
    p = P.plan(cfg(), s)        # global gateway and no link-local of our own: IPv6 local mode
    assert p.v6.template is None and str(p.v6.our_ll) == "fe80::1" and not p.local_mode
    s2 = snap(addrs=s.addrs + (P.HostAddr(A6, 2, "fe80::2", 64, scope=P.RT_SCOPE_LINK),),
              routes=s.routes)
    assert str(P.plan(cfg(), s2).v6.our_ll) == "fe80::2"


def test_netplan_no_copy_options():
    p = P.plan(cfg("--config-net", "--no-copy-addrs", "--no-copy-routes"), BASE)
    assert not p.v4.copying_addrs and not p.v4.copying_routes
    assert not p.v6.copying_addrs and not p.v6.copying_routes


def test_netplan_local_mode_per_family():
    """pasta 2026: a host without IPv6 still gives the namespace IPv6 link-local service, a host
    without IPv4 gives 169.254.2.1/16 via 169.254.2.2; -4/-6 still disable a family."""
    v4only = snap(addrs=[P.HostAddr(A4, 2, "198.51.100.2", 24)],
                  routes=[P.HostRoute(A4, None, 0, oif=2, gateway="198.51.100.1")])
    p = P.plan(cfg(), v4only)
    assert p.v4.template == "eth0" and p.ns_ifname == "eth0" and not p.local_mode
    assert p.v6.enabled and p.v6.addr is None and str(p.v6.gw) == "fe80::1"
    assert "IPv6: no external interface as template, use local mode" in p.notes
    assert not P.plan(cfg("-4"), v4only).v6.enabled
    v6only = snap(addrs=[P.HostAddr(A6, 2, "2001:db8::2", 64),
                         P.HostAddr(A6, 2, "fe80::2", 64, scope=P.RT_SCOPE_LINK)],
                  routes=[P.HostRoute(A6, None, 0, oif=2, gateway="2001:db8::1")])
    p = P.plan(cfg(), v6only)
    assert p.v6.template == "eth0" and p.ns_ifname == "eth0" and not p.local_mode
    assert (str(p.v4.addr), p.v4.prefix, str(p.v4.gw)) == ("169.254.2.1", 16, "169.254.2.2")
    assert "IPv4: no external interface as template, use local mode" in p.notes
    assert not P.plan(cfg("-6"), v6only).v4.enabled
