"""tests/helpers/fuzzframes.py and inject.py: the fuzz load of the issue 3 integration test.

Templates are dissected with scapy (layers, lengths and checksums recomputed independently) and
their addresses checked against the test ranges; the frame source is checked for determinism, its
mix, its length bounds and that no template, however odd, makes it raise. The injector's ARP
probe is checked against scapy, and one smoke test runs the injector end to end in a private
`unshare -Urn` namespace against a fake pypasta on a tap (this file, run as a script there), so
the pacing is proven without a topology.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dhcp6 import (DHCP6_Solicit, DHCP6OptClientId, DHCP6OptElapsedTime,
                                DHCP6OptIA_NA, DHCP6OptOptReq)
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (ICMPv6EchoRequest, ICMPv6ND_NS, ICMPv6ND_RS, ICMPv6NDOptSrcLLAddr,
                                IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop)
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw, raw

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:             # also run as a script inside `unshare -Urn`
    sys.path.insert(0, str(TESTS))

from helpers import fuzzframes as F  # noqa: E402
from helpers import inject  # noqa: E402

INJECT = TESTS / "helpers" / "inject.py"
A = F.EXAMPLE_ADDRS
TEMPLATES = F.named_templates(**A)
ALLOWED_EXTRA = [ipaddress.ip_network(n) for n in
                 ("0.0.0.0/32", "255.255.255.255/32", "fe80::/64", "ff02::/16")]

EXPECTED_LAYERS = {
    "arp_request": [Ether, ARP],
    "dhcp_discover": [Ether, IP, UDP, BOOTP, DHCP],
    "dhcp_request": [Ether, IP, UDP, BOOTP, DHCP],
    "dhcp_inform": [Ether, IP, UDP, BOOTP, DHCP],
    "dhcpv6_solicit": [Ether, IPv6, UDP, DHCP6_Solicit, DHCP6OptClientId, DHCP6OptElapsedTime,
                       DHCP6OptIA_NA, DHCP6OptOptReq],
    "ndp_ns": [Ether, IPv6, ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr],
    "ndp_rs": [Ether, IPv6, ICMPv6ND_RS, ICMPv6NDOptSrcLLAddr],
    "icmp4_echo": [Ether, IP, ICMP, Raw],
    "icmp6_echo": [Ether, IPv6, ICMPv6EchoRequest],
    "udp4_small": [Ether, IP, UDP, Raw],
    "udp4_large": [Ether, IP, UDP, Raw],
    "udp6_small": [Ether, IPv6, UDP, Raw],
    "udp6_large": [Ether, IPv6, UDP, Raw],
    "tcp4_syn": [Ether, IP, TCP],
    "tcp6_syn": [Ether, IPv6, TCP],
    "ipv4_frag_first": [Ether, IP, UDP, Raw],
    "ipv4_frag_last": [Ether, IP, Raw],
    "ipv6_frag": [Ether, IPv6, IPv6ExtHdrFragment, UDP, Raw],
    "ipv6_exthdrs_udp": [Ether, IPv6, IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt, UDP, Raw],
    "vlan_udp4": [Ether, Dot1Q, IP, UDP, Raw],
    "unknown_ethertype": [Ether, Raw],
}
FRAGMENTS = ("ipv4_frag_first", "ipv4_frag_last", "ipv6_frag")
RECOMPUTED = ("chksum", "cksum", "len", "plen")          # fields scapy fills in when deleted


def frames(src: F.FrameSource, n: int) -> list[bytes]:
    return [src.next() for _ in range(n)]


# --- templates ------------------------------------------------------------------------------------

def test_fuzzframes_templates_cover_every_name_once():
    assert list(TEMPLATES) == list(F.TEMPLATE_NAMES) == list(EXPECTED_LAYERS)
    assert F.templates(**A) == list(TEMPLATES.values())
    assert len(set(TEMPLATES.values())) == len(TEMPLATES)


@pytest.mark.parametrize("name", F.TEMPLATE_NAMES)
def test_fuzzframes_template_dissects_with_expected_layers(name):
    frame = TEMPLATES[name]
    pkt = Ether(frame)
    assert pkt.layers() == EXPECTED_LAYERS[name]
    assert raw(pkt) == frame
    if name not in FRAGMENTS:
        # Lengths and checksums recomputed by scapy from the headers and payloads must be ours.
        again = Ether(frame)
        for layer in again.iterpayloads():
            for field in RECOMPUTED:
                if field in layer.fields and not isinstance(layer, (ARP, DHCP6OptClientId,
                                                                    DHCP6OptElapsedTime,
                                                                    DHCP6OptIA_NA,
                                                                    DHCP6OptOptReq,
                                                                    ICMPv6NDOptSrcLLAddr)):
                    delattr(layer, field)
        assert raw(again) == frame


def test_fuzzframes_template_fields_are_what_the_translator_expects():
    t = {k: Ether(v) for k, v in TEMPLATES.items()}
    assert t["arp_request"][ARP].op == 1 and t["arp_request"][ARP].pdst == A["gw4"]
    assert t["arp_request"][ARP].psrc == A["guest4"] and t["arp_request"].dst == "ff:ff:ff:ff:ff:ff"
    types = {k: dict(o for o in t[k][DHCP].options if isinstance(o, tuple))["message-type"]
             for k in ("dhcp_discover", "dhcp_request", "dhcp_inform")}
    assert types == {"dhcp_discover": 1, "dhcp_request": 3, "dhcp_inform": 8}
    req = dict(o for o in t["dhcp_request"][DHCP].options if isinstance(o, tuple))
    assert req["requested_addr"] == A["guest4"]
    assert t["dhcp_inform"][BOOTP].ciaddr == A["guest4"]
    assert t["dhcp_discover"][BOOTP].chaddr[:6] == bytes.fromhex(A["guest_mac"].replace(":", ""))
    sol = t["dhcpv6_solicit"]
    assert sol[IPv6].dst == "ff02::1:2" and sol.dst == "33:33:00:01:00:02"
    assert (sol[UDP].sport, sol[UDP].dport) == (546, 547)
    ns = t["ndp_ns"]
    assert ns[ICMPv6ND_NS].tgt == A["gw_ll6"] and ns[IPv6].hlim == 255
    assert ns[IPv6].dst == "ff02::1:ff33:6401" and ns.dst == "33:33:ff:33:64:01"
    assert t["ndp_rs"][IPv6].dst == "ff02::2" and t["ndp_rs"][IPv6].hlim == 255
    assert t["icmp4_echo"][ICMP].type == 8 and t["icmp4_echo"][IP].dst == A["peer4"]
    assert t["icmp6_echo"][IPv6].dst == A["peer6"]
    for v in (4, 6):
        assert len(t[f"udp{v}_small"][Raw].load) == F.SMALL_PAYLOAD
        assert len(t[f"udp{v}_large"][Raw].load) == F.LARGE_PAYLOAD
        assert t[f"tcp{v}_syn"][TCP].flags == "S"
    assert t["udp4_large"][IP].dst == A["peer4"] and t["udp6_large"][IPv6].dst == A["peer6"]
    first, last = t["ipv4_frag_first"][IP], t["ipv4_frag_last"][IP]
    assert first.flags == "MF" and first.frag == 0 and last.flags == 0 and last.frag == 4
    assert first.id == last.id
    assert t["ipv6_frag"][IPv6ExtHdrFragment].m == 1
    assert t["vlan_udp4"][Dot1Q].vlan == 100 and t["unknown_ethertype"].type == 0x88B5
    for name, pkt in t.items():
        if not pkt.dst.startswith(("ff:ff", "33:33")):
            assert pkt.dst == A["our_mac"], name
        assert pkt.src == A["guest_mac"], name


def test_fuzzframes_template_fragments_reassemble_to_a_valid_datagram():
    first, last = Ether(TEMPLATES["ipv4_frag_first"]), Ether(TEMPLATES["ipv4_frag_last"])
    dgram = raw(first[IP].payload) + raw(last[IP].payload)
    whole = IP(src=A["guest4"], dst=A["peer4"]) / UDP(dgram)
    again = IP(raw(whole))
    del again[UDP].chksum
    assert raw(again[UDP]) == dgram and len(dgram) == UDP(dgram).len


def addresses(pkt) -> list[str]:
    """Every field value of every layer that parses as an IP address (DHCP options included)."""
    found = []

    def visit(value):
        if isinstance(value, (list, tuple)):
            for v in value:
                visit(v)
        elif isinstance(value, str):
            try:
                found.append(str(ipaddress.ip_address(value)))
            except ValueError:
                pass

    for layer in pkt.iterpayloads():
        for value in layer.fields.values():
            visit(value)
    return found


def test_fuzzframes_template_addresses_respect_the_test_ranges():
    safe = list(F.SAFE_NETS_4 + F.SAFE_NETS_6) + ALLOWED_EXTRA
    seen = set()
    for name, frame in TEMPLATES.items():
        for addr in addresses(Ether(frame)):
            ip = ipaddress.ip_address(addr)
            assert not any(ip in n for n in F.FORBIDDEN_NETS if n.version == ip.version), name
            assert any(ip in n for n in safe if n.version == ip.version), (name, addr)
            seen.add(addr)
    assert {A["guest4"], A["gw4"], A["peer4"], A["guest6"], A["peer6"], A["guest_ll6"],
            A["gw_ll6"]} <= seen


@pytest.mark.parametrize("field, value", [
    ("guest4", "192.0.2.10"), ("gw4", "203.0.113.1"), ("peer4", "8.8.8.8"),
    ("peer4", "10.0.2.2"), ("guest6", "2001:db8:1::2"), ("peer6", "2001:4860::8888"),
    ("guest_ll6", "2001:db8::5"), ("gw_ll6", "fe80:0:0:1::1"),
])
def test_fuzzframes_templates_refuse_addresses_outside_the_test_ranges(field, value):
    with pytest.raises(ValueError, match=field):
        F.templates(**{**A, field: value})


def test_fuzzframes_length_fields_name_the_headers_lengths():
    lf = {k: dict(F.length_fields(v)) for k, v in TEMPLATES.items()}
    assert lf["udp4_small"] == {14: F.LO_NIBBLE, 16: F.U16, 20: F.U16, 38: F.U16}
    assert lf["udp6_small"] == {18: F.U16, 58: F.U16}
    assert lf["ipv6_exthdrs_udp"] == {18: F.U16, 55: F.U8, 63: F.U8, 74: F.U16}
    assert lf["vlan_udp4"] == {18: F.LO_NIBBLE, 20: F.U16, 24: F.U16, 42: F.U16}
    assert lf["ipv4_frag_last"] == {14: F.LO_NIBBLE, 16: F.U16, 20: F.U16}   # no UDP header
    assert 46 in lf["tcp4_syn"] and lf["tcp4_syn"][46] == F.HI_NIBBLE
    assert lf["arp_request"] == {18: F.U8, 19: F.U8}
    assert F.U8 in lf["ndp_ns"].values() and F.U8 in lf["ndp_rs"].values()     # NDP option len
    assert len(lf["dhcp_request"]) > 4 and len(lf["dhcpv6_solicit"]) > 2        # option lengths
    assert lf["unknown_ethertype"] == {}


# --- the frame source -----------------------------------------------------------------------------

def test_fuzzframes_same_seed_same_frames():
    tl = list(TEMPLATES.values())
    a, b, c = F.FrameSource(7, tl), F.FrameSource(7, tl), F.FrameSource(8, tl)
    fa = frames(a, 5000)
    assert fa == frames(b, 5000)
    assert fa != frames(c, 5000)
    assert a.counts == b.counts


def test_fuzzframes_mix_contains_every_kind_in_proportion():
    src = F.FrameSource(3, list(TEMPLATES.values()))
    n = 40_000
    tally = dict.fromkeys(F.KINDS, 0)
    for _ in range(n):
        kind, frame = src.next_tagged()
        tally[kind] += 1
        assert isinstance(frame, bytes)
    assert tally == src.counts
    total = sum(F.DEFAULT_WEIGHTS.values())
    for kind in F.KINDS:
        expected = n * F.DEFAULT_WEIGHTS[kind] / total
        assert 0.8 * expected < tally[kind] < 1.2 * expected, (kind, tally)


def test_fuzzframes_kinds_do_what_they_say():
    tl = list(TEMPLATES.values())
    tset = set(tl)

    def only(kind, n=3000):
        return frames(F.FrameSource(11, tl, {kind: 1}), n)

    assert set(only("valid")) <= tset
    rnd = only("random")
    assert min(map(len, rnd)) < 14 and max(map(len, rnd)) > F.RANDOM_MAX_LEN
    assert all(len(f) <= F.JUMBO_MAX_LEN for f in rnd)
    assert sum(f in tset for f in rnd) == 0
    for f in only("headered"):
        assert any(f[:14] == t[:14] for t in tl)
    by_len = {}
    for t in tl:
        by_len.setdefault(len(t), []).append(t)
    for f in only("mutate"):
        diffs = min(sum(x != y for x, y in zip(f, t)) for t in by_len[len(f)])
        assert diffs <= F.MUTATE_MAX_BYTES
    trunc = only("truncate")
    assert all(any(t.startswith(f) and len(f) < len(t) for t in tl) for f in trunc)
    assert sum(len(f) < F.HEADER_BIAS_LEN for f in trunc) > len(trunc) / 2
    app = only("append")
    assert all(any(f.startswith(t) and len(f) > len(t) for t in tl) for f in app)
    assert max(len(f) for f in app) > 1600
    extreme = only("extreme")
    fields = {t: dict(F.length_fields(t)) for t in tl}
    changed_in_field = 0
    for f in extreme:
        for t in by_len[len(f)]:
            diff = [i for i, (x, y) in enumerate(zip(f, t)) if x != y]
            if not fields[t] and len(diff) <= 1:                 # no field: one byte mutated
                break
            if len(diff) <= 2 and all(i in fields[t] or i - 1 in fields[t] for i in diff):
                changed_in_field += bool(diff)
                break
        else:
            pytest.fail(f"extreme frame is not a template with one field changed: {f.hex()}")
    assert changed_in_field > 0.7 * len(extreme)


def test_fuzzframes_frame_lengths_within_bounds():
    src = F.FrameSource(5, list(TEMPLATES.values()))
    lengths = [len(src.next()) for _ in range(50_000)]
    assert min(lengths) == 0 and max(lengths) <= F.FRAME_MAX
    assert max(lengths) > 1514                 # jumbo random frames and long appends do occur
    big = max(TEMPLATES.values(), key=len) + bytes(F.FRAME_MAX)
    src = F.FrameSource(5, [big, b""])
    assert all(len(src.next()) <= F.FRAME_MAX for _ in range(5000))


EDGE_TEMPLATES = [
    b"", b"\x00", bytes(13), bytes(14), b"\xff" * 60,
    bytes(12) + b"\x08\x00" + b"\x4f" + bytes(19),                     # IHL 15, nothing behind
    bytes(12) + b"\x86\xdd" + b"\x60" + bytes(5) + b"\x00" + bytes(33) + b"\x00\xff" + bytes(6),
    bytes(12) + b"\x81\x00" * 8,                                       # tags all the way down
    bytes(12) + b"\x08\x00\x45" + bytes(8) + b"\x06" + bytes(8) + bytes(12) + b"\xf0" + bytes(7),
    bytes(12) + b"\x86\xdd\x60" + bytes(5) + b"\x3a" + bytes(33) + b"\x87" + bytes(27),  # NDP
]


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**64),
       extra=st.lists(st.binary(max_size=300), max_size=4),
       base=st.lists(st.sampled_from(list(TEMPLATES.values()) + EDGE_TEMPLATES), min_size=1,
                     max_size=6))
def test_fuzzframes_mutation_never_raises(seed, extra, base):
    tl = base + extra
    for t in tl:
        for off, width in F.length_fields(t):
            assert 0 <= off < len(t) - (width == F.U16) and width in (F.U8, F.U16, F.LO_NIBBLE,
                                                                     F.HI_NIBBLE)
    src = F.FrameSource(seed, tl)
    for _ in range(300):
        f = src.next()
        assert isinstance(f, bytes) and len(f) <= F.FRAME_MAX


def test_fuzzframes_every_kind_works_on_edge_templates():
    for kind in F.KINDS:
        src = F.FrameSource(1, EDGE_TEMPLATES, {kind: 1})
        assert all(len(src.next()) <= F.FRAME_MAX for _ in range(2000))


def test_fuzzframes_rejects_bad_arguments():
    with pytest.raises(ValueError):
        F.FrameSource(1, [])
    with pytest.raises(ValueError):
        F.FrameSource(1, [b"x"], {"nonsense": 1})
    with pytest.raises(ValueError):
        F.FrameSource(1, [b"x"], {"random": 0})


def test_fuzzframes_next_is_cheap():
    # About 2 µs a frame on the 2-core test machine; the bound only catches a gross regression
    # (say, scapy creeping into the per-frame path), not a slow or busy machine.
    assert F.bench(n=20_000) < 50e-6


# --- the injector, pure parts ---------------------------------------------------------------------

MY_MAC = bytes.fromhex("020000000042")
OUR_MAC = bytes.fromhex("9a559a559a55")
ZERO4, PROBE4 = bytes(4), ipaddress.IPv4Address("198.51.100.77").packed


def test_inject_probe_is_an_arp_request_scapy_agrees_with():
    pkt = Ether(inject.arp_probe(MY_MAC, ZERO4, PROBE4))
    assert pkt.layers() == [Ether, ARP] and pkt.dst == "ff:ff:ff:ff:ff:ff"
    assert pkt.src == pkt[ARP].hwsrc == "02:00:00:00:00:42"
    assert (pkt[ARP].op, pkt[ARP].psrc, pkt[ARP].pdst) == (1, "0.0.0.0", "198.51.100.77")


def test_inject_probe_reply_matched_exactly():
    def reply(**kw):
        f = dict(op=2, hwsrc="9a:55:9a:55:9a:55", psrc="198.51.100.77",
                 hwdst="02:00:00:00:00:42", pdst="0.0.0.0")
        f.update(kw)
        return raw(Ether(src=kw.pop("esrc", "9a:55:9a:55:9a:55"), dst="02:00:00:00:00:42")
                   / ARP(**{k: v for k, v in f.items() if k != "esrc"}))

    def ok(frame):
        return inject.is_probe_reply(frame, OUR_MAC, MY_MAC, ZERO4, PROBE4)

    assert ok(reply()) and ok(reply() + bytes(18))
    for bad in (dict(op=1), dict(hwsrc="02:00:00:00:00:99"), dict(psrc="198.51.100.78"),
                dict(hwdst="02:00:00:00:00:43"), dict(pdst="198.51.100.2"),
                dict(esrc="02:00:00:00:00:99")):
        assert not ok(reply(**bad)), bad
    assert not ok(reply()[:41]) and not ok(b"")


def test_inject_import_has_no_side_effects_and_arguments_default_sanely():
    assert callable(inject.main)
    args = inject.parse_args(["--ifname", "tap0"])
    assert (args.count, args.seed, args.sync_every, args.report_every) == (1_000_000, 1, 500,
                                                                           100_000)
    assert (args.our_mac, args.probe_ip, args.sync_timeout) == ("9a:55:9a:55:9a:55",
                                                                "198.51.100.77", 5.0)
    assert inject.parse_args(["--ifname", "x", "--mix", "mutate=3,random=1"]).mix == {
        "mutate": 3, "random": 1}
    with pytest.raises(SystemExit):
        inject.parse_args(["--ifname", "x", "--mix", "bogus=1"])
    with pytest.raises(SystemExit):
        inject.parse_args(["--ifname", "x", "--probe-ip", A["guest4"]])
    assert inject.eui64_link_local(bytes.fromhex("0200c6336402")) == A["guest_ll6"]


# --- end to end in a private namespace (unshare -Urn), against a fake pypasta ---------------------

TUNSETIFF, TUNSETVNETHDRSZ = 0x400454CA, 0x400454D8
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR, IFF_UP = 0x0002, 0x1000, 0x4000, 0x1
SIOCGIFFLAGS, SIOCSIFFLAGS, SIOCSIFMTU, SIOCSIFHWADDR = 0x8913, 0x8914, 0x8922, 0x8924
VNET_HDR_LEN = 12
SMOKE_IFNAME = "fuzz0"
SMOKE_TIMEOUT_S = 20


def _fake_pypasta(ifname: str, answer: bool, argv: list[str]) -> dict:
    """Inside the namespace: a tap read by a fake pypasta that answers the probe (if `answer`),
    and the injector run against it. Returns what both saw."""
    tap = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tap, TUNSETIFF, struct.pack("16sH22x", ifname.encode(),
                                            IFF_TAP | IFF_NO_PI | IFF_VNET_HDR))
    fcntl.ioctl(tap, TUNSETVNETHDRSZ, struct.pack("i", VNET_HDR_LEN))
    ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    name = ifname.encode()
    fcntl.ioctl(ctl, SIOCSIFHWADDR, struct.pack("16sH6s16x", name, 1, bytes.fromhex(
        A["guest_mac"].replace(":", ""))))
    fcntl.ioctl(ctl, SIOCSIFMTU, struct.pack("16si20x", name, 65520))
    got = fcntl.ioctl(ctl, SIOCGIFFLAGS, struct.pack("16s24x", name))
    flags = struct.unpack_from("16sH", got)[1]
    fcntl.ioctl(ctl, SIOCSIFFLAGS, struct.pack("16sH22x", name, flags | IFF_UP))
    ctl.close()

    args = inject.parse_args(argv)
    my_mac = bytes.fromhex(A["guest_mac"].replace(":", ""))
    our_mac = bytes.fromhex(args.our_mac.replace(":", ""))
    sender = ipaddress.IPv4Address(args.sender_ip).packed
    probe_ip = ipaddress.IPv4Address(args.probe_ip).packed
    probe = inject.arp_probe(my_mac, sender, probe_ip)
    answer_frame = bytes(VNET_HDR_LEN) + my_mac + our_mac + b"\x08\x06" + struct.pack(
        "!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, our_mac, probe_ip, my_mac, sender)
    src = F.FrameSource(args.seed, F.templates(**{**A, "gw_ll6": args.gw_ll6}))
    expected = [f for f in (src.next() for _ in range(args.count)) if len(f) >= 14]
    seen = dict(matched=0, foreign=0, probes=0, vnet_nonzero=0)
    stop = threading.Event()

    def serve():
        os.set_blocking(tap, False)
        while not stop.is_set():
            try:
                data = os.read(tap, 65536 + VNET_HDR_LEN)
            except BlockingIOError:
                time.sleep(0.0005)
                continue
            frame = data[VNET_HDR_LEN:]
            seen["vnet_nonzero"] += any(data[:VNET_HDR_LEN])
            if seen["matched"] < len(expected) and frame == expected[seen["matched"]]:
                seen["matched"] += 1
            elif frame == probe:
                seen["probes"] += 1
                if answer:
                    os.write(tap, answer_frame)
            else:
                seen["foreign"] += 1      # the namespace's own IPv6 chatter (RS, MLD)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        res = subprocess.run([sys.executable, str(INJECT)] + argv, capture_output=True,
                             text=True, timeout=SMOKE_TIMEOUT_S)
    finally:
        time.sleep(0.05)
        stop.set()
        thread.join(2)
    return dict(rc=res.returncode, stdout=res.stdout, stderr=res.stderr,
                expected=len(expected), **seen)


def run_smoke(answer: bool, argv: list[str]) -> dict:
    """`_fake_pypasta` in a new user + network namespace (this file run as a script)."""
    unshare = shutil.which("unshare")
    assert unshare, "unshare (util-linux) not found: run `bash tests/install-deps.sh`"
    res = subprocess.run([unshare, "-Urn", sys.executable, __file__, "--smoke",
                          "answer" if answer else "silent", SMOKE_IFNAME] + argv,
                         capture_output=True, text=True, timeout=SMOKE_TIMEOUT_S + 10)
    assert res.returncode == 0, f"smoke helper failed:\n{res.stdout}\n{res.stderr}"
    return json.loads(res.stdout)


def test_inject_paces_on_arp_probes_end_to_end_in_private_netns():
    argv = ["--ifname", SMOKE_IFNAME, "--count", "20000", "--seed", "9", "--sync-every", "500",
            "--report-every", "5000", "--gw-ll6", A["gw_ll6"]]
    r = run_smoke(True, argv)
    assert r["rc"] == 0, r
    assert r["stdout"].splitlines() == [f"progress {n}" for n in (5000, 10000, 15000, 20000)] + [
        f"done 20000 sent, {20000 - r['expected']} send errors"], r
    # Every frame the kernel accepted reached the tap, in order, with a zero virtio-net header;
    # the refused ones are exactly those shorter than an Ethernet header (EINVAL).
    assert r["matched"] == r["expected"] and r["probes"] == 20000 // 500, r
    assert r["vnet_nonzero"] == 0 and r["foreign"] < 50, r
    assert "EINVAL" in r["stderr"] and "40 syncs" in r["stderr"], r


def test_inject_exits_nonzero_when_the_probe_is_not_answered():
    argv = ["--ifname", SMOKE_IFNAME, "--count", "300", "--sync-every", "100",
            "--sync-timeout", "0.3", "--gw-ll6", A["gw_ll6"]]
    r = run_smoke(False, argv)
    assert r["rc"] == 1 and r["probes"] == 1, r
    assert "no ARP reply from 9a:55:9a:55:9a:55 for 198.51.100.77 within 0.3 s after 100 " \
           "frames" in r["stderr"], r
    assert "done" not in r["stdout"]


if __name__ == "__main__" and sys.argv[1:2] == ["--smoke"]:
    print(json.dumps(_fake_pypasta(sys.argv[3], sys.argv[2] == "answer", sys.argv[4:])))
