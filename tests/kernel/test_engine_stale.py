"""The engine never hands a stale event to a socket that reused a closed fd's number.

Two readable socketpairs are reported in one batch; the first handler closes the second
socket and opens a new one that gets the same fd number and registers it. The old event for
that number, still in the batch, must be skipped, not delivered to the new handler.
"""

from __future__ import annotations

import socket

from pasta.shell.engine import EPOLLIN, Engine


def test_stale_event_skipped_after_fd_reuse():
    engine = Engine()
    a1, a2 = socket.socketpair()
    b1, b2 = socket.socketpair()
    a2.send(b"x")
    b2.send(b"y")
    socks = {"a": a1, "b": b1}
    calls, new = [], []

    def handler(me: str, other: str):
        def on(ev):
            calls.append(me)
            socks[me].recv(16)
            victim = socks[other]
            if victim.fileno() in engine.handlers:
                # close the other one (its event is still pending in this batch) and reuse
                # its fd number for a new socket with nothing to read
                fd = victim.fileno()
                engine.remove(fd)
                victim.close()
                s, t = socket.socketpair()
                new.extend((s, t))
                assert fd in (s.fileno(), t.fileno())
                engine.add(fd, EPOLLIN, lambda ev: calls.append("new"))
        return on

    engine.add(a1.fileno(), EPOLLIN, handler("a", "b"))
    engine.add(b1.fileno(), EPOLLIN, handler("b", "a"))
    engine.call_later(0.05, lambda: engine.stop(0))
    assert engine.run() == 0
    # One original handler ran; the other's stale event was skipped and the new socket, which
    # has nothing to read, was never called.
    assert calls in (["a"], ["b"]), calls
    engine.close()
    for s in (a1, b1, a2, b2, *new):
        s.close()
