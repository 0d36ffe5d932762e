"""pasta.core.neigh: the neighbour table fed with netlink events (hand-built and pyroute2-encoded
bytes), pasta's nat_inbound(), and the announcement frames dissected with scapy; plus the
neighbour MACs in pasta.core.arp and pasta.core.ndp replies."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings, strategies as st
from pyroute2.netlink.rtnl.ndmsg import ndmsg
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether

from pasta.core import arp, fwd, ndp, neigh
from pasta.core.neigh import (AF_INET, AF_INET6, NeighEvent, NeighMsg, NeighOp, NeighTable,
                              NeighUpdate, Nud)
from pasta.plan import config as C
from pasta.plan import netplan as NP
from pasta.plan.linkctx import LinkCtx
from pasta.util.errors import Malformed

IP4 = ipaddress.IPv4Address
IP6 = ipaddress.IPv6Address
OUR_MAC = bytes.fromhex("9a559a559a55")
NS_MAC = bytes.fromhex("020000000001")
MAC_A = bytes.fromhex("02fc00000005")
MAC_B = bytes.fromhex("02fc000000b0")
IFI = 4
GW4 = "198.51.100.1"
GW6 = "fe80::1"


def P(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def same(addr):
    return addr


def new(dst, mac=MAC_A, state=Nud.REACHABLE, family=None, ifindex=IFI, ndm_type=1):
    d = P(dst) if isinstance(dst, str) else dst
    fam = family if family is not None else (AF_INET if len(d) == 4 else AF_INET6)
    return NeighEvent(NeighMsg.NEWNEIGH, fam, ifindex, int(state), ndm_type, d, mac)


def delete(dst, ifindex=IFI):
    d = P(dst)
    return NeighEvent(NeighMsg.DELNEIGH, AF_INET if len(d) == 4 else AF_INET6, ifindex,
                      int(Nud.STALE), 1, d, MAC_A)


def table(**kw) -> NeighTable:
    args = dict(ifi4=IFI, ifi6=IFI, gw4=P(GW4), gw6=P(GW6))
    args.update(kw)
    return NeighTable(OUR_MAC, **args)


# --- the table --------------------------------------------------------------------------------

def test_neigh_new_entry_added_and_announced():
    t = table()
    up = t.on_neigh_event(new("198.51.100.7"), same)
    assert up == NeighUpdate(NeighOp.ADDED, P("198.51.100.7"), MAC_A, True)
    assert t.mac_for(P("198.51.100.7")) == MAC_A and len(t) == 1


def test_neigh_same_mac_again_is_unchanged_and_not_announced():
    t = table()
    t.on_neigh_event(new("2001:db8::7"), same)
    up = t.on_neigh_event(new("2001:db8::7", state=Nud.STALE), same)
    assert up.op == NeighOp.UNCHANGED and not up.announce


def test_neigh_changed_mac_updated_not_announced_as_pasta():
    t = table()
    t.on_neigh_event(new("198.51.100.7"), same)
    up = t.on_neigh_event(new("198.51.100.7", mac=MAC_B), same)
    assert up == NeighUpdate(NeighOp.CHANGED, P("198.51.100.7"), MAC_B, False)
    assert t.mac_for(P("198.51.100.7")) == MAC_B


def test_neigh_changed_mac_announced_when_asked():
    t = table(announce_changed=True)
    t.on_neigh_event(new("198.51.100.7"), same)
    assert t.on_neigh_event(new("198.51.100.7", mac=MAC_B), same).announce
    # ... but never for our own MAC
    assert not t.on_neigh_event(new("198.51.100.7", mac=OUR_MAC), same).announce


def test_neigh_entry_with_our_own_mac_kept_but_not_announced():
    t = table()
    up = t.on_neigh_event(new("198.51.100.7", mac=OUR_MAC), same)
    assert up.op == NeighOp.ADDED and not up.announce


@pytest.mark.parametrize("state", [Nud.PERMANENT, Nud.NOARP, Nud.REACHABLE, Nud.PROBE, Nud.STALE,
                                   Nud.STALE | Nud.DELAY])
def test_neigh_valid_states_kept(state):
    t = table()
    assert t.on_neigh_event(new("198.51.100.7", state=state), same).op == NeighOp.ADDED


@pytest.mark.parametrize("state", [0, Nud.INCOMPLETE, Nud.DELAY, Nud.FAILED])
def test_neigh_invalid_states_remove_the_entry(state):
    t = table()
    t.on_neigh_event(new("198.51.100.7"), same)
    up = t.on_neigh_event(new("198.51.100.7", state=state, mac=None), same)
    assert up == NeighUpdate(NeighOp.REMOVED, P("198.51.100.7"), MAC_A)
    assert P("198.51.100.7") not in t
    assert t.on_neigh_event(new("198.51.100.7", state=state), same).op == NeighOp.UNCHANGED
    assert P("198.51.100.7") not in t


def test_neigh_delete_removes_and_delete_of_absent_is_unchanged():
    t = table()
    t.on_neigh_event(new("2001:db8::7"), same)
    assert t.on_neigh_event(delete("2001:db8::7"), same).op == NeighOp.REMOVED
    assert t.on_neigh_event(delete("2001:db8::7"), same).op == NeighOp.UNCHANGED
    assert len(t) == 0 and t.mac_for(P("2001:db8::7")) is None


def test_neigh_only_the_template_interface_of_each_family():
    t = table(ifi4=4, ifi6=9)
    assert t.on_neigh_event(new("198.51.100.7", ifindex=9), same).op == NeighOp.IGNORED
    assert t.on_neigh_event(new("2001:db8::7", ifindex=4), same).op == NeighOp.IGNORED
    assert t.on_neigh_event(new("198.51.100.7", ifindex=4), same).op == NeighOp.ADDED
    assert t.on_neigh_event(new("2001:db8::7", ifindex=9), same).op == NeighOp.ADDED
    # deletions on another interface do not touch our entries either
    assert t.on_neigh_event(delete("198.51.100.7", ifindex=9), same).op == NeighOp.IGNORED
    assert P("198.51.100.7") in t


def test_neigh_family_without_template_keeps_nothing():
    t = table(ifi6=None)
    assert t.on_neigh_event(new("2001:db8::7"), same).op == NeighOp.IGNORED
    assert t.on_neigh_event(new("198.51.100.7"), same).op == NeighOp.ADDED


@pytest.mark.parametrize("mac", [b"", bytes(4), bytes(20), bytes(8)])
def test_neigh_non_ethernet_lladdr_ignored_and_entry_kept(mac):
    t = table()
    t.on_neigh_event(new("198.51.100.7"), same)
    assert t.on_neigh_event(new("198.51.100.7", mac=mac), same).op == NeighOp.IGNORED
    assert t.mac_for(P("198.51.100.7")) == MAC_A


@pytest.mark.parametrize("ndm_type", [0, 2, 3, 5])
def test_neigh_non_unicast_entry_type_ignored(ndm_type):
    t = table()
    assert t.on_neigh_event(new("198.51.100.7", ndm_type=ndm_type), same).op == NeighOp.IGNORED


def test_neigh_missing_lladdr_reported_and_entry_kept():
    t = table()
    t.on_neigh_event(new("198.51.100.7"), same)
    up = t.on_neigh_event(new("198.51.100.7", mac=None), same)
    assert up == NeighUpdate(NeighOp.NO_LLADDR, P("198.51.100.7"))
    assert t.mac_for(P("198.51.100.7")) == MAC_A


def test_neigh_bad_address_length_or_family_or_missing_dst():
    t = table()
    assert t.on_neigh_event(new(P("2001:db8::7"), family=AF_INET), same).op == \
        NeighOp.BAD_ADDR_LEN
    assert t.on_neigh_event(new(P("198.51.100.7"), family=AF_INET6), same).op == \
        NeighOp.BAD_ADDR_LEN
    assert t.on_neigh_event(new(P("198.51.100.7"), family=7), same).op == NeighOp.IGNORED
    assert t.on_neigh_event(new("198.51.100.7")._replace(dst=None), same).op == NeighOp.IGNORED
    assert t.on_neigh_event(NeighEvent(NeighMsg.DONE), same).op == NeighOp.IGNORED
    assert t.on_neigh_event(NeighEvent(NeighMsg.ERROR, error=105), same).op == NeighOp.IGNORED
    assert len(t) == 0


def test_neigh_keyed_by_the_namespace_side_address():
    ns_side = {P("10.0.0.1"): P("192.0.2.77")}
    t = table()
    up = t.on_neigh_event(new("10.0.0.1"), ns_side.get)
    assert up.addr == P("192.0.2.77")
    assert t.mac_for(P("192.0.2.77")) == MAC_A and P("10.0.0.1") not in t
    # nat_inbound() refusing the address: nothing happens
    assert t.on_neigh_event(new("10.0.0.2"), ns_side.get).op == NeighOp.IGNORED
    assert t.on_neigh_event(delete("10.0.0.1"), ns_side.get).op == NeighOp.REMOVED


def test_neigh_bounded_to_512_entries_pins_included():
    t = table(pinned=(P("192.0.2.2"), P("2001:db8::2")))
    assert neigh.NEIGH_TABLE_SIZE == 512 and t.capacity == 512
    for i in range(510):
        assert t.on_neigh_event(new(bytes((10, 0, i >> 8, i & 0xFF))), same).op == NeighOp.ADDED
    up = t.on_neigh_event(new("10.9.9.9"), same)
    assert up == NeighUpdate(NeighOp.FULL, P("10.9.9.9"), MAC_A) and len(t) == 510
    # known entries still update when full; a removal makes room
    assert t.on_neigh_event(new("10.0.0.0", mac=MAC_B), same).op == NeighOp.CHANGED
    t.on_neigh_event(delete("10.0.0.0"), same)
    assert t.on_neigh_event(new("10.9.9.9"), same).op == NeighOp.ADDED


def test_neigh_mac_for_falls_back_to_the_gateway_of_the_family():
    t = table()
    assert t.mac_for(P("203.0.113.5")) is None
    t.on_neigh_event(new(GW4, mac=MAC_B), same)
    assert t.mac_for(P("203.0.113.5")) == MAC_B
    assert t.mac_for(P(GW4)) == MAC_B
    assert t.mac_for(P("2001:db8::5")) is None            # no IPv6 gateway entry
    t.on_neigh_event(new(GW6, mac=MAC_A), same)
    assert t.mac_for(P("2001:db8::5")) == MAC_A
    t.on_neigh_event(new("203.0.113.5"), same)
    assert t.mac_for(P("203.0.113.5")) == MAC_A            # its own entry first
    t.on_neigh_event(delete(GW4), same)
    assert t.mac_for(P("203.0.113.6")) is None


def test_neigh_pinned_addresses_always_our_mac():
    pin4, pin6 = P("192.0.2.2"), P("2001:db8::2")
    t = table(pinned=(pin4, pin6, None))
    t.on_neigh_event(new(GW4, mac=MAC_B), same)
    assert t.mac_for(pin4) is None and t.mac_for(pin6) is None   # no gateway fallback either
    for dst in ("192.0.2.2", "2001:db8::2"):
        assert t.on_neigh_event(new(dst), same).op == NeighOp.UNCHANGED
        assert t.on_neigh_event(delete(dst), same).op == NeighOp.UNCHANGED
    assert t.mac_for(pin4) is None and pin4 not in t and len(t) == 1


def test_neigh_pinned_gateway_means_our_mac_for_unknown_hosts():
    # pasta's default: --map-host-loopback is the gateway, pinned to our MAC
    t = table(pinned=(P(GW4),))
    assert t.on_neigh_event(new(GW4, mac=MAC_B), same).op == NeighOp.UNCHANGED
    assert t.mac_for(P("203.0.113.5")) is None


def test_neigh_table_checks_its_arguments():
    with pytest.raises(ValueError):
        NeighTable(b"\x00")
    with pytest.raises(ValueError):
        NeighTable(OUR_MAC, pinned=(P("192.0.2.2"),), capacity=0)


ADDRS = [P(a) for a in ("198.51.100.7", "198.51.100.8", GW4, "192.0.2.2", "2001:db8::7",
                        GW6, "2001:db8::2")]
PINS = {P("192.0.2.2"), P("2001:db8::2")}
EVENTS = st.tuples(st.sampled_from([NeighMsg.NEWNEIGH, NeighMsg.DELNEIGH]),
                   st.sampled_from(ADDRS), st.sampled_from([MAC_A, MAC_B, OUR_MAC, None, b""]),
                   st.sampled_from([0, 1, 2, 4, 8, 0x10, 0x20, 0x40, 0x80, 0x0C]),
                   st.sampled_from([IFI, 5]))


@settings(max_examples=300, deadline=None)
@given(st.lists(EVENTS, max_size=40), st.integers(min_value=2, max_value=6))
def test_neigh_table_matches_a_dict_model(events, capacity):
    t = table(pinned=PINS, capacity=capacity)
    model: dict = {}
    for msg, dst, mac, state, ifindex in events:
        ev = NeighEvent(msg, AF_INET if len(dst) == 4 else AF_INET6, ifindex, state, 1, dst, mac)
        up = t.on_neigh_event(ev, same)
        if ifindex != IFI:
            assert up.op == NeighOp.IGNORED
        elif dst in PINS:
            assert up.op in (NeighOp.UNCHANGED, NeighOp.NO_LLADDR, NeighOp.IGNORED)
        elif msg == NeighMsg.DELNEIGH or not state & neigh.NUD_VALID:
            assert up.op == (NeighOp.REMOVED if dst in model else NeighOp.UNCHANGED)
            model.pop(dst, None)
        elif mac is None:
            assert up.op == NeighOp.NO_LLADDR
        elif len(mac) != 6:
            assert up.op == NeighOp.IGNORED
        elif dst in model:
            assert up.op == (NeighOp.UNCHANGED if model[dst] == mac else NeighOp.CHANGED)
            model[dst] = mac
        elif len(model) + len(PINS) >= capacity:
            assert up.op == NeighOp.FULL
        else:
            assert up == NeighUpdate(NeighOp.ADDED, dst, mac, mac != OUR_MAC)
            model[dst] = mac
        assert dict(t.items()) == model
        assert len(t) + len(PINS) <= capacity
        for a in ADDRS:
            gw = P(GW4) if len(a) == 4 else P(GW6)
            want = None if a in PINS else model.get(a, model.get(gw))
            assert t.mac_for(a) == want


# --- nat_inbound and from_plan ----------------------------------------------------------------

SNAP = NP.HostSnapshot(
    links=(NP.HostLink(IFI, "eth0", 1500),),
    addrs=(NP.HostAddr(AF_INET, IFI, "198.51.100.2", 24),
           NP.HostAddr(AF_INET6, IFI, "2001:db8::2", 64)),
    routes=(NP.HostRoute(AF_INET, None, 0, oif=IFI, gateway=GW4),
            NP.HostRoute(AF_INET6, None, 0, oif=IFI, gateway=GW6)))


def plan_rules(**cfg_kw):
    cfg = C.Config(config_net=True, **cfg_kw)
    plan = NP.plan(cfg, SNAP)
    return plan, fwd.Rules.from_config(cfg, plan, "nameserver 198.18.0.53\n")


def test_neigh_nat_inbound_as_pasta_defaults():
    _, r = plan_rules()
    nat = neigh.nat_inbound
    assert nat(r, P("127.0.0.1")) == P(GW4)                # --map-host-loopback = gateway
    assert nat(r, P("::1")) == P(GW6)
    assert nat(r, P("127.0.0.2")) is None                  # 127.0.0.1 only
    assert nat(r, P("0.0.0.0")) is None
    assert nat(r, P("198.51.100.2")) is None               # the guest's own address
    assert nat(r, P("2001:db8::2")) is None
    assert nat(r, P("198.51.100.7")) == P("198.51.100.7")
    assert nat(r, P("fe80::7")) == P("fe80::7")
    assert nat(r, P("198.51.100.9"), P("198.51.100.9")) is None    # addr_seen
    assert nat(r, P("2001:db8::9"), P("2001:db8::9")) is None
    assert nat(r, P("2001:db8::9"), bytes(16)) == P("2001:db8::9")   # not seen yet


def test_neigh_nat_inbound_with_map_guest_addr_and_no_map_gw():
    _, r = plan_rules(map_guest_addr4=IP4("192.0.2.2"), map_guest_addr6=IP6("2001:db8::99"),
                      no_map_gw=True)
    nat = neigh.nat_inbound
    assert nat(r, P("198.51.100.2")) == P("192.0.2.2")
    assert nat(r, P("2001:db8::2")) == P("2001:db8::99")
    assert nat(r, P("127.0.0.1")) is None and nat(r, P("::1")) is None


def test_neigh_from_plan_pins_map_addresses_and_takes_templates_and_gateways():
    plan, r = plan_rules(map_guest_addr4=IP4("192.0.2.2"))
    t = NeighTable.from_plan(plan, r, OUR_MAC)
    assert t.ifi4 == IFI and t.ifi6 == IFI
    assert t.gw4 == P(GW4) and t.gw6 == P(GW6)
    assert t.pinned == {P(GW4), P(GW6), P("192.0.2.2")}
    nat = lambda a: neigh.nat_inbound(r, a)        # noqa: E731
    # the host's own neighbour at the guest's address is the --map-guest-addr address: pinned
    up = t.on_neigh_event(new("198.51.100.2"), nat)
    assert up == NeighUpdate(NeighOp.UNCHANGED, P("192.0.2.2"))
    assert t.on_neigh_event(new(GW4, mac=MAC_B), nat).op == NeighOp.UNCHANGED
    assert t.on_neigh_event(new("198.51.100.7"), nat).op == NeighOp.ADDED
    assert t.mac_for(P("198.51.100.8")) is None
    plan, r = plan_rules(no_map_gw=True)
    t = NeighTable.from_plan(plan, r, OUR_MAC, announce_changed=True)
    assert t.pinned == frozenset() and t.announce_changed
    t.on_neigh_event(new(GW4, mac=MAC_B), lambda a: neigh.nat_inbound(r, a))
    assert t.mac_for(P("198.51.100.8")) == MAC_B


# --- netlink decoding -------------------------------------------------------------------------

def rta(rtype: int, data: bytes) -> bytes:
    """A netlink attribute, padded to 4 bytes (written out by hand, host byte order)."""
    raw = struct.pack("=HH", 4 + len(data), rtype) + data
    return raw + bytes(-len(raw) % 4)


def nlmsg(ntype: int, body: bytes, seq: int = 0, flags: int = 0) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), ntype, flags, seq, 0) + body


def ndm(family, ifindex, state, ntype=1, flags=0) -> bytes:
    return struct.pack("=BxxxiHBB", family, ifindex, state, flags, ntype)


def test_neigh_decode_hand_built_new_and_del():
    buf = (nlmsg(28, ndm(2, 4, 0x02) + rta(1, P("192.0.2.1")) + rta(2, MAC_A), seq=7)
           + nlmsg(29, ndm(10, 5, 0x20) + rta(1, P("2001:db8::1")), seq=8))
    evs = list(neigh.iter_neigh_events(buf))
    assert evs == [
        NeighEvent(NeighMsg.NEWNEIGH, AF_INET, 4, 2, 1, P("192.0.2.1"), MAC_A, 7),
        NeighEvent(NeighMsg.DELNEIGH, AF_INET6, 5, 0x20, 1, P("2001:db8::1"), None, 8)]


def test_neigh_decode_skips_other_attributes_and_messages_and_reports_done_and_error():
    body = (ndm(2, 4, 0x04, ntype=5) + rta(4, struct.pack("=I", 3))        # NDA_PROBES
            + rta(2, MAC_B) + rta(3, bytes(16)) + rta(1, P("192.0.2.9")))    # NDA_CACHEINFO
    buf = (nlmsg(1, b"") + nlmsg(24, bytes(12)) + nlmsg(28, body, seq=3)       # NOOP, NEWROUTE
           + nlmsg(2, struct.pack("=i", -105) + bytes(16), seq=4)
           + nlmsg(2, struct.pack("=i", 0), seq=5) + nlmsg(3, struct.pack("=i", 0), seq=6))
    evs = list(neigh.iter_neigh_events(buf))
    assert evs == [NeighEvent(NeighMsg.NEWNEIGH, AF_INET, 4, 4, 5, P("192.0.2.9"), MAC_B, 3),
                   NeighEvent(NeighMsg.ERROR, seq=4, error=105),
                   NeighEvent(NeighMsg.ERROR, seq=5, error=0),
                   NeighEvent(NeighMsg.DONE, seq=6)]


def test_neigh_decode_odd_lengths_padded_and_repeated_attribute_last_wins():
    # a 20-byte (InfiniBand) lladdr, a 5-byte odd attribute, then NDA_DST twice
    body = (ndm(10, 4, 0x80) + rta(2, bytes(range(20))) + rta(9, b"\x01\x02\x03\x04\x05")
            + rta(1, P("2001:db8::1")) + rta(1, P("2001:db8::2")))
    ev, done = neigh.iter_neigh_events(nlmsg(28, body) + nlmsg(3, bytes(4)), 0, None)
    assert done.msg == NeighMsg.DONE
    assert ev.lladdr == bytes(range(20)) and ev.dst == P("2001:db8::2")
    assert ev.state == Nud.PERMANENT


def test_neigh_decode_respects_offset_and_end_of_a_receive_buffer():
    msg = nlmsg(28, ndm(2, 4, 2) + rta(1, P("192.0.2.1")) + rta(2, MAC_A))
    buf = bytearray(b"junk" + msg + b"\xff" * 100)
    (ev,) = neigh.iter_neigh_events(memoryview(buf), 4, 4 + len(msg))
    assert ev.dst == P("192.0.2.1") and ev.lladdr == MAC_A
    buf[:] = bytes(len(buf))                        # the event holds copies
    assert ev.dst == P("192.0.2.1")


def pyroute2_msg(msg_type, family, ifindex, state, attrs, ntype=1, seq=0) -> bytes:
    m = ndmsg()
    m["family"], m["ifindex"], m["state"], m["flags"], m["ndm_type"] = (family, ifindex, state,
                                                                       0, ntype)
    m["attrs"] = attrs
    m["header"]["type"] = msg_type
    m["header"]["flags"] = 0
    m["header"]["sequence_number"] = seq
    m["header"]["pid"] = 0
    m.encode()
    return bytes(m.data)


def test_neigh_decode_pyroute2_encoded_messages():
    buf = (pyroute2_msg(28, 2, 4, 0x02, [("NDA_DST", "192.0.2.1"),
                                          ("NDA_LLADDR", mac_text(MAC_A))], seq=11)
           + pyroute2_msg(28, 10, 4, 0x04, [("NDA_DST", "fe80::1"),
                                             ("NDA_LLADDR", "02:fc:00:00:00:b0"),
                                             ("NDA_PROBES", 3),
                                             ("NDA_CACHEINFO", {"ndm_confirmed": 1, "ndm_used": 2,
                                                                "ndm_updated": 3,
                                                                "ndm_refcnt": 0})], seq=12)
           + pyroute2_msg(29, 10, 4, 0x20, [("NDA_DST", "2001:db8::7")], seq=13)
           + pyroute2_msg(28, 2, 4, 0x40, [("NDA_DST", "192.0.2.255"),
                                            ("NDA_LLADDR", "ff:ff:ff:ff:ff:ff")], ntype=3))
    evs = list(neigh.iter_neigh_events(buf))
    assert evs == [
        NeighEvent(NeighMsg.NEWNEIGH, AF_INET, 4, 2, 1, P("192.0.2.1"), MAC_A, 11),
        NeighEvent(NeighMsg.NEWNEIGH, AF_INET6, 4, 4, 1, P("fe80::1"), MAC_B, 12),
        NeighEvent(NeighMsg.DELNEIGH, AF_INET6, 4, 0x20, 1, P("2001:db8::7"), None, 13),
        NeighEvent(NeighMsg.NEWNEIGH, AF_INET, 4, 0x40, 3, P("192.0.2.255"), b"\xff" * 6, 0)]
    t = table()
    ops = [t.on_neigh_event(ev, same).op for ev in evs]
    assert ops == [NeighOp.ADDED, NeighOp.ADDED, NeighOp.UNCHANGED, NeighOp.IGNORED]


def test_neigh_dump_request_decoded_by_pyroute2():
    raw = neigh.neigh_dump_request(AF_INET6, 0x12345678)
    m = ndmsg(raw)
    m.decode()
    assert m["header"]["type"] == 30 and m["header"]["length"] == len(raw) == 28
    assert m["header"]["flags"] == 0x301 and m["header"]["sequence_number"] == 0x12345678
    assert m["family"] == AF_INET6 and m["ifindex"] == 0


@pytest.mark.parametrize("buf, reason", [
    (b"\x10\x00", "truncated message header"),
    (struct.pack("=IHHII", 8, 28, 0, 0, 0), "bad message length"),
    (struct.pack("=IHHII", 64, 28, 0, 0, 0) + bytes(12), "bad message length"),
    (nlmsg(28, bytes(8)), "short ndmsg"),
    (nlmsg(2, b"\x00\x00"), "short error message"),
    (nlmsg(28, ndm(2, 4, 2) + struct.pack("=HH", 2, 1)), "bad attribute length"),
    (nlmsg(28, ndm(2, 4, 2) + struct.pack("=HH", 40, 1) + bytes(4)), "bad attribute length"),
])
def test_neigh_decode_malformed(buf, reason):
    with pytest.raises(Malformed, match=reason):
        list(neigh.iter_neigh_events(buf))


def test_neigh_decode_yields_events_before_a_bad_message():
    good = nlmsg(28, ndm(2, 4, 2) + rta(1, P("192.0.2.1")) + rta(2, MAC_A))
    it = neigh.iter_neigh_events(good + b"\x01\x02\x03")
    assert next(it).dst == P("192.0.2.1")
    with pytest.raises(Malformed):
        next(it)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_neigh_decode_any_bytes_events_or_malformed(data):
    try:
        for ev in neigh.iter_neigh_events(data):
            assert isinstance(ev, NeighEvent)
    except Malformed:
        pass


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([28, 29]), st.sampled_from([2, 10]),
                          st.integers(1, 2 ** 31 - 1), st.integers(0, 0xFF),
                          st.binary(min_size=0, max_size=17), st.binary(min_size=0, max_size=9)),
                max_size=5))
def test_neigh_decode_round_trips_hand_built_messages(msgs):
    buf = b"".join(nlmsg(t, ndm(f, i, s) + rta(1, d) + rta(2, m)) for t, f, i, s, d, m in msgs)
    got = [(e.msg, e.family, e.ifindex, e.state, e.dst, e.lladdr)
           for e in neigh.iter_neigh_events(buf)]
    assert got == [(t, f, i, s, d, m) for t, f, i, s, d, m in msgs]


# --- announcement frames ----------------------------------------------------------------------

def link_ctx(v6=True) -> LinkCtx:
    cfg = C.Config()
    p4 = NP.FamilyPlan(enabled=True, addr=IP4("198.51.100.2"), prefix=24, gw=IP4(GW4))
    p6 = NP.FamilyPlan(enabled=True, addr=IP6("2001:db8::2"), prefix=64, gw=IP6(GW6),
                       our_ll=IP6(GW6)) if v6 else NP.FamilyPlan()
    plan = NP.NetPlan(ns_ifname="eth0", mtu=cfg.mtu, v4=p4, v6=p6)
    return LinkCtx.from_config(cfg, plan, NS_MAC)


CTX = link_ctx()


@pytest.mark.parametrize("vnet", [False, True])
def test_neigh_arp_announce_frame_as_rfc_5227_announcement(vnet):
    frame = neigh.arp_announce_frame(P("198.51.100.7"), MAC_A, vnet=vnet)
    if vnet:
        assert frame[:12] == bytes(12)
        frame = frame[12:]
    want = Ether(dst="ff:ff:ff:ff:ff:ff", src=mac_text(MAC_A)) / ARP(
        op=1, hwsrc=mac_text(MAC_A), psrc="198.51.100.7", hwdst="00:00:00:00:00:00",
        pdst="198.51.100.7")
    assert frame == bytes(want)
    pkt = Ether(frame)
    assert pkt[ARP].op == 1 and pkt[ARP].psrc == pkt[ARP].pdst == "198.51.100.7"
    assert pkt.src == pkt[ARP].hwsrc == mac_text(MAC_A)


@pytest.mark.parametrize("vnet", [False, True])
def test_neigh_unsolicited_na_frame_dissected_with_checksum(vnet):
    frame = neigh.unsolicited_na_frame(CTX, P("2001:db8::7"), MAC_B, vnet=vnet)
    if vnet:
        assert frame[:12] == bytes(12)
        frame = frame[12:]
    pkt = Ether(frame)
    assert pkt.dst == mac_text(NS_MAC) and pkt.src == mac_text(OUR_MAC)
    ip = pkt[IPv6]
    assert ip.src == GW6 and ip.dst == "ff02::1" and ip.hlim == 255 and ip.plen == 32
    na = pkt[ICMPv6ND_NA]
    assert (na.R, na.S, na.O) == (1, 1, 1) and na.tgt == "2001:db8::7"
    assert pkt[ICMPv6NDOptDstLLAddr].lladdr == mac_text(MAC_B)
    # scapy recomputes the ICMPv6 checksum (pseudo-header included): the same frame comes out
    rebuilt = Ether(frame)
    del rebuilt[ICMPv6ND_NA].cksum
    assert bytes(rebuilt) == frame and na.cksum != 0


def test_neigh_announce_frame_per_family_and_none_without_ipv6():
    assert neigh.announce_frame(CTX, P("198.51.100.7"), MAC_A, False) == \
        neigh.arp_announce_frame(P("198.51.100.7"), MAC_A, False)
    assert neigh.announce_frame(CTX, P("2001:db8::7"), MAC_A, False) == \
        neigh.unsolicited_na_frame(CTX, P("2001:db8::7"), MAC_A, False)
    assert neigh.unsolicited_na_frame(link_ctx(v6=False), P("2001:db8::7"), MAC_A) is None


def test_neigh_events_to_frames_end_to_end():
    buf = (nlmsg(28, ndm(2, IFI, 2) + rta(1, P("198.51.100.7")) + rta(2, MAC_A))
           + nlmsg(28, ndm(10, IFI, 2) + rta(1, P("2001:db8::7")) + rta(2, MAC_B))
           + nlmsg(28, ndm(2, IFI, 2) + rta(1, P("198.51.100.7")) + rta(2, MAC_A)))
    t = table()
    frames = []
    for ev in neigh.iter_neigh_events(buf):
        up = t.on_neigh_event(ev, same)
        if up.announce:
            frames.append(neigh.announce_frame(CTX, up.addr, up.mac, vnet=False))
    assert len(frames) == 2
    assert Ether(frames[0])[ARP].hwsrc == mac_text(MAC_A)
    assert Ether(frames[1])[ICMPv6NDOptDstLLAddr].lladdr == mac_text(MAC_B)


# --- ARP and NDP replies with the neighbour table ---------------------------------------------

def test_neigh_arp_reply_carries_the_neighbour_mac():
    t = table(pinned=(P("192.0.2.2"),))
    t.on_neigh_event(new("198.51.100.7"), same)
    req = lambda dst: bytes(ARP(op=1, hwsrc=mac_text(NS_MAC), psrc="198.51.100.2",  # noqa
                                hwdst="00:00:00:00:00:00", pdst=dst))
    assert ARP(arp.reply(CTX, req("198.51.100.7"), t.mac_for)).hwsrc == mac_text(MAC_A)
    assert ARP(arp.reply(CTX, req("198.51.100.8"), t.mac_for)).hwsrc == mac_text(OUR_MAC)
    assert ARP(arp.reply(CTX, req("192.0.2.2"), t.mac_for)).hwsrc == mac_text(OUR_MAC)
    t.on_neigh_event(new(GW4, mac=MAC_B), same)
    assert ARP(arp.reply(CTX, req("198.51.100.8"), t.mac_for)).hwsrc == mac_text(MAC_B)
    assert ARP(arp.reply(CTX, req("198.51.100.8"))).hwsrc == mac_text(OUR_MAC)


def test_neigh_ndp_na_carries_the_neighbour_mac():
    t = table()
    t.on_neigh_event(new("2001:db8::7"), same)
    src, dst = P("fe80::ff:fe00:1"), P("ff02::1:ff00:7")

    def na_mac(target, mac_for):
        ns = IPv6(bytes(IPv6(src="fe80::ff:fe00:1", dst="ff02::1:ff00:7", hlim=255)
                        / ICMPv6ND_NS(tgt=target)))
        msg, _, _ = ndp.reply(CTX, bytes(ns.payload), src, dst, mac_for)
        return ICMPv6ND_NA(msg)[ICMPv6NDOptDstLLAddr].lladdr

    assert na_mac("2001:db8::7", t.mac_for) == mac_text(MAC_A)
    assert na_mac("2001:db8::8", t.mac_for) == mac_text(OUR_MAC)
    assert na_mac("2001:db8::7", None) == mac_text(OUR_MAC)
