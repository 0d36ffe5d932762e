"""UDP flows over real sockets on loopback, in-process: reply mapping, source port kept,
inbound listeners, idle expiry and eviction (pasta/shell/udp.py with the real engine).

The tap side is a recorder standing in for `dispatch.TapLink`: frames the flows write to the
namespace are parsed back with `pasta.core.wire`. The "host" side is this machine's loopback only,
reached through pypasta's gateway-to-host-loopback mapping (198.51.100.1 -> 127.0.0.1).
"""

from __future__ import annotations

import ipaddress
import socket

import pytest

from pasta.core import fwd, fwd_rule
from pasta.shell import fwd_listen
from pasta.shell.engine import Engine
from pasta.shell.udp import UdpFlows
from pasta.core.wire import parse_frame
from pasta.core.wire.l4 import parse_udp

GW = ipaddress.ip_address("198.51.100.1").packed
NS = ipaddress.ip_address("198.51.100.2").packed
RULES = fwd.Rules(map_host_lo4=GW, guest4=NS, our_tap4=GW)
SO_NO_CHECK = 11                # asm-generic/socket.h (not in the socket module)


class Recorder:
    """What UdpFlows needs of a TapLink; keeps the frames it is asked to send."""

    vnet = True
    csum_offload = True
    guest_mac = bytes.fromhex("020000000002")
    our_mac = bytes.fromhex("9a559a559a55")
    addr_seen4 = NS
    addr_seen6 = None
    addr_ll_seen6 = None

    def __init__(self):
        self.frames: list[bytes] = []
        self.drops: list[str] = []

    def drop(self, reason: str, count: int = 1) -> None:
        self.drops.extend([reason] * count)

    def src_mac(self, _addr) -> bytes:
        """No neighbour table here: every frame comes from our own MAC."""
        return self.our_mac

    def send(self, pieces, length: int) -> bool:
        self.frames.append(b"".join(bytes(p) for p in pieces))
        return True

    def udp(self, i: int = -1):
        """(src, sport, dst, dport, payload) of a recorded frame."""
        buf = self.frames[i]
        f = parse_frame(buf, True)
        u = parse_udp(buf, f.l4_off, f.end)
        return f.src, u.sport, f.dst, u.dport, buf[u.payload_off:u.end]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spin(engine: Engine, until, timeout: float = 3.0) -> None:
    """Run the engine until `until()` is true (checked after every batch) or fail."""
    def check():
        if until():
            engine.stop(0)
        else:
            engine.call_later(0.01, check)
    first = engine.call_later(0, check)
    limit = engine.call_later(timeout, lambda: engine.stop(1))
    engine.exit_code = None
    try:
        assert engine.run() == 0, "timed out"
    finally:
        first.cancel()
        limit.cancel()


@pytest.fixture
def server():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(2)
    yield s
    s.close()


def make(timeout=180.0, capacity=64):
    engine = Engine()
    link = Recorder()
    return engine, link, UdpFlows(engine, link, RULES, timeout=timeout, capacity=capacity)


def test_outbound_keeps_source_port_and_maps_replies_back(server):
    engine, link, flows = make()
    sport, port = free_port(), server.getsockname()[1]
    flows.from_tap(False, NS, GW, sport, port, memoryview(b"ping"))
    data, peer = server.recvfrom(100)
    assert data == b"ping" and peer == ("127.0.0.1", sport)
    for payload in (b"pong", b"", b"x" * 60000):
        server.sendto(payload, peer)
    spin(engine, lambda: len(link.frames) == 3)
    got = [link.udp(i) for i in range(3)]
    assert [g[4] for g in got] == [b"pong", b"", b"x" * 60000]       # in order, intact
    assert {g[:4] for g in got} == {(GW, port, NS, sport)}            # as if from the gateway
    flows.close()
    engine.close()


def test_idle_flow_expires_and_its_socket_is_closed(server):
    engine, link, flows = make(timeout=0.2)
    flows.from_tap(False, NS, GW, free_port(), server.getsockname()[1], b"a")
    (flow,) = flows.table.flows.values()
    spin(engine, lambda: len(flows.table) == 0)
    assert flow.sock.fileno() == -1
    assert flow.fd not in engine.handlers
    engine.close()


def test_full_table_evicts_least_recently_used(server):
    engine, link, flows = make(capacity=2)
    port = server.getsockname()[1]
    ports = [free_port() for _ in range(3)]
    for p in ports:
        flows.from_tap(False, NS, GW, p, port, b"x")
    assert len(flows.table) == 2 and engine.stats["udp_flows_evicted"] == 1
    assert sorted(k[2] for k in flows.table.flows) == sorted(ports[1:])  # (v6, src, sport, ...)
    flows.close()
    engine.close()


def test_inbound_listener_delivers_and_replies_leave_from_the_forwarded_port():
    engine, link, flows = make()
    port = free_port()
    spec = f"127.0.0.1/{port}:{port + 1 if port < 65535 else port}"
    caps = fwd_rule.fwd_caps(True, False, False, True, False)
    fwd_listen.fwd_listen_init(engine, fwd_rule.fwd_table(caps, fwd_rule.fwd_rule_parse(
        spec, fwd_rule.PIF_HOST, fwd_rule.IPPROTO_UDP, caps, (49152, 65535))), {
        (fwd_rule.PIF_HOST, fwd_rule.IPPROTO_UDP): (lambda s, t: flows.bind_listener(
            s.v6, s.addr, s.ifname or None, s.port, t - s.port), flows.remove_listener)})
    target = port + 1 if port < 65535 else port
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(2)
    client.sendto(b"hello", ("127.0.0.1", port))
    cport = client.getsockname()[1]
    spin(engine, lambda: link.frames)
    # A loopback peer is shown to the namespace as the gateway (host-loopback mapping).
    assert link.udp() == (GW, cport, NS, target, b"hello")
    flows.from_tap(False, NS, GW, target, cport, b"world")
    assert client.recvfrom(100) == (b"world", ("127.0.0.1", port))
    # A batch of replies leaves through the listener with GSO (sendmsg to the peer's address)
    sent = _batch(flows, target, cport, [1200] * 20 + [5])
    assert [client.recvfrom(2000) for _ in sent] == [(d, ("127.0.0.1", port)) for d in sent]
    assert engine.stats["udp_gso_sends"] == 1
    client.close()
    flows.close()
    engine.close()


def test_non_unicast_and_port_zero_are_dropped():
    engine, link, flows = make()
    flows.from_tap(False, NS, bytes((224, 0, 0, 251)), 1234, 5353, b"m")
    flows.from_tap(False, NS, GW, 0, 53, b"z")
    assert link.drops == ["udp: not unicast or port 0"] * 2 and not len(flows.table)
    engine.close()


def _batch(flows, sport, port, sizes) -> list[bytes]:
    """Queue datagrams of `sizes` as one tap batch does, then flush; returns what was sent."""
    sent = [bytes([i % 251]) * n for i, n in enumerate(sizes)]
    flows.batching = True
    for d in sent:
        flows.from_tap(False, NS, GW, sport, port, memoryview(d))
    flows.flush()
    return sent


def _received(server, count) -> list[bytes]:
    return [server.recv(70000) for _ in range(count)]


def test_batched_datagrams_go_out_with_gso_and_keep_boundaries(server):
    """A tap batch is sent per flow in runs of equal sizes (a shorter datagram may end a run)
    with UDP_SEGMENT: the receiving socket still gets each datagram whole and in order."""
    engine, link, flows = make()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sizes = [1400] * 50 + [700] + [1400] * 3 + [0, 0] + [9000] * 7 + [1] + [300] * 70
    sent = _batch(flows, free_port(), server.getsockname()[1], sizes)
    assert _received(server, len(sent)) == sent
    # GSO runs: 46x1400 (the 65000-byte cap) | 4x1400+700 (a shorter one closes a run) |
    # 3x1400 | 7x9000 (the byte cap again) | 64x300 (the segment cap) | 6x300; the zero-length
    # and 1-byte datagrams go alone.
    assert engine.stats["udp_gso_sends"] == 6
    assert engine.stats["udp_to_host"] == len(sent) and not link.drops


def test_gso_refused_by_the_route_falls_back_to_single_sends(server):
    """SO_NO_CHECK makes the kernel refuse UDP GSO (EINVAL), as a path MTU below the segment
    size does: the run goes datagram by datagram and the flow stops trying for that size."""
    engine, link, flows = make()
    sport, port = free_port(), server.getsockname()[1]
    flows.from_tap(False, NS, GW, sport, port, memoryview(b"open"))
    assert server.recv(100) == b"open"
    flow = next(iter(flows.table.values()))
    flow.sock.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
    sent = _batch(flows, sport, port, [1000] * 10)
    assert _received(server, len(sent)) == sent
    assert engine.stats["udp_gso_fallbacks"] == 1 and flow.gso_limit == 1000
    sent = _batch(flows, sport, port, [1200] * 5)        # not tried again at this size
    assert _received(server, len(sent)) == sent
    assert engine.stats["udp_gso_fallbacks"] == 1 and "udp_gso_sends" not in engine.stats
    assert engine.stats["udp_to_host"] == 16 and not link.drops
