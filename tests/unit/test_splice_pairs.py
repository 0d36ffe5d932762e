"""pasta.shell.tcp_splice without namespaces: TCP pairs on this host's loopback, driven by a real Engine's
epoll set (issue 13, items 4 and 6): the pair limit, a pipe or epoll failure costing its pair only
and leaking no fd, and a finished side leaving the epoll set.
"""

from __future__ import annotations

import errno
import gc
import os
import socket
import time

import pytest

from pasta.shell import tcp_splice as splice
from pasta.shell.engine import Engine


def _fds() -> int:
    """This process's open fds, once garbage from earlier tests is collected: a socket left in
    a reference cycle would otherwise be closed by the collector at any moment, in the middle
    of a count."""
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


def spin(engine: Engine, until, timeout: float = 5.0) -> None:
    """Dispatch epoll events (as Engine.run does) until until() is true; bounded."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "condition not reached"
        poll_once(engine)


def poll_once(engine: Engine) -> None:
    for fd, ev in engine.ep.poll(0.02):
        h = engine.handlers.get(fd)
        if h is not None:
            h(ev)


def recv_spinning(engine: Engine, s: socket.socket, n: int, timeout: float = 5.0) -> bytes:
    """Read from s (non-blocking) while dispatching events: up to n bytes or end of file."""
    s.setblocking(False)
    got = bytearray()
    deadline = time.monotonic() + timeout
    while len(got) < n:
        assert time.monotonic() < deadline, f"only {len(got)} of {n} bytes"
        poll_once(engine)
        try:
            chunk = s.recv(1 << 16)
        except BlockingIOError:
            continue
        if not chunk:
            break
        got += chunk
    return bytes(got)


class Rig:
    """A server listener (the splice target), a front listener (what clients connect to)."""

    def __init__(self):
        self.engine = Engine()
        self.server = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.front = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.socks: list[socket.socket] = []

    def client(self, ts: splice.TcpSplice) -> socket.socket:
        """A connected client whose accepted socket is handed to ts.join()."""
        c = socket.create_connection(self.front.getsockname(), timeout=5)
        self.socks.append(c)
        a, _ = self.front.accept()
        ts.join(a, socket.socket(), self.server.getsockname())
        return c

    def close(self) -> None:
        for s in self.socks + [self.server, self.front]:
            s.close()
        self.engine.ep.close()


@pytest.fixture
def rig():
    r = Rig()
    yield r
    r.close()


def _ending(c: socket.socket) -> str:
    c.settimeout(5)
    try:
        data = c.recv(1)
    except ConnectionResetError:
        return "reset"
    return "eof" if data == b"" else "data"


def test_splice_moves_data_both_ways_and_closes_cleanly(rig):
    ts = splice.TcpSplice(rig.engine, max_pairs=8)
    before = _fds()
    c = rig.client(ts)
    s, _ = rig.server.accept()
    rig.socks.append(s)
    c.sendall(b"x" * 300000)
    c.shutdown(socket.SHUT_WR)
    got = bytearray()
    s.setblocking(False)

    def drained():
        try:
            while chunk := s.recv(65536):
                got.extend(chunk)
            return True                 # end of file
        except BlockingIOError:
            return False
    spin(rig.engine, drained)
    assert bytes(got) == b"x" * 300000
    s.sendall(b"reply")
    s.shutdown(socket.SHUT_WR)
    spin(rig.engine, lambda: not ts.pairs)
    assert c.recv(16) == b"reply" and c.recv(16) == b""
    assert ts.stats["splice_closed"] == 1 and ts.stats["splice_errors"] == 0
    c.close()
    s.close()
    rig.socks.clear()
    assert _fds() == before


def test_pairs_beyond_the_limit_are_refused_with_rst(rig):
    ts = splice.TcpSplice(rig.engine, max_pairs=2)
    kept = [rig.client(ts) for _ in range(2)]
    extra = rig.client(ts)
    assert len(ts.pairs) == 2
    assert ts.stats["splice_refused"] == 1 and ts.stats["splice_opened"] == 2
    assert _ending(extra) == "reset"
    spin(rig.engine, lambda: all(p.joined for p in ts.pairs))
    assert kept
    ts.close()
    assert not ts.pairs


def test_default_limit_follows_the_fd_limit(monkeypatch):
    monkeypatch.setattr(splice.resource, "getrlimit", lambda _: (128, 128))
    assert splice.default_max_pairs() == (128 - splice.FD_RESERVE) // splice.FDS_PER_PAIR
    monkeypatch.setattr(splice.resource, "getrlimit", lambda _: (10, 10))
    assert splice.default_max_pairs() == 1
    monkeypatch.setattr(splice.resource, "getrlimit", lambda _: (1 << 20, 1 << 20))
    assert splice.default_max_pairs() == splice.MAX_PAIRS


def test_second_pipe_failing_leaks_nothing_and_costs_that_pair_only(rig, monkeypatch):
    ts = splice.TcpSplice(rig.engine, max_pairs=8)
    good = rig.client(ts)
    spin(rig.engine, lambda: all(p.joined for p in ts.pairs))
    s, _ = rig.server.accept()             # the good pair's far end
    rig.socks.append(s)
    real_pipe2, calls = os.pipe2, []

    def pipe2(flags):
        calls.append(flags)
        if len(calls) == 2:
            raise OSError(errno.EMFILE, "Too many open files")
        return real_pipe2(flags)
    monkeypatch.setattr(splice.os, "pipe2", pipe2)
    before = _fds()
    bad = rig.client(ts)
    spin(rig.engine, lambda: len(ts.pairs) == 1)
    assert len(calls) == 2 and ts.stats["splice_errors"] == 1
    assert _ending(bad) == "reset"
    while True:                           # the server side accepted the target: close it
        rig.server.setblocking(False)
        try:
            far, _ = rig.server.accept()
        except BlockingIOError:
            break
        far.close()
    rig.server.setblocking(True)
    # what is left over: the test's own client socket, nothing of the failed pair
    assert _fds() == before + 1
    monkeypatch.setattr(splice.os, "pipe2", real_pipe2)
    good.sendall(b"still fine")
    assert recv_spinning(rig.engine, s, 10) == b"still fine"


def test_epoll_registration_failure_costs_that_pair_only(rig, monkeypatch):
    ts = splice.TcpSplice(rig.engine, max_pairs=8)
    real_add = rig.engine.add

    def add(fd, events, handler, kind=None):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(rig.engine, "add", add)
    before = _fds()
    c = rig.client(ts)
    assert not ts.pairs and ts.stats["splice_errors"] == 1
    assert _ending(c) == "reset"
    assert _fds() == before + 1          # only the test's client socket
    monkeypatch.setattr(rig.engine, "add", real_add)
    rig.client(ts)
    spin(rig.engine, lambda: all(p.joined for p in ts.pairs))
    assert len(ts.pairs) == 1


def test_a_bug_in_a_handler_closes_the_pair_and_is_raised(rig, monkeypatch):
    ts = splice.TcpSplice(rig.engine, max_pairs=8)

    def boom(*_):
        raise ZeroDivisionError
    monkeypatch.setattr(ts, "_connect", boom)
    a_client = socket.create_connection(rig.front.getsockname(), timeout=5)
    rig.socks.append(a_client)
    a, _ = rig.front.accept()
    with pytest.raises(ZeroDivisionError):
        ts.join(a, socket.socket(), rig.server.getsockname())
    assert not ts.pairs and a.fileno() == -1
    assert _ending(a_client) == "reset"


def test_a_side_with_nothing_to_wait_for_leaves_the_epoll_set(rig):
    """The server's FIN arrives behind bytes that wait in the pipe for a client that does not
    read: that side hangs up (EPOLLHUP cannot be masked) and must not wake every poll."""
    ts = splice.TcpSplice(rig.engine, max_pairs=8)
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.connect(rig.front.getsockname())
    rig.socks.append(c)
    a, _ = rig.front.accept()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    ts.join(a, socket.socket(), rig.server.getsockname())
    s, _ = rig.server.accept()
    rig.socks.append(s)
    spin(rig.engine, lambda: all(p.joined for p in ts.pairs))
    (p,) = ts.pairs
    c.shutdown(socket.SHUT_WR)
    s.sendall(b"z" * (1 << 16))
    s.shutdown(socket.SHUT_WR)
    spin(rig.engine, lambda: p.shut[0] and p.pending[1])
    calls = []
    handler = rig.engine.handlers.get(p.fds[1])
    if handler is not None:                # before the fix: still registered, count its wakes
        rig.engine.handlers[p.fds[1]] = lambda ev: (calls.append(ev), handler(ev))
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        poll_once(rig.engine)
    assert len(calls) < 5 and p.masks[1] is None, len(calls)
    assert recv_spinning(rig.engine, c, 1 << 17) == b"z" * (1 << 16)
    spin(rig.engine, lambda: not ts.pairs)
    assert ts.stats["splice_errors"] == 0
