"""TCP through the tap, in-process: the shell (pasta/shell/tcp_buf.py) with the real engine and real
host sockets on this machine's loopback, and a small scripted "namespace" on the tap side.

The namespace here is a minimal receiver written for the test: it parses the frames pypasta
writes (pasta.core.wire, itself checked against scapy in tests/unit) and answers with segments as a
kernel would (cumulative ACKs, duplicate ACKs for a gap, RST, SYN). What a real kernel does in
each case is covered end to end in tests/integration; these tests pin down the decisions that
are hard to provoke there: a tap that refuses a frame, a lost segment repaired from duplicate
ACKs, RSTs outside the window, a SYN on a live flow, keepalives both ways, epoll refusing a flow,
a write the host socket takes only in part.
"""

from __future__ import annotations

import errno
import gc
import os
import socket

import pytest

from pasta.shell.engine import EPOLLIN, EPOLLOUT, Engine
from pasta.core.tcp import KEEPALIVE_S, State
from pasta.shell.tcp_buf import TcpFlows
from pasta.core.wire import parse_frame
from pasta.core.wire.l4 import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, TcpHdr, parse_tcp

from test_udp_flows import GW, NS, RULES, Recorder, spin

NS_PORT = 40000
NS_ISN = 7000
WINDOW = 65535


class Namespace:
    """The tap side: records pypasta's segments and answers like a receiving kernel."""

    def __init__(self, engine: Engine, port: int, refuse_every: int = 0, lose=()):
        self.engine = engine
        self.link = Recorder()
        self.link.send = self._send
        self.tcp = TcpFlows(engine, self.link, RULES, 1500)
        self.port = port
        self.segments = []              # (flags, seq, ack, payload) of every segment taken
        self.windows = []               # and the window field of each
        self.refuse_every = refuse_every
        self.lose = set(lose)           # indexes of data segments lost on the way (taken, dropped)
        self.data_seen = 0
        self.writes = 0
        self.rcv_nxt = None
        self.got = bytearray()
        self.snd_nxt = NS_ISN + 1
        self.inbox = []
        self.ooo = {}

    def _send(self, pieces, length: int) -> bool:
        self.writes += 1
        if self.refuse_every and self.writes % self.refuse_every == 0:
            return False                # the tap's queue is full: not taken
        buf = b"".join(bytes(p) for p in pieces)
        f = parse_frame(buf, True)
        h = parse_tcp(buf, f.l4_off, f.end)
        payload = buf[h.payload_off:h.end]
        self.segments.append((h.flags, h.seq, h.ack, payload))
        self.windows.append(h.window)
        # The namespace answers after the write returned (a tap is asynchronous), not from
        # inside pypasta's own call.
        if not self.inbox:
            self.engine.call_later(0, self._receive)
        self.inbox.append((h, payload))
        return True

    def _receive(self) -> None:
        inbox, self.inbox = self.inbox, []
        for h, payload in inbox:
            self._segment_in(h, payload)

    def _segment_in(self, h, payload) -> None:
        if payload:
            i = self.data_seen
            self.data_seen += 1
            if i in self.lose:
                return                  # taken by the tap, lost before the namespace's stack
            self.ooo[h.seq] = payload   # (kept out of order, as a kernel does)
            while self.rcv_nxt in self.ooo:
                chunk = self.ooo.pop(self.rcv_nxt)
                self.got += chunk
                self.rcv_nxt = (self.rcv_nxt + len(chunk)) & 0xFFFFFFFF
            self.ooo = {k: v for k, v in self.ooo.items()
                        if (k - self.rcv_nxt) & 0x80000000 == 0}
            self.ack()                  # in order: cumulative ACK; a gap: a duplicate ACK
        elif h.flags & TCP_SYN and h.flags & TCP_ACK:
            self.rcv_nxt = (h.seq + 1) & 0xFFFFFFFF
        if h.flags & TCP_FIN and h.seq == self.rcv_nxt:
            self.rcv_nxt = (h.seq + 1) & 0xFFFFFFFF
            self.ack()

    def segment(self, flags: int, seq=None, ack=None, payload=b"", window=WINDOW, mss=None,
                wscale=None) -> None:
        seq = self.snd_nxt if seq is None else seq
        ack = (self.rcv_nxt or 0) if ack is None else ack
        end = 54 + len(payload)
        h = TcpHdr(NS_PORT, self.port, seq, ack, flags, window, 0, 0, 20, 54, end, mss, wscale,
                   False)
        self.tcp.from_tap(False, NS, GW, h, bytes(54) + payload)

    def ack(self) -> None:
        self.segment(TCP_ACK)

    def connect(self) -> None:
        self.segment(TCP_SYN, seq=NS_ISN, ack=0, mss=1460, wscale=7)
        spin(self.engine, lambda: self.rcv_nxt is not None)
        self.ack()
        assert self.flow().conn.state == State.ESTABLISHED

    def flow(self):
        (f,) = self.tcp.flows.values()
        return f

    def close(self) -> None:
        self.tcp.close()
        self.engine.close()


class Server:
    """A loopback server run by the test's own engine (no thread: nothing runs behind the
    test's back): each accepted connection gets the next queued payload, then EOF."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.lsock.setblocking(False)
        self.port = self.lsock.getsockname()[1]
        self.queue: list[bytes] = []
        self.payloads: list[bytes] = []
        self.conns = []
        engine.add(self.lsock.fileno(), EPOLLIN, self._accept)

    def serve(self, n: int) -> None:
        self.queue.append(os.urandom(n))

    def _accept(self, _ev) -> None:
        c, _ = self.lsock.accept()
        c.setblocking(False)
        data = memoryview(self.queue.pop(0)) if self.queue else memoryview(b"")
        self.payloads.append(bytes(data))
        self.conns.append(c)
        state = [data]

        def write(_ev=0):
            try:
                state[0] = state[0][c.send(state[0]):] if state[0] else state[0]
            except BlockingIOError:
                pass
            except OSError:
                state[0] = memoryview(b"")
            if not state[0]:
                self.engine.remove(c.fileno())
                c.close()
        self.engine.add(c.fileno(), EPOLLOUT, write)

    def close(self) -> None:
        self.engine.remove(self.lsock.fileno())
        self.lsock.close()
        for c in self.conns:
            if c.fileno() >= 0:
                self.engine.remove(c.fileno())
                c.close()


@pytest.fixture
def server():
    made = []

    def make(engine: Engine) -> Server:
        made.append(Server(engine))
        return made[-1]
    yield make
    for srv in made:
        srv.close()


def _receive_all(ns: Namespace, n: int, timeout: float = 10.0) -> None:
    spin(ns.engine, lambda: len(ns.got) >= n, timeout)


def test_a_segment_the_tap_refuses_is_sent_again_without_a_retransmission(server):
    """passt's tcp_revert_seq: the sequence does not advance past a frame that was not
    written, and the same bytes are peeked again at once (no ACK timeout, no duplicate ACKs)."""
    engine = Engine()
    srv = server(engine)
    srv.serve(300_000)
    ns = Namespace(engine, srv.port, refuse_every=3)
    try:
        ns.connect()
        _receive_all(ns, 300_000)
        st = ns.engine.stats
        assert bytes(ns.got) == srv.payloads[0]
        assert st["tcp_tap_reverts"] > 0
        assert st["tcp_retransmits"] == 0 and st["tcp_fast_retransmits"] == 0
        seqs = [s for fl, s, a, p in ns.segments if p]
        assert seqs == sorted(seqs, key=lambda s: (s - seqs[0]) & 0xFFFFFFFF)   # no repeats
        assert len(set(seqs)) == len(seqs)
    finally:
        ns.close()


def test_a_tap_that_refuses_everything_is_retried_on_a_timer_not_in_a_loop(server):
    """While the tap takes nothing (its queue full, the link down), the flow waits for the
    10 ms retry timer: it does not re-push in the same loop turn over and over."""
    engine = Engine()
    srv = server(engine)
    srv.serve(100_000)
    ns = Namespace(engine, srv.port)
    try:
        ns.connect()
        spin(engine, lambda: ns.got)                          # data flows
        ns.refuse_every = 1                                    # the tap refuses everything
        writes = ns.writes
        t0 = engine.now
        spin(engine, lambda: engine.now - t0 >= 0.2)
        # about one attempt per 10 ms retry (20 in 0.2 s), not thousands
        assert ns.writes - writes <= 40, ns.writes - writes
        ns.refuse_every = 0
        _receive_all(ns, 100_000)
        assert bytes(ns.got) == srv.payloads[0]
    finally:
        ns.close()


@pytest.mark.parametrize("lost", [[3], [3, 4], [3, 7, 12]])
def test_lost_segments_are_repaired_one_by_one_from_duplicate_acks(server, lost):
    """NewReno: three duplicate ACKs re-send the first missing segment only, a partial ACK the
    next hole; the bytes after a hole are not sent twice (no go-back-N, no timeout)."""
    engine = Engine()
    srv = server(engine)
    srv.serve(200_000)
    ns = Namespace(engine, srv.port, lose=lost)
    try:
        ns.connect()
        _receive_all(ns, 200_000)
        st = ns.engine.stats
        assert bytes(ns.got) == srv.payloads[0]
        assert st["tcp_fast_retransmits"] == len(lost) and st["tcp_retransmits"] == 0
        data = [s for fl, s, a, p in ns.segments if p]
        assert len(data) - len(set(data)) == len(lost)        # only the lost ones went twice
    finally:
        ns.close()


def test_rst_only_at_the_expected_sequence_number(server):
    """RFC 5961 3.2: an RST in the window but not at RCV.NXT gets a challenge ACK, one outside
    is ignored; the flow ends only on the exact one."""
    engine = Engine()
    srv = server(engine)
    srv.serve(10)
    ns = Namespace(engine, srv.port)
    try:
        ns.connect()
        f = ns.flow()
        ns.segment(TCP_RST, seq=ns.snd_nxt + 100)
        assert not f.closed and ns.engine.stats["tcp_challenge_acks"] == 1
        assert ns.segments[-1][0] == TCP_ACK                   # the challenge ACK
        ns.segment(TCP_RST, seq=ns.snd_nxt + (1 << 30))
        assert not f.closed and ns.engine.stats["tcp_challenge_acks"] == 1
        ns.segment(TCP_RST, seq=ns.snd_nxt - 1)
        assert not f.closed
        ns.segment(TCP_RST)
        assert f.closed and not ns.tcp.flows
    finally:
        ns.close()


def test_a_syn_for_a_flow_still_held_gets_a_challenge_ack_then_a_new_flow(server):
    """A namespace that reuses the tuple while we still hold the old flow: the challenge ACK
    makes it send an RST at our ACK number (as a kernel in SYN-SENT does), which ends the old
    flow; its retransmitted SYN then opens a new one."""
    engine = Engine()
    srv = server(engine)
    srv.serve(10)
    srv.serve(10)
    ns = Namespace(engine, srv.port)
    try:
        ns.connect()
        old = ns.flow()
        ns.segment(TCP_SYN, seq=NS_ISN + 50000, ack=0, mss=1460, wscale=7)
        flags, seq, ack, _ = ns.segments[-1]
        assert flags == TCP_ACK and ns.engine.stats["tcp_challenge_acks"] == 1
        ns.segment(TCP_RST, seq=ack)                           # what the kernel answers
        assert old.closed and not ns.tcp.flows
        ns.rcv_nxt = None
        ns.snd_nxt = NS_ISN + 50001
        ns.segment(TCP_SYN, seq=NS_ISN + 50000, ack=0, mss=1460, wscale=7)
        spin(ns.engine, lambda: ns.rcv_nxt is not None)
        assert ns.segments[-1][0] == TCP_SYN | TCP_ACK
    finally:
        ns.close()


def _connected(server) -> tuple:
    """(engine, namespace, flow) of one connection to a server that sends nothing."""
    engine = Engine()
    ns = Namespace(engine, server(engine).port)
    ns.connect()
    return engine, ns, ns.flow()


def test_keepalives_from_the_namespace_turn_on_so_keepalive(server):
    engine, ns, f = _connected(server)
    try:
        assert not f.sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        ns.segment(TCP_ACK, seq=ns.snd_nxt - 1)                # a keepalive probe
        assert f.sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        assert ns.segments[-1][0] == TCP_ACK or ns.tcp.ack_pending
    finally:
        ns.close()


def test_keepalive_probe_to_a_silent_namespace(server):
    """30 s without a segment from the namespace: pypasta sends a keepalive (an ACK one
    sequence number back); an RST answer at RCV.NXT ends the flow."""
    engine, ns, f = _connected(server)
    try:
        spin(engine, lambda: f.conn.fin)                       # the server's EOF arrived
        before = len(ns.segments)
        # Thirty seconds pass (the flow's clock, not the test's)
        f.conn.last_activity -= KEEPALIVE_S
        f.conn.timer_at = engine.now
        spin(engine, lambda: engine.stats["tcp_keepalives_to_ns"] == 1)
        flags, seq, ack, payload = ns.segments[-1]
        assert len(ns.segments) > before and flags == TCP_ACK and not payload
        assert seq == (f.conn.seq_to_tap - 1) & 0xFFFFFFFF
        ns.segment(TCP_RST)                                    # a vanished endpoint
        assert f.closed
    finally:
        ns.close()


class RefusingEngine(Engine):
    """epoll refuses one registration, as with ENOSPC at fs.epoll.max_user_watches (a global
    limit the tests may not lower on this machine)."""

    def __init__(self):
        super().__init__()
        self.refuse_next = False

    def add(self, fd, events, handler, kind=None):
        if self.refuse_next:
            self.refuse_next = False
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        super().add(fd, events, handler, kind)


def test_an_epoll_failure_costs_that_flow_only(server):
    engine = RefusingEngine()
    srv = server(engine)
    srv.serve(1000)             # (for the connection whose flow epoll refused)
    srv.serve(1000)
    ns = Namespace(engine, srv.port)
    try:
        gc.collect()            # earlier tests' garbage must not close fds during the count
        before = len(os.listdir("/proc/self/fd"))
        engine.refuse_next = True
        ns.segment(TCP_SYN, seq=NS_ISN, ack=0, mss=1460, wscale=7)   # dropped: no flow
        assert not ns.tcp.flows and engine.stats["tcp_flow_errors"] == 1
        gc.collect()
        assert len(os.listdir("/proc/self/fd")) == before            # its socket is closed
        ns.connect()                                                 # the SYN again: works
        _receive_all(ns, 1000)
    finally:
        ns.close()


def test_a_short_write_is_followed_by_an_update_and_three_true_duplicate_acks():
    """The namespace sends more than the host socket takes (here: more than the window, to a
    peer that reads nothing yet). Only what was written is acknowledged; once the socket
    drains, a window update and three duplicates of it ask for the rest. The duplicates carry
    the update's window: an ACK that changes the window is an update to a namespace's kernel,
    not a duplicate, and would not trigger its fast retransmit."""
    engine = Engine()
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    ns = Namespace(engine, lsock.getsockname()[1])
    peer = None
    try:
        ns.connect()
        peer, _ = lsock.accept()
        f = ns.flow()
        data = os.urandom(32 << 20)
        start = ns.snd_nxt
        ns.segment(TCP_ACK, payload=data)
        written = (f.conn.seq_from_tap - start) & 0xFFFFFFFF
        assert 0 < written < len(data) and f.partial
        before = len(ns.segments)
        got = bytearray()
        peer.setblocking(False)

        def drained() -> bool:
            """Read what the peer has (the test's engine calls this every 10 ms)."""
            while True:
                try:
                    chunk = peer.recv(1 << 20)
                except BlockingIOError:
                    break
                got.extend(chunk)
            return len(got) >= written and not f.partial
        # The socket keeps draining while the ACKs go out (the peer reads on another CPU):
        # each reading of its room is larger than the last. (Here the peer reads only
        # between loop turns, so the growth is added to the real reading.)
        space = ns.tcp._space
        calls = [0]

        def draining(fl, fresh=False):
            calls[0] += 1
            return space(fl, fresh) + 4096 * calls[0]
        ns.tcp._space = draining
        spin(engine, drained, 10)
        acks = ns.segments[before:]
        wins = ns.windows[before:]
        assert len(acks) >= 4, acks
        assert all(a == (start + written) & 0xFFFFFFFF and not p for _, _, a, p in acks[-4:])
        assert wins[-1] == wins[-2] == wins[-3] == wins[-4] > 0, wins
        assert bytes(got[:written]) == data[:written]
    finally:
        if peer is not None:
            peer.close()
        lsock.close()
        ns.close()
